package netsandbox

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Policy says which destinations outside its network a sandbox may reach.
// Published services are reachable under every policy.
type Policy int

const (
	// PolicyPublic, the default, allows globally routable unicast addresses
	// only: no loopback, private, shared (CGNAT), link-local, multicast,
	// reserved or documentation ranges, and none of the provider's own
	// addresses or directly connected subnets.
	PolicyPublic Policy = iota
	// PolicyNone allows nothing.
	PolicyNone
)

// String returns the policy's name as ParsePolicy accepts it.
func (p Policy) String() string {
	switch p {
	case PolicyPublic:
		return "public"
	case PolicyNone:
		return "none"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy parses a policy name: "public" or "none". The empty string is
// the default, PolicyPublic.
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "public":
		return PolicyPublic, nil
	case "none":
		return PolicyNone, nil
	}
	return 0, fmt.Errorf("unknown egress policy %q (want public or none)", s)
}

// deniedPrefixes are never reachable under PolicyPublic: the IANA
// special-purpose ranges that are not globally reachable, and the IPv6
// ranges that embed an IPv4 address (NAT64, 6to4, Teredo, IPv4-compatible)
// and could otherwise smuggle a private IPv4 destination past the check.
var deniedPrefixes = mustPrefixes(
	// IPv4
	"0.0.0.0/8",        // "this network"; connect(0.0.0.0) reaches loopback
	"10.0.0.0/8",       // RFC 1918
	"100.64.0.0/10",    // shared address space (CGNAT)
	"127.0.0.0/8",      // loopback
	"169.254.0.0/16",   // link-local, cloud metadata (169.254.169.254)
	"168.63.129.16/32", // Azure's host agent (wireserver): public, but the provider's cloud's
	"172.16.0.0/12",    // RFC 1918
	"192.0.0.0/24",     // IETF protocol assignments
	"192.0.2.0/24",     // TEST-NET-1
	"192.88.99.0/24",   // 6to4 relay anycast
	"192.168.0.0/16",   // RFC 1918
	"198.18.0.0/15",    // benchmarking
	"198.51.100.0/24",  // TEST-NET-2
	"203.0.113.0/24",   // TEST-NET-3
	"224.0.0.0/4",      // multicast
	"240.0.0.0/4",      // reserved, and 255.255.255.255 broadcast
	// IPv6
	"::/96",          // unspecified, loopback, IPv4-compatible
	"::ffff:0:0/96",  // IPv4-mapped (checked unmapped first)
	"64:ff9b::/96",   // NAT64
	"64:ff9b:1::/48", // local-use NAT64
	"100::/64",       // discard-only
	"2001::/23",      // IETF protocol assignments, Teredo
	"2001:db8::/32",  // documentation
	"2002::/16",      // 6to4
	"fc00::/7",       // unique local (ULA)
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
	"3fff::/20",      // documentation
	"5f00::/16",      // segment routing SIDs
)

// smtpPorts are mail submission and relay ports, denied by default:
// strangers' hosts sending mail from the provider's address is the abuse
// that gets an address blocklisted (clouds block port 25 for the same
// reason).
var smtpPorts = []uint16{25, 465, 587}

// ParseDeny parses an address or prefix to deny (--egress-deny): an
// address alone is that address.
func ParseDeny(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix (e.g. 203.0.113.7 or 198.51.100.0/24)", s)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func mustPrefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// publicAddr reports whether addr is outside every denied prefix. It does
// not know the provider's own addresses; see hostNets.
func publicAddr(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return false
	}
	for _, p := range deniedPrefixes {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// Allows reports whether the policy lets a sandbox reach addr, not knowing
// the provider's own addresses (a Network checks those too).
func (p Policy) Allows(addr netip.Addr) bool {
	return p == PolicyPublic && publicAddr(addr)
}

// hostNets caches the provider's own addresses and directly connected
// subnets, which PolicyPublic denies however public they are: a service
// bound to 0.0.0.0 on the provider, or a neighbour on its LAN, is not the
// public internet.
type hostNets struct {
	ttl    time.Duration
	lookup func() ([]net.Addr, error)

	mu      sync.Mutex
	expires time.Time
	nets    []netip.Prefix
	err     error
}

func newHostNets(ttl time.Duration) *hostNets {
	return &hostNets{ttl: ttl, lookup: net.InterfaceAddrs}
}

// contains reports whether addr is one of the host's addresses or in one of
// its connected subnets. If the host's addresses cannot be read it answers
// true: deny rather than guess.
func (h *hostNets) contains(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); now.After(h.expires) {
		h.nets, h.err = hostPrefixes(h.lookup)
		h.expires = now.Add(h.ttl)
	}
	if h.err != nil {
		return true
	}
	for _, p := range h.nets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func hostPrefixes(lookup func() ([]net.Addr, error)) ([]netip.Prefix, error) {
	addrs, err := lookup()
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	var ps []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := ipn.Mask.Size()
		if ip.Is4() && ones > 32 {
			ones -= 96
		}
		ps = append(ps, netip.PrefixFrom(ip, ip.BitLen()))
		if p, err := ip.Prefix(ones); err == nil {
			ps = append(ps, p)
		}
	}
	return ps, nil
}
