package cluster

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testenv"
)

// recorder is a host's interface as the fabric sees it: the frames
// delivered to it.
type recorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (r *recorder) Deliver(frame []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, bytes.Clone(frame))
}

func (r *recorder) take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.frames
	r.frames = nil
	return out
}

type sent struct {
	provider string
	key      SessionKey
	frame    []byte
}

type peerRecorder struct {
	mu   sync.Mutex
	sent []sent
}

func (p *peerRecorder) Send(provider string, key SessionKey, frame []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, sent{provider, key, bytes.Clone(frame)})
	return true
}

// ipFrame is an Ethernet frame carrying a minimal IPv4/UDP packet.
func ipFrame(src, dst netip.Addr, payload string) []byte {
	f := make([]byte, etherHeader+20+8+len(payload))
	copy(f[0:6], []byte{0x5a, 1, 2, 3, 4, 5})
	copy(f[6:12], MAC(src))
	binary.BigEndian.PutUint16(f[12:14], etherTypeIP)
	ip := f[etherHeader:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], src.AsSlice())
	copy(ip[16:20], dst.AsSlice())
	copy(ip[28:], payload)
	return f
}

// arpRequest asks who has target, from sender.
func arpRequest(sender, target netip.Addr) []byte {
	f := make([]byte, etherHeader+arpLen)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], MAC(sender))
	binary.BigEndian.PutUint16(f[12:14], etherARP)
	a := f[etherHeader:]
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIP)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 1)
	copy(a[8:14], MAC(sender))
	copy(a[14:18], sender.AsSlice())
	copy(a[24:28], target.AsSlice())
	return f
}

type fabricFixture struct {
	f        *Fabric
	peers    *peerRecorder
	key      SessionKey
	m        Membership
	ports    []*recorder // hosts 1 and 2, local
	self     string
	remote   string
	renter   gossh.Signer
	addrs    []netip.Addr
	stranger SessionKey
}

// newFabric attaches hosts 1 and 2 of sample's session here (provider
// self) and installs the membership; host 3 is on remote.
func newFabric(t testing.TB) *fabricFixture {
	t.Helper()
	x := &fabricFixture{peers: &peerRecorder{}, self: fingerprint(t), remote: fingerprint(t), renter: testenv.Signer(t)}
	x.f = NewFabric(x.peers)
	x.m = sample(t, x.renter, x.self, x.remote)
	x.key = SessionKey{Renter: gossh.FingerprintSHA256(x.renter.PublicKey()), Session: x.m.Session}
	for _, mb := range x.m.Members {
		x.addrs = append(x.addrs, mb.Addr)
	}
	for _, mb := range x.m.Members[:2] {
		r := &recorder{}
		if _, err := x.f.Attach(mb.Lease, x.key, x.m.Subnet, mb.Addr, r); err != nil {
			t.Fatal(err)
		}
		x.ports = append(x.ports, r)
	}
	if err := x.f.SetMembership(x.key, x.m); err != nil {
		t.Fatal(err)
	}
	return x
}

func TestFabricARP(t *testing.T) {
	x := newFabric(t)
	for _, target := range []netip.Addr{x.addrs[1], x.addrs[2]} { // local and remote members
		x.f.FromHost("zn-leasea", arpRequest(x.addrs[0], target))
		got := x.ports[0].take()
		if len(got) != 1 {
			t.Fatalf("ARP for %v: %d replies", target, len(got))
		}
		r := got[0]
		a := r[etherHeader:]
		if !bytes.Equal(r[0:6], MAC(x.addrs[0])) || binary.BigEndian.Uint16(a[6:8]) != 2 ||
			!bytes.Equal(a[8:14], MAC(target)) || !bytes.Equal(a[14:18], target.AsSlice()) || !bytes.Equal(a[24:28], x.addrs[0].AsSlice()) {
			t.Fatalf("ARP reply for %v: % x", target, r)
		}
	}
	// Nothing for an address outside the session, or a spoofed sender.
	x.f.FromHost("zn-leasea", arpRequest(x.addrs[0], netip.MustParseAddr("10.77.0.99")))
	x.f.FromHost("zn-leasea", arpRequest(x.addrs[1], x.addrs[2]))
	if got := x.ports[0].take(); len(got) != 0 {
		t.Fatalf("%d replies to ARP that must go unanswered", len(got))
	}
}

func TestFabricRoutes(t *testing.T) {
	x := newFabric(t)
	// Local to local: delivered, hardware addresses the receiver expects.
	x.f.FromHost("zn-leasea", ipFrame(x.addrs[0], x.addrs[1], "hello"))
	got := x.ports[1].take()
	if len(got) != 1 || !bytes.Equal(got[0][0:6], MAC(x.addrs[1])) || !strings.HasSuffix(string(got[0]), "hello") {
		t.Fatalf("host 2 got %q", got)
	}
	// Local to remote: through the peer that holds it.
	x.f.FromHost("zn-leaseb", ipFrame(x.addrs[1], x.addrs[2], "far"))
	if len(x.peers.sent) != 1 || x.peers.sent[0].provider != x.remote || x.peers.sent[0].key != x.key {
		t.Fatalf("sent to peers: %+v", x.peers.sent)
	}
	// Remote to local.
	if err := x.f.FromPeer(x.remote, x.key, ipFrame(x.addrs[2], x.addrs[0], "back")); err != nil {
		t.Fatal(err)
	}
	if got := x.ports[0].take(); len(got) != 1 || !strings.HasSuffix(string(got[0]), "back") {
		t.Fatalf("host 1 got %q", got)
	}
	in, out := x.f.t.Load().hosts["zn-leasea"].Counters()
	if in != uint64(len(ipFrame(x.addrs[2], x.addrs[0], "back"))) || out != uint64(len(ipFrame(x.addrs[0], x.addrs[1], "hello"))) {
		t.Fatalf("host 1's counters: in %d out %d", in, out)
	}
}

func TestFabricDrops(t *testing.T) {
	x := newFabric(t)
	// A second session of another renter, with the same subnet and
	// addresses, on the same provider.
	other := SessionKey{Renter: fingerprint(t), Session: x.m.Session}
	otherPort := &recorder{}
	if _, err := x.f.Attach("zn-other", other, x.m.Subnet, x.addrs[1], otherPort); err != nil {
		t.Fatal(err)
	}
	om := x.m
	om.Members = []Member{{Name: "zennet-1", Addr: x.addrs[1], Lease: "zn-other", Provider: x.self, Endpoint: "127.0.0.1:2222"}}
	if err := x.f.SetMembership(other, om); err != nil {
		t.Fatal(err)
	}
	before := x.f.Dropped()
	for _, tt := range []struct {
		name  string
		lease string
		frame []byte
	}{
		{"spoofed source", "zn-leasea", ipFrame(x.addrs[1], x.addrs[0], "x")},
		{"outside the session", "zn-leasea", ipFrame(x.addrs[0], netip.MustParseAddr("10.77.0.99"), "x")},
		{"to the provider's network", "zn-leasea", ipFrame(x.addrs[0], netip.MustParseAddr("10.0.2.1"), "x")},
		{"to the internet", "zn-leasea", ipFrame(x.addrs[0], netip.MustParseAddr("8.8.8.8"), "x")},
		{"broadcast", "zn-leasea", ipFrame(x.addrs[0], netip.MustParseAddr("10.77.255.255"), "x")},
		{"runt", "zn-leasea", []byte{1, 2, 3}},
		{"IPv6", "zn-leasea", func() []byte { f := ipFrame(x.addrs[0], x.addrs[1], "x"); f[12], f[13] = 0x86, 0xdd; return f }()},
		{"unknown lease", "zn-nobody", ipFrame(x.addrs[0], x.addrs[1], "x")},
		{"other session to this one", "zn-other", ipFrame(x.addrs[1], x.addrs[0], "x")},
	} {
		x.f.FromHost(tt.lease, tt.frame)
		for i, p := range append(x.ports, otherPort) {
			if got := p.take(); len(got) != 0 {
				t.Errorf("%s: host %d got %d frames", tt.name, i, len(got))
			}
		}
	}
	if len(x.peers.sent) != 0 {
		t.Errorf("frames sent to peers: %d", len(x.peers.sent))
	}
	// From a peer: only from its own members' addresses, to local ones.
	for _, tt := range []struct {
		name     string
		provider string
		key      SessionKey
		frame    []byte
	}{
		{"source not on that provider", x.remote, x.key, ipFrame(x.addrs[0], x.addrs[1], "x")},
		{"a stranger provider", fingerprint(t), x.key, ipFrame(x.addrs[2], x.addrs[0], "x")},
		{"a session not here", x.remote, SessionKey{Renter: x.key.Renter, Session: "other"}, ipFrame(x.addrs[2], x.addrs[0], "x")},
		{"to a remote member", x.remote, x.key, ipFrame(x.addrs[2], x.addrs[2], "x")},
	} {
		if err := x.f.FromPeer(tt.provider, tt.key, tt.frame); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
		for i, p := range append(x.ports, otherPort) {
			if got := p.take(); len(got) != 0 {
				t.Errorf("%s: host %d got %d frames", tt.name, i, len(got))
			}
		}
	}
	if x.f.Dropped() <= before {
		t.Error("drops not counted")
	}
}

func TestFabricMembershipChanges(t *testing.T) {
	x := newFabric(t)
	// A membership that puts a local lease at another address changes
	// nothing.
	bad := x.m
	bad.Seq = 2
	bad.Members = append([]Member{}, x.m.Members...)
	bad.Members[0].Addr, bad.Members[1].Addr = bad.Members[1].Addr, bad.Members[0].Addr
	if err := x.f.SetMembership(x.key, bad); err == nil {
		t.Fatal("a membership moving a local lease was accepted")
	}
	x.f.FromHost("zn-leasea", ipFrame(x.addrs[0], x.addrs[1], "still"))
	if got := x.ports[1].take(); len(got) != 1 {
		t.Fatalf("after a refused membership, host 2 got %d frames", len(got))
	}
	// The renter drops host 2: it neither sends nor receives any more.
	dropped := x.m
	dropped.Seq = 3
	dropped.Members = []Member{x.m.Members[0], x.m.Members[2]}
	if err := x.f.SetMembership(x.key, dropped); err != nil {
		t.Fatal(err)
	}
	x.f.FromHost("zn-leasea", ipFrame(x.addrs[0], x.addrs[1], "gone"))
	x.f.FromHost("zn-leaseb", ipFrame(x.addrs[1], x.addrs[0], "gone"))
	for i, p := range x.ports {
		if got := p.take(); len(got) != 0 {
			t.Errorf("host %d got %d frames after host 2 was dropped", i+1, len(got))
		}
	}
	if got := x.f.RemoteProviders(x.key, x.self); len(got) != 1 || got[0].Provider != x.remote {
		t.Errorf("remote providers: %+v", got)
	}
	if !x.f.Serves(x.key, x.remote) || x.f.Serves(x.key, fingerprint(t)) {
		t.Error("Serves")
	}
	x.f.Detach("zn-leasea")
	x.f.Detach("zn-leaseb")
	if _, ok := x.f.Membership(x.key); ok {
		t.Error("the session outlived its last local host")
	}
}

func FuzzFabricFrame(f *testing.F) {
	x := newFabric(f)
	f.Add(ipFrame(x.addrs[0], x.addrs[1], "x"))
	f.Add(arpRequest(x.addrs[0], x.addrs[2]))
	f.Fuzz(func(t *testing.T, frame []byte) {
		x.f.FromHost("zn-leasea", bytes.Clone(frame))
		x.f.FromPeer(x.remote, x.key, bytes.Clone(frame))
		for _, p := range x.ports {
			for _, got := range p.take() {
				if len(got) < etherHeader {
					t.Fatalf("delivered a runt: % x", got)
				}
			}
		}
	})
}
