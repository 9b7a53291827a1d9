package netsandbox

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

var policyTests = []struct {
	name string
	addr string
	want bool // allowed under PolicyPublic
}{
	{"public v4", "93.184.215.14", true},
	{"public dns", "1.1.1.1", true},
	{"just below 10/8", "9.255.255.255", true},
	{"just above 10/8", "11.0.0.0", true},
	{"loopback", "127.0.0.1", false},
	{"loopback other", "127.255.255.254", false},
	{"this network", "0.0.0.0", false},
	{"this network other", "0.1.2.3", false},
	{"rfc1918 10", "10.0.2.1", false},
	{"rfc1918 172.16", "172.16.0.1", false},
	{"rfc1918 172.31", "172.31.255.255", false},
	{"not rfc1918 172.32", "172.32.0.1", true},
	{"not rfc1918 172.15", "172.15.255.255", true},
	{"rfc1918 192.168", "192.168.1.1", false},
	{"cgnat", "100.64.0.1", false},
	{"cgnat top", "100.127.255.255", false},
	{"not cgnat", "100.128.0.1", true},
	{"link-local", "169.254.1.1", false},
	{"cloud metadata", "169.254.169.254", false},
	{"multicast", "224.0.0.251", false},
	{"multicast top", "239.255.255.250", false},
	{"reserved", "240.0.0.1", false},
	{"broadcast", "255.255.255.255", false},
	{"test-net-1", "192.0.2.2", false},
	{"test-net-2", "198.51.100.7", false},
	{"test-net-3", "203.0.113.9", false},
	{"benchmarking", "198.18.0.1", false},
	{"ietf assignments", "192.0.0.8", false},
	{"v6 public", "2606:4700:4700::1111", true},
	{"v6 loopback", "::1", false},
	{"v6 unspecified", "::", false},
	{"v6 ula", "fd00::1", false},
	{"v6 ula fc", "fc00::1", false},
	{"v6 link-local", "fe80::1", false},
	{"v6 link-local zone", "fe80::1%eth0", false},
	{"v6 multicast", "ff02::1", false},
	{"v6 documentation", "2001:db8::1", false},
	{"v4-mapped loopback", "::ffff:127.0.0.1", false},
	{"v4-mapped private", "::ffff:10.1.2.3", false},
	{"v4-mapped public", "::ffff:1.1.1.1", true},
	{"v4-compatible loopback", "::127.0.0.1", false},
	{"nat64 of loopback", "64:ff9b::7f00:1", false},
	{"nat64 of public", "64:ff9b::101:101", false},
	{"6to4 of private", "2002:a00:1::1", false},
	{"teredo", "2001:0:4136:e378::1", false},
}

func TestPolicyAllows(t *testing.T) {
	for _, tt := range policyTests {
		t.Run(tt.name, func(t *testing.T) {
			addr := netip.MustParseAddr(tt.addr)
			if got := PolicyPublic.Allows(addr); got != tt.want {
				t.Errorf("PolicyPublic.Allows(%s) = %v, want %v", addr, got, tt.want)
			}
			if PolicyNone.Allows(addr) {
				t.Errorf("PolicyNone.Allows(%s) = true", addr)
			}
		})
	}
	if PolicyPublic.Allows(netip.Addr{}) {
		t.Error("the zero address is allowed")
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    Policy
		wantErr bool
	}{
		{"", PolicyPublic, false},
		{"public", PolicyPublic, false},
		{" Public ", PolicyPublic, false},
		{"none", PolicyNone, false},
		{"NONE", PolicyNone, false},
		{"private", 0, true},
		{"all", 0, true},
		{"public,none", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParsePolicy(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err == nil {
				if back, err := ParsePolicy(got.String()); err != nil || back != got {
					t.Errorf("ParsePolicy(%q.String()) = %v, %v", got, back, err)
				}
			}
		})
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"", "public", "none", " NONE", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		if p != PolicyPublic && p != PolicyNone {
			t.Fatalf("ParsePolicy(%q) = %v", s, p)
		}
		if back, err := ParsePolicy(p.String()); err != nil || back != p {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
	})
}

var serviceTests = []struct {
	name    string
	in      string
	want    Service
	wantErr bool
}{
	{"target only", "127.0.0.1:8080", Service{Target: "127.0.0.1:8080"}, false},
	{"named", "web=127.0.0.1:8080", Service{Name: "web", Target: "127.0.0.1:8080"}, false},
	{"named with port", "web:80=127.0.0.1:8080", Service{Name: "web", Port: 80, Target: "127.0.0.1:8080"}, false},
	{"port without name", ":80=127.0.0.1:8080", Service{Port: 80, Target: "127.0.0.1:8080"}, false},
	{"host name target", "db=db.lan:5432", Service{Name: "db", Target: "db.lan:5432"}, false},
	{"ipv6 target", "v6=[::1]:53", Service{Name: "v6", Target: "[::1]:53"}, false},
	{"leading zeros", "web:0080=127.0.0.1:08080", Service{Name: "web", Port: 80, Target: "127.0.0.1:8080"}, false},
	{"hyphen name", "my-db=10.0.0.5:5432", Service{Name: "my-db", Target: "10.0.0.5:5432"}, false},
	{"empty", "", Service{}, true},
	{"no port", "127.0.0.1", Service{}, true},
	{"port zero", "127.0.0.1:0", Service{}, true},
	{"port too big", "127.0.0.1:65536", Service{}, true},
	{"named port service name", "127.0.0.1:http", Service{}, true},
	{"empty name", "=127.0.0.1:80", Service{}, true},
	{"upper case name", "Web=127.0.0.1:80", Service{}, true},
	{"dotted name", "a.b=127.0.0.1:80", Service{}, true},
	{"leading hyphen", "-a=127.0.0.1:80", Service{}, true},
	{"bad inner port", "web:x=127.0.0.1:80", Service{}, true},
	{"inner port zero", "web:0=127.0.0.1:80", Service{}, true},
	{"two equals", "a=b=127.0.0.1:80", Service{}, true},
	{"space in host", "a=exa mple:80", Service{}, true},
	{"empty host", "a=:80", Service{}, true},
	{"negative port", "127.0.0.1:-1", Service{}, true},
	{"plus port", "127.0.0.1:+80", Service{}, true},
}

func TestParseService(t *testing.T) {
	for _, tt := range serviceTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseService(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseService(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got != tt.want {
				t.Fatalf("ParseService(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if back, err := ParseService(got.String()); err != nil || back != got {
				t.Errorf("ParseService(%q) = %+v, %v; want %+v", got.String(), back, err, got)
			}
		})
	}
}

func FuzzParseService(f *testing.F) {
	for _, tt := range serviceTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		svc, err := ParseService(s)
		if err != nil {
			return
		}
		if err := svc.validate(); err != nil {
			t.Fatalf("ParseService(%q) = %+v, which does not validate: %v", s, svc, err)
		}
		if svc.targetPort() == 0 {
			t.Fatalf("ParseService(%q) = %+v without a target port", s, svc)
		}
		back, err := ParseService(svc.String())
		if err != nil || back != svc {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, svc, svc.String(), back, err)
		}
		if _, err := assignVIPs([]Service{svc}); err != nil {
			t.Fatalf("assignVIPs(%+v): %v", svc, err)
		}
	})
}

func TestAssignVIPs(t *testing.T) {
	svcs := []Service{
		{Name: "web", Target: "127.0.0.1:8080"},
		{Name: "web", Port: 443, Target: "127.0.0.1:8443"},
		{Target: "127.0.0.1:9000"},
		{Name: "db", Target: "db.lan:5432"},
		{Port: 9000, Target: "127.0.0.1:9001"},
	}
	got, err := assignVIPs(svcs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.2.100:8080", "10.0.2.100:443", "10.0.2.101:9000", "10.0.2.102:5432", "10.0.2.103:9000"}
	var addrs []string
	for _, s := range got {
		addrs = append(addrs, s.Addr.String())
	}
	if !reflect.DeepEqual(addrs, want) {
		t.Errorf("virtual addresses %v, want %v", addrs, want)
	}
	if _, err := assignVIPs([]Service{{Name: "web", Target: "127.0.0.1:80"}, {Name: "web", Target: "127.0.0.2:80"}}); err == nil {
		t.Error("the same name and port published twice: no error")
	}
	many := make([]Service, 101)
	for i := range many {
		many[i] = Service{Target: "127.0.0.1:80"}
	}
	if _, err := assignVIPs(many); !errors.Is(err, errNoVIPs) {
		t.Errorf("101 services: %v, want errNoVIPs", err)
	}
	if _, err := assignVIPs(many[:100]); err != nil {
		t.Errorf("100 services: %v", err)
	}
}

func TestHostNets(t *testing.T) {
	ipnet := func(s string) *net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	h := newHostNets(time.Hour)
	h.lookup = func() ([]net.Addr, error) {
		return []net.Addr{ipnet("127.0.0.1/8"), ipnet("93.184.215.14/24"), ipnet("2606:4700::5/64"), &net.IPAddr{IP: net.IPv4(1, 2, 3, 4)}}, nil
	}
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"93.184.215.14", true},  // the host itself
		{"93.184.215.200", true}, // its LAN
		{"93.184.216.1", false},
		{"::ffff:93.184.215.14", true},
		{"2606:4700::1234", true},
		{"2606:4700:1::1", false},
		{"1.2.3.4", false}, // not an IPNet: ignored
	} {
		if got := h.contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("contains(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	broken := newHostNets(time.Hour)
	broken.lookup = func() ([]net.Addr, error) { return nil, errors.New("netlink down") }
	if !broken.contains(netip.MustParseAddr("1.1.1.1")) {
		t.Error("host addresses unknown: contains = false, want true (deny)")
	}
}

// fakeUpstream answers A lookups from a table and records every question.
type fakeUpstream struct {
	answers map[string][]string
	asked   chan string
}

func (f *fakeUpstream) ask(name string) {
	select {
	case f.asked <- name:
	default:
	}
}

func (f *fakeUpstream) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	f.ask(host)
	ips, ok := f.answers[strings.TrimSuffix(host, ".")]
	if !ok {
		return nil, errNoSuchHost
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}
func (f *fakeUpstream) LookupCNAME(_ context.Context, host string) (string, error) {
	f.ask(host)
	return "", errNoSuchHost
}
func (f *fakeUpstream) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	f.ask(name)
	return nil, errNoSuchHost
}
func (f *fakeUpstream) LookupNS(_ context.Context, name string) ([]*net.NS, error) {
	f.ask(name)
	return nil, errNoSuchHost
}
func (f *fakeUpstream) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	f.ask(name)
	return "", nil, errNoSuchHost
}
func (f *fakeUpstream) LookupTXT(_ context.Context, name string) ([]string, error) {
	f.ask(name)
	return nil, errNoSuchHost
}

func TestResolverFilters(t *testing.T) {
	up := &fakeUpstream{answers: map[string][]string{
		"public.example": {"93.184.215.14"},
		"rebind.example": {"127.0.0.1"},
		"mixed.example":  {"10.1.2.3", "93.184.215.14", "169.254.169.254"},
	}, asked: make(chan string, 100)}
	for _, tt := range []struct {
		name   string
		policy Policy
		host   string
		want   []string
	}{
		{"public answer", PolicyPublic, "public.example.", []string{"93.184.215.14"}},
		{"rebinding to loopback", PolicyPublic, "rebind.example.", nil},
		{"private answers dropped", PolicyPublic, "mixed.example.", []string{"93.184.215.14"}},
		{"own zone never asked upstream", PolicyPublic, "nope." + Domain + ".", nil},
		{"policy none asks nobody", PolicyNone, "public.example.", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(Config{Policy: tt.policy})
			if err != nil {
				t.Fatal(err)
			}
			m.upstream = up
			m.hosts.lookup = func() ([]net.Addr, error) { return nil, nil }
			n := &Network{m: m, ctx: context.Background(), dns: newDNSLimits()}
			r := &resolver{n: n}
			for len(up.asked) > 0 {
				<-up.asked
			}
			addrs, err := r.LookupIPAddr(context.Background(), tt.host)
			var got []string
			for _, a := range addrs {
				got = append(got, a.IP.String())
			}
			if !slices.Equal(got, tt.want) || (err == nil) != (tt.want != nil) {
				t.Errorf("LookupIPAddr(%s) = %v, %v; want %v", tt.host, got, err, tt.want)
			}
			if tt.want == nil && (tt.policy == PolicyNone || strings.Contains(tt.host, Domain)) && len(up.asked) > 0 {
				t.Errorf("upstream asked %q", <-up.asked)
			}
		})
	}
}

func TestDestination(t *testing.T) {
	m, err := New(Config{Services: []Service{{Name: "web", Port: 80, Target: "127.0.0.1:8080"}}})
	if err != nil {
		t.Fatal(err)
	}
	m.hosts.lookup = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("93.184.215.14"), Mask: net.CIDRMask(24, 32)}}, nil
	}
	none, err := New(Config{Policy: PolicyNone, Services: m.cfg.Services})
	if err != nil {
		t.Fatal(err)
	}
	nat, err := New(Config{Services: m.cfg.Services, AllowSMTP: true, Deny: []netip.Prefix{netip.MustParsePrefix("198.41.0.0/24"), netip.MustParsePrefix("2a00:1450::1/128")}})
	if err != nil {
		t.Fatal(err)
	}
	nat.hosts.lookup = m.hosts.lookup
	for _, tt := range []struct {
		name      string
		m         *Manager
		dst       string
		target    string
		published bool
		ok        bool
	}{
		{"published", m, "10.0.2.100:80", "127.0.0.1:8080", true, true},
		{"published under none", none, "10.0.2.100:80", "127.0.0.1:8080", true, true},
		{"published ip, other port", m, "10.0.2.100:8080", "", false, false},
		{"gateway", m, "10.0.2.1:8080", "", false, false},
		{"public", m, "1.1.1.1:443", "1.1.1.1:443", false, true},
		{"public under none", none, "1.1.1.1:443", "", false, false},
		{"host's own public address", m, "93.184.215.14:22", "", false, false},
		{"host's public subnet", m, "93.184.215.1:22", "", false, false},
		{"loopback", m, "127.0.0.1:8080", "", false, false},
		{"metadata", m, "169.254.169.254:80", "", false, false},
		{"azure host agent", m, "168.63.129.16:80", "", false, false},
		{"smtp", m, "1.1.1.1:25", "", false, false},
		{"smtps", m, "1.1.1.1:465", "", false, false},
		{"submission", m, "1.1.1.1:587", "", false, false},
		{"smtp allowed", nat, "1.1.1.1:25", "1.1.1.1:25", false, true},
		{"denied by the provider", nat, "198.41.0.4:443", "", false, false},
		{"denied v6 address", nat, "[2a00:1450::1]:443", "", false, false},
		{"next to a denied one", nat, "[2a00:1450::2]:443", "[2a00:1450::2]:443", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := &Network{m: tt.m}
			target, published, ok := n.destination(netip.MustParseAddrPort(tt.dst))
			if target != tt.target || published != tt.published || ok != tt.ok {
				t.Errorf("destination(%s) = %q, %v, %v; want %q, %v, %v", tt.dst, target, published, ok, tt.target, tt.published, tt.ok)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"unknown policy", Config{Policy: 7}},
		{"tiny mtu", Config{MTU: 100}},
		{"huge mtu", Config{MTU: 70000}},
		{"negative flows", Config{MaxFlows: -1}},
		{"bad service", Config{Services: []Service{{Name: "Web", Target: "127.0.0.1:80"}}}},
		{"service without target", Config{Services: []Service{{Name: "web"}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Errorf("New(%+v): no error", tt.cfg)
			}
		})
	}
}

func TestParseDeny(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7/32"},
		{"198.51.100.9/24", "198.51.100.0/24"},
		{"2001:db8::1", "2001:db8::1/128"},
		{" ::ffff:1.2.3.4 ", "1.2.3.4/32"},
	} {
		if p, err := ParseDeny(tc.in); err != nil || p.String() != tc.want {
			t.Errorf("ParseDeny(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
	for _, in := range []string{"", "example.com", "1.2.3.4/33", "1.2.3"} {
		if _, err := ParseDeny(in); err == nil {
			t.Errorf("ParseDeny(%q): no error", in)
		}
	}
}

// A sandbox opens new flows at most at the flow rate, after a burst; the
// rest are refused and counted, and the rate refills.
func TestFlowRate(t *testing.T) {
	m, err := New(Config{FlowRate: 50, MaxFlows: 10000})
	if err != nil {
		t.Fatal(err)
	}
	n := &Network{m: m, flowRate: rate.NewLimiter(rate.Limit(m.cfg.FlowRate), 2*m.cfg.FlowRate)}
	ok := 0
	for range 1000 {
		if got, _ := n.acquire(); got {
			ok++
			n.release()
		}
	}
	if ok < 100 || ok > 110 || n.Counters().RateLimited != uint64(1000-ok) {
		t.Fatalf("1000 flows at once: %d opened, %d counted as limited; want the burst of 100", ok, n.Counters().RateLimited)
	}
	time.Sleep(100 * time.Millisecond) // 5 more
	if got, _ := n.acquire(); !got {
		t.Fatal("the rate did not refill")
	}
	n.release()
}
