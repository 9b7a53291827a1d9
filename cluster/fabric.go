package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// SessionKey names a session on a provider: the renter's key (its SHA256
// fingerprint, the owner of the session's leases) and the renter's session
// id. Two renters' sessions never share a key, whatever ids they choose.
type SessionKey struct {
	Renter  string
	Session string
}

func (k SessionKey) String() string { return k.Renter + "/" + k.Session }

// A Port delivers frames into one local host's cluster interface. Deliver
// must not keep frame and must not block for long: a full queue drops the
// frame, as a switch does.
type Port interface {
	Deliver(frame []byte)
}

// Peers carries frames to the other providers of a session (the tunnels).
// Send must not keep frame; it reports whether the frame was sent.
type Peers interface {
	Send(provider string, key SessionKey, frame []byte) bool
}

// Fabric is a provider's switch for its hosts' cluster interfaces: it
// answers their ARP for the session's addresses and carries each IPv4
// packet from one host of a session to another, here or through Peers to
// the provider that holds it. A frame that does not come from the host's
// own address, or goes anywhere but another host of the same session, is
// dropped and counted. Its methods are safe for concurrent use: a frame is
// switched on a snapshot of the tables, taking no lock; changes make a new
// snapshot.
type Fabric struct {
	mu      sync.Mutex // serializes changes
	t       atomic.Pointer[table]
	dropped atomic.Uint64
}

// table is a snapshot of the fabric's state: never changed once published.
type table struct {
	peers    Peers
	sessions map[SessionKey]*fabricSession
	hosts    map[string]*Host // by lease id
}

// clone returns a copy of t whose maps may be changed.
func (t *table) clone() *table {
	c := &table{peers: t.peers, sessions: make(map[SessionKey]*fabricSession, len(t.sessions)+1),
		hosts: make(map[string]*Host, len(t.hosts)+1)}
	for k, v := range t.sessions {
		c.sessions[k] = v
	}
	for k, v := range t.hosts {
		c.hosts[k] = v
	}
	return c
}

// fabricSession is one session's part of a table, as immutable.
type fabricSession struct {
	key    SessionKey
	subnet netip.Prefix
	m      *Membership
	byAddr map[netip.Addr]Member
	local  map[netip.Addr]*Host
}

// Host is a local lease attached to the fabric.
type Host struct {
	Lease string
	Key   SessionKey
	Addr  netip.Addr
	port  Port

	bytesIn, bytesOut atomic.Uint64
}

// MTU is the cluster interface's: the largest IP packet between a
// session's hosts. A frame of that size (with its 14-byte Ethernet header)
// and the 4-byte length a tunnel puts before it make 65,536 bytes, two
// full SSH packets of 32 KiB; at the sandbox network's 65,520 every large
// frame took a third packet for its last two bytes.
const MTU = 1<<16 - 4 - etherHeader

// MAC is the cluster interface's hardware address of the host at a: the
// fabric answers ARP with it and every host's interface has its own.
func MAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x7a, b[0], b[1], b[2], b[3]}
}

// Counters returns the cluster bytes the host received and sent, Ethernet
// headers included.
func (h *Host) Counters() (in, out uint64) { return h.bytesIn.Load(), h.bytesOut.Load() }

// NewFabric returns an empty fabric that reaches other providers through
// peers (nil: this provider's hosts only).
func NewFabric(peers Peers) *Fabric {
	f := &Fabric{}
	f.t.Store(&table{peers: peers, sessions: map[SessionKey]*fabricSession{}, hosts: map[string]*Host{}})
	return f
}

// clone returns a copy of s whose maps may be changed.
func (s *fabricSession) clone() *fabricSession {
	c := *s
	c.byAddr = make(map[netip.Addr]Member, len(s.byAddr))
	for k, v := range s.byAddr {
		c.byAddr[k] = v
	}
	c.local = make(map[netip.Addr]*Host, len(s.local)+1)
	for k, v := range s.local {
		c.local[k] = v
	}
	return &c
}

// SetPeers sets what carries frames to other providers (the tunnels, made
// after the fabric they deliver into).
func (f *Fabric) SetPeers(p Peers) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.t.Load().clone()
	t.peers = p
	f.t.Store(t)
}

// Errors of Attach and SetMembership.
var (
	ErrAttached = errors.New("lease already attached")
	ErrSubnet   = errors.New("another subnet than the session's")
)

// Attach joins a local lease's cluster interface, at addr on the session's
// subnet, to its session. The lease's own address is known when its
// sandbox is made; the rest of the session arrives with SetMembership.
func (f *Fabric) Attach(lease string, key SessionKey, subnet netip.Prefix, addr netip.Addr, port Port) (*Host, error) {
	if err := CheckSubnet(subnet); err != nil {
		return nil, err
	}
	if err := CheckHostAddr(subnet, addr); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.t.Load()
	if old.hosts[lease] != nil {
		return nil, fmt.Errorf("%w: %s", ErrAttached, lease)
	}
	s := old.sessions[key]
	if s == nil {
		s = &fabricSession{key: key, subnet: subnet, byAddr: map[netip.Addr]Member{}, local: map[netip.Addr]*Host{}}
	} else {
		s = s.clone()
	}
	if s.subnet != subnet {
		return nil, fmt.Errorf("%w: lease %s on %v, session %s on %v", ErrSubnet, lease, subnet, key, s.subnet)
	}
	if other := s.local[addr]; other != nil {
		return nil, fmt.Errorf("address %v of session %s is lease %s's", addr, key, other.Lease)
	}
	h := &Host{Lease: lease, Key: key, Addr: addr, port: port}
	s.local[addr] = h
	t := old.clone()
	t.hosts[lease] = h
	t.sessions[key] = s
	f.t.Store(t)
	return h, nil
}

// Detach takes a lease off the fabric; the session goes with its last
// local host.
func (f *Fabric) Detach(lease string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.t.Load()
	h := old.hosts[lease]
	if h == nil {
		return
	}
	t := old.clone()
	delete(t.hosts, lease)
	if s := t.sessions[h.Key]; s != nil {
		s = s.clone()
		if s.local[h.Addr] == h {
			delete(s.local, h.Addr)
		}
		if len(s.local) == 0 {
			delete(t.sessions, h.Key)
		} else {
			t.sessions[h.Key] = s
		}
	}
	f.t.Store(t)
}

// Membership returns the membership the fabric holds for a session.
func (f *Fabric) Membership(key SessionKey) (Membership, bool) {
	if s := f.t.Load().sessions[key]; s != nil && s.m != nil {
		return *s.m, true
	}
	return Membership{}, false
}

// SetMembership installs a session's membership, checked by the caller
// (Check: signature, sequence, expiry). It must list every local host of
// the session at the address it was attached with; a local host it does
// not list (dropped by the renter) receives nothing more.
func (f *Fabric) SetMembership(key SessionKey, m Membership) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.t.Load()
	s := old.sessions[key]
	if s == nil {
		return fmt.Errorf("%w: no host of session %s here", ErrRejected, key)
	}
	if m.Subnet != s.subnet {
		return fmt.Errorf("%w: %w: %v, the session's hosts here are on %v", ErrRejected, ErrSubnet, m.Subnet, s.subnet)
	}
	byAddr := make(map[netip.Addr]Member, len(m.Members))
	for _, mb := range m.Members {
		if h := old.hosts[mb.Lease]; h != nil && (h.Key != key || h.Addr != mb.Addr) {
			return fmt.Errorf("%w: member %s: lease %s is at %v of session %s here", ErrRejected, mb.Name, mb.Lease, h.Addr, h.Key)
		}
		if h := s.local[mb.Addr]; h != nil && h.Lease != mb.Lease {
			return fmt.Errorf("%w: member %s: address %v is lease %s's here", ErrRejected, mb.Name, mb.Addr, h.Lease)
		}
		byAddr[mb.Addr] = mb
	}
	s = s.clone()
	s.m = &m
	s.byAddr = byAddr
	t := old.clone()
	t.sessions[key] = s
	f.t.Store(t)
	return nil
}

// RemoteProviders returns the other providers of a session, by the
// membership held: the tunnels it needs.
func (f *Fabric) RemoteProviders(key SessionKey, self string) []Member {
	s := f.t.Load().sessions[key]
	if s == nil || s.m == nil {
		return nil
	}
	seen := map[string]bool{self: true}
	var out []Member
	for _, mb := range s.m.Members {
		if !seen[mb.Provider] {
			seen[mb.Provider] = true
			out = append(out, mb)
		}
	}
	return out
}

// Serves reports whether a provider is a member of a session held here,
// for a tunnel endpoint deciding whom to accept.
func (f *Fabric) Serves(key SessionKey, provider string) bool {
	s := f.t.Load().sessions[key]
	if s == nil {
		return false
	}
	for _, mb := range s.byAddr {
		if mb.Provider == provider {
			return true
		}
	}
	return false
}

// Dropped counts the frames the fabric dropped.
func (f *Fabric) Dropped() uint64 { return f.dropped.Load() }

const (
	etherHeader = 14
	etherTypeIP = 0x0800
	etherARP    = 0x0806
	arpLen      = 28
)

// FromHost takes a frame a local host sent on its cluster interface.
func (f *Fabric) FromHost(lease string, frame []byte) {
	t := f.t.Load()
	h := t.hosts[lease]
	var s *fabricSession
	if h != nil {
		s = t.sessions[h.Key]
	}
	if h == nil || s == nil || len(frame) < etherHeader {
		f.dropped.Add(1)
		return
	}
	h.bytesOut.Add(uint64(len(frame)))
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherARP:
		f.arp(h, s, frame)
	case etherTypeIP:
		src, dst, ok := ipv4Addrs(frame[etherHeader:])
		self, member := s.byAddr[h.Addr]
		if !ok || src != h.Addr || !member || self.Lease != h.Lease {
			f.dropped.Add(1) // spoofed, or a host the renter dropped
			return
		}
		f.route(t, s, dst, frame, "")
	default:
		f.dropped.Add(1)
	}
}

// FromPeer takes a frame another provider sent for a session: it must come
// from the address of a member the membership puts on that provider, and
// go to a local host of the session.
func (f *Fabric) FromPeer(provider string, key SessionKey, frame []byte) error {
	t := f.t.Load()
	s := t.sessions[key]
	if s == nil {
		f.dropped.Add(1)
		return fmt.Errorf("no host of session %s here", key)
	}
	if len(frame) < etherHeader || binary.BigEndian.Uint16(frame[12:14]) != etherTypeIP {
		f.dropped.Add(1)
		return errors.New("not an IPv4 frame")
	}
	src, dst, ok := ipv4Addrs(frame[etherHeader:])
	if !ok {
		f.dropped.Add(1)
		return errors.New("malformed IPv4 packet")
	}
	mb, known := s.byAddr[src]
	if !known || mb.Provider != provider {
		f.dropped.Add(1)
		return fmt.Errorf("source %v is not a host of session %s on provider %s", src, key, provider)
	}
	if !f.route(t, s, dst, frame, provider) {
		return fmt.Errorf("destination %v is not a host of session %s here", dst, key)
	}
	return nil
}

// route delivers an IPv4 frame to the session's host at dst: a local one,
// or (from a local host only) the provider that holds it. from is the
// provider the frame came from, "" for a local host.
func (f *Fabric) route(t *table, s *fabricSession, dst netip.Addr, frame []byte, from string) bool {
	local := s.local[dst]
	mb, member := s.byAddr[dst]
	switch {
	case local != nil && member && mb.Lease == local.Lease:
		copy(frame[0:6], MAC(dst))
		copy(frame[6:12], MAC(netip.AddrFrom4([4]byte(frame[etherHeader+12:etherHeader+16]))))
		local.bytesIn.Add(uint64(len(frame)))
		local.port.Deliver(frame)
		return true
	case member && local == nil && from == "":
		if t.peers != nil && t.peers.Send(mb.Provider, s.key, frame) {
			return true
		}
	}
	f.dropped.Add(1)
	return false
}

// arp answers a host's ARP request for another member's address with that
// member's MAC. Nothing else of ARP is passed on.
func (f *Fabric) arp(h *Host, s *fabricSession, frame []byte) {
	a := frame[etherHeader:]
	if len(a) < arpLen || binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherTypeIP ||
		a[4] != 6 || a[5] != 4 || binary.BigEndian.Uint16(a[6:8]) != 1 {
		f.dropped.Add(1)
		return
	}
	sender := netip.AddrFrom4([4]byte(a[14:18]))
	target := netip.AddrFrom4([4]byte(a[24:28]))
	_, member := s.byAddr[target]
	self, isMember := s.byAddr[h.Addr]
	if sender != h.Addr || target == h.Addr || !member || !isMember || self.Lease != h.Lease {
		f.dropped.Add(1)
		return
	}
	reply := make([]byte, etherHeader+arpLen)
	copy(reply[0:6], frame[6:12])
	copy(reply[6:12], MAC(target))
	binary.BigEndian.PutUint16(reply[12:14], etherARP)
	r := reply[etherHeader:]
	copy(r[0:6], a[0:6]) // htype, ptype, hlen, plen
	binary.BigEndian.PutUint16(r[6:8], 2)
	copy(r[8:14], MAC(target))
	copy(r[14:18], a[24:28])
	copy(r[18:24], a[8:14])
	copy(r[24:28], a[14:18])
	h.bytesIn.Add(uint64(len(reply)))
	h.port.Deliver(reply)
}

// ipv4Addrs returns a well-formed IPv4 packet's source and destination.
func ipv4Addrs(p []byte) (src, dst netip.Addr, ok bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if ihl < 20 || total < ihl || total > len(p) {
		return
	}
	return netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])), true
}
