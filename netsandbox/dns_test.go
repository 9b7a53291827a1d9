package netsandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordUpstream answers from its tables and counts what it is asked.
type recordUpstream struct {
	addrs map[string][]string
	mx    map[string][]string
	txt   map[string][]string
	mu    sync.Mutex
	asked map[string]int
}

func (u *recordUpstream) ask(kind, name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.asked == nil {
		u.asked = map[string]int{}
	}
	u.asked[kind+" "+strings.TrimSuffix(name, ".")]++
}

func (u *recordUpstream) times(kind, name string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.asked[kind+" "+name]
}

func (u *recordUpstream) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	u.ask("ip", host)
	ips, ok := u.addrs[strings.ToLower(strings.TrimSuffix(host, "."))]
	if !ok {
		return nil, errNoSuchHost
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}
func (u *recordUpstream) LookupCNAME(_ context.Context, host string) (string, error) {
	u.ask("cname", host)
	return "", errNoSuchHost
}
func (u *recordUpstream) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	u.ask("mx", name)
	var out []*net.MX
	for _, h := range u.mx[strings.TrimSuffix(name, ".")] {
		out = append(out, &net.MX{Host: h, Pref: 10})
	}
	if out == nil {
		return nil, errNoSuchHost
	}
	return out, nil
}
func (u *recordUpstream) LookupNS(_ context.Context, name string) ([]*net.NS, error) {
	u.ask("ns", name)
	return nil, errNoSuchHost
}
func (u *recordUpstream) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	u.ask("srv", name)
	return "", nil, errNoSuchHost
}
func (u *recordUpstream) LookupTXT(_ context.Context, name string) ([]string, error) {
	u.ask("txt", name)
	t, ok := u.txt[strings.TrimSuffix(name, ".")]
	if !ok {
		return nil, errNoSuchHost
	}
	return t, nil
}

// testResolver is a sandbox's resolver over up, with no network of its own.
func testResolver(t *testing.T, up upstream) (*resolver, *Network) {
	t.Helper()
	m, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	m.upstream = up
	m.hosts.lookup = func() ([]net.Addr, error) { return nil, nil }
	n := &Network{m: m, ctx: context.Background(), dns: newDNSLimits()}
	return &resolver{n: n}, n
}

// Answers, failures too, are asked of the provider's resolver once and
// then served from the cache, to every sandbox.
func TestResolverCache(t *testing.T) {
	up := &recordUpstream{addrs: map[string][]string{"public.example": {"93.184.215.14"}}}
	r, _ := testResolver(t, up)
	other := &resolver{n: &Network{m: r.n.m, ctx: context.Background(), dns: newDNSLimits()}}
	for _, res := range []*resolver{r, r, other} {
		if addrs, err := res.LookupIPAddr(context.Background(), "Public.Example."); err != nil || len(addrs) != 1 {
			t.Fatalf("lookup: %v, %v", addrs, err)
		}
		if _, err := res.LookupIPAddr(context.Background(), "nx.example."); err == nil {
			t.Fatal("nx.example resolved")
		}
	}
	if n, nx := up.times("ip", "Public.Example")+up.times("ip", "public.example"), up.times("ip", "nx.example"); n != 1 || nx != 1 {
		t.Fatalf("the provider's resolver was asked %d and %d times; want once each", n, nx)
	}
	c := r.n.m.dns
	c.now = func() time.Time { return time.Now().Add(dnsPositiveTTL + time.Second) }
	if _, err := r.LookupIPAddr(context.Background(), "public.example."); err != nil || up.times("ip", "public.example") != 1 {
		t.Fatalf("after the TTL: %v, asked %d times", err, up.times("ip", "public.example"))
	}
}

// Records other than addresses of names that resolve only inside the
// provider's networks are not the sandbox's to read; host names in
// answers that resolve only inside are dropped.
func TestResolverInternalNames(t *testing.T) {
	up := &recordUpstream{
		addrs: map[string][]string{
			"corp.example":    {"10.1.2.3"},
			"public.example":  {"93.184.215.14"},
			"mail.corp":       {"192.168.1.5"},
			"mail.public.com": {"93.184.215.15"},
		},
		mx:  map[string][]string{"corp.example": {"mail.corp."}, "public.example": {"mail.corp.", "mail.public.com."}},
		txt: map[string][]string{"corp.example": {"secret=1"}, "public.example": {"v=spf1 -all"}, "_dmarc.public.example": {"v=DMARC1"}},
	}
	r, _ := testResolver(t, up)
	ctx := context.Background()
	if txt, err := r.LookupTXT(ctx, "corp.example."); err == nil {
		t.Errorf("TXT of an internal name: %v", txt)
	}
	if mx, err := r.LookupMX(ctx, "corp.example."); err == nil {
		t.Errorf("MX of an internal name: %v", mx)
	}
	if txt, err := r.LookupTXT(ctx, "public.example."); err != nil || len(txt) != 1 {
		t.Errorf("TXT of a public name: %v, %v", txt, err)
	}
	if txt, err := r.LookupTXT(ctx, "_dmarc.public.example."); err != nil || len(txt) != 1 {
		t.Errorf("TXT of a name with no address: %v, %v", txt, err)
	}
	mx, err := r.LookupMX(ctx, "public.example.")
	if err != nil || len(mx) != 1 || mx[0].Host != "mail.public.com." {
		t.Errorf("MX of a public name: %v, %v; want only the public exchanger", mx, err)
	}
}

// A sandbox's lookups past its rate are refused at once, without asking
// the provider's resolver, and counted; another sandbox is not affected.
func TestResolverRate(t *testing.T) {
	up := &recordUpstream{}
	r, n := testResolver(t, up)
	var refused int
	for i := range 2 * dnsBurst {
		if _, err := r.LookupIPAddr(context.Background(), fmt.Sprintf("n%d.example.", i)); errors.Is(err, errDNSLimit) {
			refused++
		}
	}
	asked := len(up.asked)
	if refused < dnsBurst-dnsRate || asked > dnsBurst+dnsRate || uint64(refused) != n.dnsRefused.Load() {
		t.Fatalf("%d lookups: %d refused (counted %d), %d asked upstream; want about %d refused", 2*dnsBurst, refused, n.dnsRefused.Load(), asked, dnsBurst)
	}
	other := &resolver{n: &Network{m: r.n.m, ctx: context.Background(), dns: newDNSLimits()}}
	if _, err := other.LookupIPAddr(context.Background(), "fresh.example."); errors.Is(err, errDNSLimit) {
		t.Fatal("another sandbox's lookup was refused for the first one's rate")
	}
}

// TestDNSFlood is the attack: a sandbox sends 4,000 lookups of distinct
// names in a few seconds to a provider whose resolver never answers. The
// provider's open descriptors stay bounded (before the bounds: one socket
// per lookup and address family, held for the 5 s timeout, thousands), and
// another sandbox's lookups are answered meanwhile.
func TestDNSFlood(t *testing.T) {
	runscEnv(t)
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var queries atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := silent.ReadFrom(buf); err != nil {
				return
			}
			queries.Add(1)
		}
	}()
	// The provider's resolver: real, asking a server on loopback that
	// never answers; one name is answered at once, as a hosts file would.
	up := &splitUpstream{answer: map[string]string{"ok.example": "93.184.215.14"}, Resolver: &net.Resolver{PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", silent.LocalAddr().String())
		}}}
	m := newManager(t, Config{})
	m.upstream = up
	fn := newNetwork(t, m)
	flooder := startSandbox(t, fn)
	n2, err := m.Create(context.Background(), t.Name()+"-other")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n2.Close() })
	other := startSandboxIn(t, n2, t.TempDir())
	t.Cleanup(other.destroy)

	before := openFDs(t)
	peak := before
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				peak = max(peak, openFDs(t))
			}
		}
	}()
	flood := make(chan string, 1)
	go func() {
		out, _ := flooder.exec("python3", "-c", dnsFlood, "4000", "3")
		flood <- out
	}()
	time.Sleep(time.Second)
	start := time.Now()
	out, code := other.exec("getent", "ahostsv4", "ok.example")
	answered := time.Since(start)
	floodOut := <-flood
	time.Sleep(dnsTimeout) // the lookups in flight time out
	close(stop)
	<-sampled
	t.Logf("flood: %s; the provider's descriptors: %d before, at most %d during; %d queries reached the silent resolver; %d lookups refused; the other sandbox's lookup took %s",
		strings.TrimSpace(floodOut), before, peak, queries.Load(), fn.Counters().DNSRefused, answered.Round(time.Millisecond))
	if !strings.HasPrefix(floodOut, "sent 4000") {
		t.Fatalf("the flood did not run: %q", floodOut)
	}
	if code != 0 || !strings.Contains(out, "93.184.215.14") {
		t.Errorf("another sandbox's lookup during the flood: exit %d, %q", code, out)
	}
	// Two sockets per lookup in flight (A and AAAA) for the sandbox's
	// lookups in flight, and some slack.
	if bound := before + 2*dnsPerNetwork + 32; peak > bound {
		t.Errorf("the provider held %d descriptors during the flood, more than %d", peak, bound)
	}
	if os.Getenv("DNSFLOOD_DEBUG") != "" {
		ents, _ := os.ReadDir("/proc/self/fd")
		kinds := map[string]int{}
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			if i := strings.IndexByte(l, '['); i > 0 {
				l = l[:i]
			}
			kinds[l]++
		}
		t.Logf("descriptors now: %v", kinds)
	}
	// Every lookup ends within its wait for a place and its timeout of
	// when the DNS server took its query; under load the server takes the
	// flood's queries long after they were sent (in make test, lookups
	// still reached the silent resolver 20 s after a 3 s flood), 16 at a
	// time. A leak never gives its descriptors back.
	after, ended := openFDs(t), time.Now()
	for deadline := ended.Add(60 * time.Second); after > before+8 && time.Now().Before(deadline); after = openFDs(t) {
		time.Sleep(100 * time.Millisecond)
	}
	if after > before+8 {
		t.Errorf("%d descriptors left a minute after the flood, %d before", after, before)
	} else {
		t.Logf("descriptors back to %d within %s of the flood's end", after, time.Since(ended).Round(100*time.Millisecond))
	}
}

// dnsFlood sends argv[1] A queries for distinct names to the sandbox's DNS
// server over argv[2] seconds, reading no answer.
const dnsFlood = `
import socket, struct, sys, time
n, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
server = open("/etc/resolv.conf").read().split("nameserver")[1].split()[0]
sent = 0
start = time.time()
for i in range(n):
    name = b"".join(bytes([len(p)]) + p for p in (b"q%d" % i, b"flood", b"example")) + b"\0"
    q = struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    try:
        s.sendto(q, (server, 53))
        sent += 1
    except BlockingIOError:
        time.sleep(0.001)
    delay = start + secs * (i + 1) / n - time.time()
    if delay > 0:
        time.sleep(delay)
print("sent %d in %.1fs" % (sent, time.time() - start))
`

// splitUpstream answers the names in answer itself and asks its Resolver
// the rest.
type splitUpstream struct {
	*net.Resolver
	answer map[string]string
}

func (u *splitUpstream) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if a, ok := u.answer[strings.TrimSuffix(host, ".")]; ok {
		return []net.IPAddr{{IP: net.ParseIP(a)}}, nil
	}
	return u.Resolver.LookupIPAddr(ctx, host)
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
