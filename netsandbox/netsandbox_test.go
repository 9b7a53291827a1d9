package netsandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// probe is run by python3 inside a sandbox. For each argument it prints
// "ARG RESULT": for tcp:HOST:PORT it connects and reads to the end, for
// udp:HOST:PORT it sends "ping" and waits for one answer, for
// up:HOST:PORT:SIZE it sends SIZE bytes, closes its side and reads the
// answer, for ping:HOST:0 it sends one ICMP echo request.
const probe = `
import hashlib, socket, sys
def tcp(host, port):
    try:
        s = socket.create_connection((host, port), timeout=5)
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error " + str(e).replace(" ", "_")
    h, n = hashlib.sha256(), 0
    with s:
        s.settimeout(20)
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            h.update(b)
            n += len(b)
    return "ok %d %s" % (n, h.hexdigest())
def udp(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(b"ping", (host, port))
        return "ok " + s.recvfrom(1 << 16)[0].decode()
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error " + str(e).replace(" ", "_")
def up(host, port, size):
    try:
        s = socket.create_connection((host, port), timeout=5)
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "error " + str(e).replace(" ", "_")
    h, sent, chunk = hashlib.sha256(), 0, bytes(range(256)) * 256
    with s:
        s.settimeout(20)
        while sent < size:
            b = chunk[:min(len(chunk), size - sent)]
            s.sendall(b)
            h.update(b)
            sent += len(b)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            reply += b
    return "sent %d %s, got %s" % (sent, h.hexdigest(), reply.decode())
def ping(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s.settimeout(1)
    s.sendto(b"\x08\x00\x00\x00\x00\x01\x00\x01ping", (host, 0))
    try:
        s.recvfrom(1 << 16)
        return "ok"
    except socket.timeout:
        return "timeout"
for a in sys.argv[1:]:
    proto, host, port, *size = a.split(":")
    if proto == "ping":
        print(a, ping(host), flush=True)
    elif proto == "up":
        print(a, up(host, int(port), int(size[0])), flush=True)
    else:
        print(a, (tcp if proto == "tcp" else udp)(host, int(port)), flush=True)
`

// probe runs the probe script in the sandbox and returns each target's
// result.
func (s *sandbox) probe(targets ...string) map[string]string {
	s.t.Helper()
	out, code := s.exec(append([]string{"python3", "-c", probe}, targets...)...)
	if code != 0 {
		s.t.Fatalf("probe exited %d:\n%s", code, out)
	}
	res := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			res[k] = v
		}
	}
	for _, t := range targets {
		if _, ok := res[t]; !ok {
			s.t.Fatalf("probe printed nothing for %s:\n%s", t, out)
		}
	}
	return res
}

// server is a TCP server that sends payload to each connection and
// counts them.
type server struct {
	ln       net.Listener
	accepted atomic.Int64
}

func serve(t *testing.T, ln net.Listener, payload []byte) *server {
	t.Helper()
	s := &server{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.Write(payload)
			}()
		}
	}()
	return s
}

// sink reads each connection to its end and answers "N SHA256" of what it
// read.
func sink(t *testing.T, ln net.Listener) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				h := sha256.New()
				k, _ := io.Copy(h, c)
				fmt.Fprintf(c, "%d %x", k, h.Sum(nil))
			}()
		}
	}()
}

func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func (s *server) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// udpEcho answers every datagram on pc with "pong" and counts them.
func udpEcho(t *testing.T, addr string) (port int, got *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	got = new(atomic.Int64)
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got.Add(1)
			pc.WriteTo([]byte("pong"), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port, got
}

func newManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

func newNetwork(t *testing.T, m *Manager) *Network {
	t.Helper()
	n, err := m.Create(context.Background(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func payload(size int) ([]byte, string) {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	sum := sha256.Sum256(b)
	return b, fmt.Sprintf("ok %d %s", size, hex.EncodeToString(sum[:]))
}

// hostIPv4s returns this machine's IPv4 addresses outside loopback.
func hostIPv4s(t *testing.T) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

// TestEgressPolicy checks with real traffic from a sandbox that the
// provider's loopback, its own addresses and its LAN are refused, and that
// published services are reachable.
func TestEgressPolicy(t *testing.T) {
	runscEnv(t)
	data, want := payload(1 << 20)
	web := serve(t, listen(t, "tcp", "127.0.0.1:0"), data)
	loop := serve(t, listen(t, "tcp", "127.0.0.1:0"), []byte("secret"))
	wild := serve(t, listen(t, "tcp4", "0.0.0.0:0"), []byte("secret"))
	echoPort, echoed := udpEcho(t, "127.0.0.1:0")
	loopUDP, loopUDPGot := udpEcho(t, "127.0.0.1:0")
	l := newLAN(t)
	lnPeer, err := l.listen("tcp", l.peerAddr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	lnRouted, err := l.listen("tcp", l.routed.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	peer := serve(t, lnPeer, []byte("lan secret"))
	routed := serve(t, lnRouted, []byte("lan secret"))
	// The LAN is there: the provider itself reaches it.
	for _, a := range []string{lnPeer.Addr().String(), lnRouted.Addr().String()} {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			t.Fatalf("the provider cannot reach its stand-in LAN at %s: %v", a, err)
		}
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) != "lan secret" {
			t.Fatalf("LAN server %s sent %q", a, b)
		}
	}
	peer.accepted.Store(0)
	routed.accepted.Store(0)

	m := newManager(t, Config{Services: []Service{
		{Name: "web", Port: 8080, Target: web.ln.Addr().String()},
		{Name: "echo", Port: 7, Target: "127.0.0.1:" + strconv.Itoa(echoPort)},
	}})
	n := newNetwork(t, m)
	s := startSandbox(t, n)

	refused := map[string]string{
		"loopback, the sandbox's own":     fmt.Sprintf("tcp:127.0.0.1:%d", loop.port()),
		"loopback through the gateway":    fmt.Sprintf("tcp:%s:%d", gatewayIP, loop.port()),
		"a published IP's other port":     fmt.Sprintf("tcp:10.0.2.100:%d", loop.port()),
		"the LAN, directly connected":     fmt.Sprintf("tcp:%s:%d", l.peerAddr, peer.port()),
		"the LAN, routed":                 fmt.Sprintf("tcp:%s:%d", l.routed, routed.port()),
		"the provider's LAN-side address": fmt.Sprintf("tcp:%s:%d", l.hostAddr, wild.port()),
		"cloud metadata":                  "tcp:169.254.169.254:80",
	}
	for i, ip := range hostIPv4s(t) {
		refused[fmt.Sprintf("the provider's address %d", i)] = fmt.Sprintf("tcp:%s:%d", ip, wild.port())
	}
	reachable := map[string]string{
		"published by name":           "tcp:web:8080",
		"published by qualified name": "tcp:web." + Domain + ":8080",
		"published by virtual IP":     "tcp:10.0.2.100:8080",
	}
	var targets []string
	for _, v := range refused {
		targets = append(targets, v)
	}
	for _, v := range reachable {
		targets = append(targets, v)
	}
	udpOK := "udp:echo:7"
	udpRefused := fmt.Sprintf("udp:%s:%d", gatewayIP, loopUDP)
	pingGateway := fmt.Sprintf("ping:%s:0", gatewayIP)
	pingBeyond := "ping:198.51.100.1:0" // dropped at the gateway, like all ICMP beyond it
	targets = append(targets, udpOK, udpRefused, pingGateway, pingBeyond)
	before := n.Counters()
	res := s.probe(targets...)

	for name, target := range refused {
		t.Run("refused/"+name, func(t *testing.T) {
			if res[target] != "refused" {
				t.Errorf("%s: %s, want refused", target, res[target])
			}
		})
	}
	for name, target := range reachable {
		t.Run("reachable/"+name, func(t *testing.T) {
			if res[target] != want {
				t.Errorf("%s: %s, want %s", target, res[target], want)
			}
		})
	}
	t.Run("udp", func(t *testing.T) {
		if res[udpOK] != "ok pong" || echoed.Load() == 0 {
			t.Errorf("%s: %s (%d datagrams arrived), want ok pong", udpOK, res[udpOK], echoed.Load())
		}
		if res[udpRefused] != "timeout" || loopUDPGot.Load() != 0 {
			t.Errorf("%s: %s (%d datagrams arrived), want timeout and none", udpRefused, res[udpRefused], loopUDPGot.Load())
		}
	})
	t.Run("ping", func(t *testing.T) {
		if res[pingGateway] != "ok" || res[pingBeyond] != "timeout" {
			t.Errorf("ping: gateway %s (want ok), beyond it %s (want timeout)", res[pingGateway], res[pingBeyond])
		}
	})
	t.Run("nothing arrived", func(t *testing.T) {
		for name, s := range map[string]*server{"loopback": loop, "wildcard": wild, "LAN peer": peer, "LAN routed": routed} {
			if k := s.accepted.Load(); k != 0 {
				t.Errorf("%s server accepted %d connections from the sandbox", name, k)
			}
		}
		if web.accepted.Load() != int64(len(reachable)) {
			t.Errorf("published server accepted %d connections, want %d", web.accepted.Load(), len(reachable))
		}
		// The sandbox's own loopback never reaches the gateway; the
		// others (and the refused UDP datagram) are counted.
		if got, min := n.Counters().Refused-before.Refused, uint64(len(refused)-1); got < min {
			t.Errorf("refused counter grew by %d, want at least %d", got, min)
		}
	})
}

// TestPublicPath shows that what TestEgressPolicy refuses is refused by the
// policy, not lost on the way: with the LAN treated as the internet, the
// sandbox reaches its routed part, names resolve through the provider, and
// the provider's own addresses and connected subnets stay refused.
func TestPublicPath(t *testing.T) {
	runscEnv(t)
	l := newLAN(t)
	lnRouted, err := l.listen("tcp", l.routed.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	lnPeer, err := l.listen("tcp", l.peerAddr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	data, want := payload(64 << 10)
	routed := serve(t, lnRouted, data)
	peer := serve(t, lnPeer, data)
	wild := serve(t, listen(t, "tcp4", "0.0.0.0:0"), data)
	up := &fakeUpstream{answers: map[string][]string{
		"lan.example":    {l.routed.String()},
		"rebind.example": {"127.0.0.1"},
		"mixed.example":  {"127.0.0.1", l.peerAddr.String(), l.routed.String()},
	}, asked: make(chan string, 100)}

	m := newManager(t, Config{})
	m.testPublic = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	m.upstream = up
	n := newNetwork(t, m)
	s := startSandbox(t, n)

	byIP := fmt.Sprintf("tcp:%s:%d", l.routed, routed.port())
	byName := fmt.Sprintf("tcp:lan.example:%d", routed.port())
	mixed := fmt.Sprintf("tcp:mixed.example:%d", routed.port())
	rebind := fmt.Sprintf("tcp:rebind.example:%d", routed.port())
	connected := fmt.Sprintf("tcp:%s:%d", l.peerAddr, peer.port())
	own := fmt.Sprintf("tcp:%s:%d", l.hostAddr, wild.port())
	res := s.probe(byIP, byName, mixed, rebind, connected, own)
	for _, target := range []string{byIP, byName, mixed} {
		if res[target] != want {
			t.Errorf("%s: %s, want %s", target, res[target], want)
		}
	}
	if !strings.HasPrefix(res[rebind], "error") {
		t.Errorf("%s: %s; want a resolution error (the only answer is loopback)", rebind, res[rebind])
	}
	for _, target := range []string{connected, own} {
		if res[target] != "refused" {
			t.Errorf("%s: %s, want refused", target, res[target])
		}
	}
	if routed.accepted.Load() != 3 || peer.accepted.Load() != 0 || wild.accepted.Load() != 0 {
		t.Errorf("accepted: routed %d (want 3), connected %d, provider %d (want 0)",
			routed.accepted.Load(), peer.accepted.Load(), wild.accepted.Load())
	}

	out, code := s.exec("getent", "ahostsv4", "mixed.example")
	if code != 0 || strings.Contains(out, "127.0.0.1") || strings.Contains(out, l.peerAddr.String()) {
		t.Errorf("getent ahostsv4 mixed.example: exit %d\n%s\nwant only %s", code, out, l.routed)
	}
}

// TestPolicyNone checks that under PolicyNone only published services are
// reachable and the provider's resolver is never asked.
func TestPolicyNone(t *testing.T) {
	runscEnv(t)
	l := newLAN(t)
	ln, err := l.listen("tcp", l.routed.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	routed := serve(t, ln, []byte("lan"))
	data, want := payload(4 << 10)
	web := serve(t, listen(t, "tcp", "127.0.0.1:0"), data)
	up := &fakeUpstream{answers: map[string][]string{"lan.example": {l.routed.String()}}, asked: make(chan string, 100)}

	m := newManager(t, Config{Policy: PolicyNone, Services: []Service{{Name: "web", Target: web.ln.Addr().String()}}})
	m.testPublic = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} // ignored under none
	m.upstream = up
	n := newNetwork(t, m)
	s := startSandbox(t, n)

	pub := fmt.Sprintf("tcp:web:%d", web.port())
	byIP := fmt.Sprintf("tcp:%s:%d", l.routed, routed.port())
	byName := fmt.Sprintf("tcp:lan.example:%d", routed.port())
	res := s.probe(pub, byIP, byName)
	if res[pub] != want {
		t.Errorf("%s: %s, want %s", pub, res[pub], want)
	}
	if res[byIP] != "refused" {
		t.Errorf("%s: %s, want refused", byIP, res[byIP])
	}
	if !strings.HasPrefix(res[byName], "error") {
		t.Errorf("%s: %s, want a resolution error", byName, res[byName])
	}
	if routed.accepted.Load() != 0 {
		t.Errorf("the LAN server accepted %d connections", routed.accepted.Load())
	}
	if len(up.asked) != 0 {
		t.Errorf("the provider's resolver was asked %q", <-up.asked)
	}
}

// TestIsolation runs two sandboxes and checks that nothing the second can
// address reaches the first: not one frame arrives on the first's network.
func TestIsolation(t *testing.T) {
	runscEnv(t)
	m := newManager(t, Config{})
	na, nb := newNetwork(t, m), newNetwork(t, m)
	a, b := startSandbox(t, na), startSandbox(t, nb)

	const port = 9000
	if out, code := a.exec("/bin/bash", "-c",
		fmt.Sprintf(`python3 -c 'import socket
s = socket.create_server(("0.0.0.0", %d))
while True:
    c, _ = s.accept(); c.sendall(b"sandbox a"); c.close()' </dev/null >/dev/null 2>&1 &`, port)); code != 0 {
		t.Fatalf("start server in sandbox a: %d %s", code, out)
	}
	// Sandbox a serves itself, at its address.
	self := fmt.Sprintf("tcp:%s:%d", sandboxIP, port)
	var res map[string]string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if res = a.probe(self); strings.HasPrefix(res[self], "ok 9 ") {
			break
		}
	}
	if !strings.HasPrefix(res[self], "ok 9 ") {
		t.Fatalf("sandbox a cannot reach its own server: %s", res[self])
	}

	time.Sleep(200 * time.Millisecond) // let a's network go quiet
	quiet := na.Counters()
	// Every address b might try: its own (which is a's too), the
	// gateway, a neighbour that does not exist, the provider's.
	targets := []string{self, fmt.Sprintf("udp:%s:%d", sandboxIP, port),
		fmt.Sprintf("tcp:%s:%d", gatewayIP, port), fmt.Sprintf("udp:%s:%d", gatewayIP, port),
		fmt.Sprintf("tcp:10.0.2.3:%d", port)}
	for _, ip := range hostIPv4s(t) {
		targets = append(targets, fmt.Sprintf("tcp:%s:%d", ip, port))
	}
	res = b.probe(targets...)
	for _, target := range targets {
		if strings.HasPrefix(res[target], "ok") {
			t.Errorf("from sandbox b, %s: %s", target, res[target])
		}
	}
	if c := na.Counters(); c != quiet {
		t.Errorf("sandbox a's network moved while b probed: %+v -> %+v", quiet, c)
	}
}

// TestCounters fetches 1 MiB from a published service and checks that the
// counters grow by at least that and never go back while they do.
func TestCounters(t *testing.T) {
	runscEnv(t)
	data, want := payload(1 << 20)
	web := serve(t, listen(t, "tcp", "127.0.0.1:0"), data)
	upload := listen(t, "tcp", "127.0.0.1:0")
	sink(t, upload)
	m := newManager(t, Config{Services: []Service{
		{Name: "web", Port: 80, Target: web.ln.Addr().String()},
		{Name: "sink", Port: 80, Target: upload.Addr().String()},
	}})
	n := newNetwork(t, m)
	s := startSandbox(t, n)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var samples atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		prev := n.Counters()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := n.Counters()
			samples.Add(1)
			if c.BytesIn < prev.BytesIn || c.BytesOut < prev.BytesOut || c.PacketsIn < prev.PacketsIn ||
				c.PacketsOut < prev.PacketsOut || c.Refused < prev.Refused {
				t.Errorf("counters went back: %+v -> %+v", prev, c)
			}
			prev = c
			time.Sleep(50 * time.Microsecond)
		}
	}()
	before := n.Counters()
	res := s.probe("tcp:web:80")
	mid := n.Counters()
	const up = "up:sink:80:1048576"
	res[up] = s.probe(up)[up]
	after := n.Counters()
	close(stop)
	wg.Wait()
	if res["tcp:web:80"] != want {
		t.Fatalf("fetch: %s, want %s", res["tcp:web:80"], want)
	}
	if sent, got, ok := strings.Cut(res[up], ", got "); !ok || "sent "+got != sent {
		t.Fatalf("upload: %s; want what the sandbox sent to be what arrived", res[up])
	}
	in, out := mid.BytesIn-before.BytesIn, mid.BytesOut-before.BytesOut
	t.Logf("1 MiB fetched: %d bytes in, %d bytes out", in, out)
	if in < 1<<20 || out == 0 || mid.PacketsIn <= before.PacketsIn || mid.PacketsOut <= before.PacketsOut {
		t.Errorf("fetching 1 MiB: counters %+v -> %+v; want bytes in to grow by at least %d", before, mid, 1<<20)
	}
	in, out = after.BytesIn-mid.BytesIn, after.BytesOut-mid.BytesOut
	t.Logf("1 MiB sent: %d bytes in, %d bytes out, %d samples in all", in, out, samples.Load())
	if out < 1<<20 || in == 0 {
		t.Errorf("sending 1 MiB: counters %+v -> %+v; want bytes out to grow by at least %d", mid, after, 1<<20)
	}
	if samples.Load() < 10 {
		t.Errorf("only %d samples taken during the transfer", samples.Load())
	}
}

// leftovers is what a network could leave behind on the host.
type leftovers struct {
	mounts   string // /proc/self/mountinfo, but for named namespaces (ownMounts)
	tunFDs   int    // open /dev/net/tun in this process
	nsFDs    int    // open network namespaces in this process
	internal int    // goroutines running this package's or the netstack's code
}

func snapshot(t *testing.T) (leftovers, string) {
	t.Helper()
	var l leftovers
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	l.mounts = ownMounts(string(b))
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if target == "/dev/net/tun" {
			l.tunFDs++
		}
		if strings.HasPrefix(target, "net:[") {
			l.nsFDs++
		}
	}
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 2)
	var stacks []string
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if isInternalGoroutine(g) {
			l.internal++
			stacks = append(stacks, g)
		}
	}
	return l, strings.Join(stacks, "\n\n")
}

func isInternalGoroutine(stack string) bool {
	if strings.Contains(stack, "_test.go") {
		return false
	}
	for _, s := range []string{"gvisor.dev/gvisor/", "github.com/miekg/dns", "netsandbox.(*", "netsandbox.copyHalf", "netsandbox.pumpUDP"} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}

// ownMounts is mountinfo without the named network namespaces (ip netns
// add, under /run/netns): netsandbox never names one, and other tests
// running beside these (the end-to-end scripts) add and remove theirs.
func ownMounts(mountinfo string) string {
	var keep []string
	for _, line := range strings.SplitAfter(mountinfo, "\n") {
		if f := strings.Fields(line); len(f) > 4 && (strings.HasPrefix(f[4], "/run/netns/") || strings.HasPrefix(f[4], "/var/run/netns/")) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "")
}

// stillHeld is netnsHolders(ino) among the processes of before (an
// earlier netnsHolders of it). Namespace inode numbers are reused at once,
// so a process that did not hold the namespace before may hold a new one
// of the same number, made by another test.
func stillHeld(ino uint64, before []string) []string {
	pids := map[string]bool{}
	for _, h := range before {
		pid, _, _ := strings.Cut(h, " ")
		pids[pid] = true
	}
	var held []string
	for _, h := range netnsHolders(ino) {
		if pid, _, _ := strings.Cut(h, " "); pids[pid] {
			held = append(held, h)
		}
	}
	return held
}

// netnsHolders lists the processes holding the namespace with inode ino,
// as their namespace or an open file.
func netnsHolders(ino uint64) []string {
	want := fmt.Sprintf("net:[%d]", ino)
	var holders []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "ns/net")); l == want {
			holders = append(holders, p.Name()+" ns")
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); l == want {
				holders = append(holders, p.Name()+" fd "+fd.Name())
			}
		}
	}
	return holders
}

// TestCloseLeavesNothing closes a network with a sandbox and live
// connections in it, then checks that no goroutine, file, mount or
// namespace is left.
func TestCloseLeavesNothing(t *testing.T) {
	runscEnv(t)
	// Warm up: the first network starts the netstack's package-level
	// state, which is not this network's.
	warm := newManager(t, Config{})
	wn, err := warm.Create(context.Background(), "warm")
	if err != nil {
		t.Fatal(err)
	}
	wn.Close()
	base, stacks := snapshot(t)
	if base.internal != 0 {
		t.Fatalf("internal goroutines before the test:\n%s", stacks)
	}

	// A service that never ends its connections, to leave them open.
	hold := listen(t, "tcp", "127.0.0.1:0")
	var conns sync.WaitGroup
	defer conns.Wait()
	defer hold.Close()
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := hold.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer conns.Done(); io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	echoPort, _ := udpEcho(t, "127.0.0.1:0")
	m, err := New(Config{Services: []Service{
		{Name: "hold", Port: 80, Target: hold.Addr().String()},
		{Name: "echo", Port: 7, Target: "127.0.0.1:" + strconv.Itoa(echoPort)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.Create(context.Background(), "leak")
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(n.NetnsPath(), &st); err != nil {
		t.Fatal(err)
	}
	s := startSandbox(t, n)
	out, code := s.exec("/bin/bash", "-c", `
		for i in 1 2 3; do python3 -c 'import socket, time
s = socket.create_connection(("hold", 80)); u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"x", ("echo", 7)); time.sleep(3600)' </dev/null >/dev/null 2>&1 & done
		python3 -c 'import socket; print(socket.gethostbyname("hold"))'`)
	if code != 0 {
		t.Fatalf("open connections: %d %s", code, out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n.mu.Lock()
		flows := n.flows
		n.mu.Unlock()
		if flows >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d flows open, want 6", flows)
		}
	}

	pid := s.pid()
	if ifs := interfaces(t, pid); !slices.Contains(ifs, tapName) {
		t.Fatalf("the sandbox's namespace has %v, no %s", ifs, tapName)
	}
	holders := netnsHolders(st.Ino)   // the sandbox's processes and this one
	if err := m.Close(); err != nil { // closes n, with its flows
		t.Fatal(err)
	}
	// The tap is gone at once, though the sandbox is still running.
	if ifs := interfaces(t, pid); slices.Contains(ifs, tapName) {
		t.Errorf("after Close the sandbox's namespace still has %v", ifs)
	}
	if _, err := m.Create(context.Background(), "late"); err != ErrClosed {
		t.Errorf("Create after Close: %v, want ErrClosed", err)
	}
	s.destroy()

	var now leftovers
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		now, stacks = snapshot(t)
		if (now == base && len(stillHeld(st.Ino, holders)) == 0) || time.Now().After(deadline) {
			break
		}
	}
	if now.internal != 0 {
		t.Errorf("%d goroutines left:\n%s", now.internal, stacks)
	}
	if now.mounts != base.mounts {
		t.Errorf("mounts changed:\nbefore:\n%s\nafter:\n%s", base.mounts, now.mounts)
	}
	if now.tunFDs != base.tunFDs || now.nsFDs != base.nsFDs {
		t.Errorf("open files: %d taps and %d namespaces, before %d and %d", now.tunFDs, now.nsFDs, base.tunFDs, base.nsFDs)
	}
	if h := stillHeld(st.Ino, holders); len(h) != 0 {
		t.Errorf("the network namespace is still held by %v", h)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// crashChildEnv, when set to a directory, makes TestCrashChild act as a
// provider that the parent test kills.
const crashChildEnv = "NETSANDBOX_CRASH_CHILD"

// TestCrashChild is the provider process of TestProviderCrash: it creates a
// network, starts a sandbox in it with its state in $NETSANDBOX_CRASH_CHILD,
// reports the sandbox's id and waits to be killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestProviderCrash")
	}
	m, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.Create(context.Background(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	s := startSandboxIn(t, n, dir)
	fmt.Printf("READY %s\n", s.id)
	select {}
}

// TestProviderCrash kills a provider holding a network with a running
// sandbox and checks that the tap went with it, that nothing is mounted,
// and that once the orphaned sandbox is destroyed its namespace is gone:
// there is nothing for a restarted provider to clean up.
func TestProviderCrash(t *testing.T) {
	runsc, _ := runscEnv(t)
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	s := &sandbox{t: t, runsc: runsc, root: filepath.Join(dir, "runsc")}
	t.Cleanup(func() {
		if s.id != "" {
			s.destroy()
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			s.id = id
			break
		}
	}
	if s.id == "" {
		t.Fatal("the provider process ended without starting its sandbox")
	}
	pid := s.pid()
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		t.Fatal(err)
	}
	if ifs := interfaces(t, pid); !slices.Contains(ifs, tapName) {
		t.Fatalf("the sandbox's namespace has %v, no %s", ifs, tapName)
	}

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); slices.Contains(interfaces(t, pid), tapName); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the provider is dead but the sandbox's namespace still has %v", interfaces(t, pid))
		}
	}
	if now, _ := os.ReadFile("/proc/self/mountinfo"); ownMounts(string(now)) != ownMounts(string(mounts)) {
		t.Errorf("mounts changed:\nbefore:\n%s\nafter:\n%s", mounts, now)
	}
	holders := netnsHolders(st.Ino) // the orphaned sandbox's processes
	s.destroy()
	s.id = ""
	for deadline := time.Now().Add(5 * time.Second); len(stillHeld(st.Ino, holders)) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the orphan's namespace is still held by %v", stillHeld(st.Ino, holders))
		}
	}
}
