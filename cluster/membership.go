// Package cluster is a rental session's private network: every host of the
// session has an address on the session's own subnet and reaches every
// other host of the session on any port, across providers, and nothing
// else. This package holds what both sides agree on (the Membership the
// renter signs: who is in the session, at which address, on which
// provider), and the provider's Fabric, which carries the session's frames
// between its own hosts and, through tunnels, to the other providers'.
// docs/architecture.md, "Cluster network", has the whole picture.
package cluster

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/peeraddr"
	"github.com/zennet/zennet/internal/signedjson"
	"github.com/zennet/zennet/internal/sshsig"
)

// Version is the membership format's version, JSON and signed bytes alike.
const Version = 1

// Namespace is the namespace of membership signatures (PROTOCOL.sshsig), so
// that the renter's signature over a membership passes for nothing else.
const Namespace = "cluster-membership-v1@zennet"

// Bounds of a membership.
const (
	MaxMembers = 1024
	// MaxSize bounds an encoded membership: MaxMembers of about 300
	// bytes each, and the rest; it rides in one negotiation message.
	MaxSize = 512 << 10
	// MaxValidity is the longest a membership may be valid for; the
	// renter sends a fresh one well before (Refresh).
	MaxValidity = 10 * time.Minute
)

// Errors of membership checks; every rejection wraps ErrRejected and says
// what was wrong.
var (
	ErrRejected = errors.New("cluster membership rejected")
	// ErrStale: an older (or the same) sequence number than the one
	// already held for the session, or past its expiry.
	ErrStale = errors.New("stale")
	// ErrForged: not signed by the key that owns the session's leases.
	ErrForged = errors.New("not signed by the session's renter")
)

// DefaultPool is where a renter draws its sessions' subnets from: a /16 of
// 10.64.0.0/10 each, clear of the sandboxes' own 10.0.2.0/24.
var DefaultPool = netip.MustParsePrefix("10.64.0.0/10")

// Member is one host of a session.
type Member struct {
	// Name is the host's name in the session (zennet-3): inside every
	// host it resolves to Addr.
	Name string `json:"name"`
	// Addr is the host's address on the session's subnet.
	Addr netip.Addr `json:"addr"`
	// Lease is the host's lease on its provider.
	Lease string `json:"lease"`
	// Provider is the SHA256 fingerprint of its provider's host key, as
	// the renter pinned it.
	Provider string `json:"provider"`
	// Endpoint is where that provider's gateway listens (HOST:PORT): the
	// other providers' tunnels dial it.
	Endpoint string `json:"endpoint"`
	// HostKey is the host's SSH host key (authorized_keys format), as the
	// renter pinned it: the other hosts' known_hosts.
	HostKey string `json:"host_key"`
	// Slots is how many processes an MPI job starts on the host (its
	// CPUs, rounded up).
	Slots int `json:"slots"`
}

// Membership is the renter's signed statement of who is in a session.
// Each provider serving the session holds the latest one and trusts
// nothing else about the session's other hosts.
type Membership struct {
	// Session is the renter's session id.
	Session string
	// Subnet is the session's private network.
	Subnet netip.Prefix
	// Seq numbers the session's memberships from 1, strictly increasing:
	// each change (a host replaced, dropped) is a new one.
	Seq uint64
	// Expires is when the membership stops being valid; the renter
	// sends a new one before.
	Expires time.Time
	Members []Member
	// Signature is by the renter's key over CanonicalBytes; nil until
	// Sign.
	Signature *ssh.Signature
}

// CanonicalBytes is the membership in SSH wire format: the string
// "zennet-cluster-membership", uint32 version, string session, string
// subnet, uint64 seq, int64 expiry (Unix ns), uint32 count, then each
// member's name, addr, lease, provider, endpoint and host key as strings
// and its slots as uint32.
func (m *Membership) CanonicalBytes() []byte {
	b := signedjson.AppendString(nil, "zennet-cluster-membership")
	b = binary.BigEndian.AppendUint32(b, Version)
	b = signedjson.AppendString(b, m.Session)
	b = signedjson.AppendString(b, m.Subnet.String())
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Expires.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Members)))
	for _, mb := range m.Members {
		for _, s := range []string{mb.Name, mb.Addr.String(), mb.Lease, mb.Provider, mb.Endpoint, mb.HostKey} {
			b = signedjson.AppendString(b, s)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(mb.Slots))
	}
	return b
}

// Sign signs the membership with the renter's key.
func (m *Membership) Sign(signer ssh.Signer) error {
	if err := m.validate(); err != nil {
		return err
	}
	sig, err := sshsig.Sign(signer, Namespace, m.CanonicalBytes())
	if err != nil {
		return fmt.Errorf("sign cluster membership: %w", err)
	}
	m.Signature = sig
	return nil
}

// Verify checks the signature against the renter's key.
func (m *Membership) Verify(renter ssh.PublicKey) error {
	if err := sshsig.Verify(renter, Namespace, m.CanonicalBytes(), m.Signature); err != nil {
		return fmt.Errorf("%w: %w: %v", ErrRejected, ErrForged, err)
	}
	return nil
}

// Member returns the member with lease id lease.
func (m *Membership) Member(lease string) (Member, bool) {
	for _, mb := range m.Members {
		if mb.Lease == lease {
			return mb, true
		}
	}
	return Member{}, false
}

var (
	nameRE     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	idRE       = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	providerRE = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)
)

// validate checks the membership's form (not its signature).
func (m *Membership) validate() error {
	if !idRE.MatchString(m.Session) {
		return fmt.Errorf("session id %q: 1 to 64 letters, digits, '.', '_' or '-'", m.Session)
	}
	if err := CheckSubnet(m.Subnet); err != nil {
		return err
	}
	if m.Seq == 0 {
		return errors.New("sequence number 0")
	}
	if m.Expires.IsZero() || m.Expires.Year() > 2262 || m.Expires.Year() < 1970 {
		return fmt.Errorf("expiry %v out of range", m.Expires)
	}
	if len(m.Members) == 0 || len(m.Members) > MaxMembers {
		return fmt.Errorf("%d members: between 1 and %d", len(m.Members), MaxMembers)
	}
	names, addrs, leases := map[string]bool{}, map[netip.Addr]bool{}, map[string]bool{}
	for _, mb := range m.Members {
		if !nameRE.MatchString(mb.Name) {
			return fmt.Errorf("member name %q: lowercase letters, digits and '-', from a letter, at most 63", mb.Name)
		}
		if err := CheckHostAddr(m.Subnet, mb.Addr); err != nil {
			return fmt.Errorf("member %s: %w", mb.Name, err)
		}
		if !idRE.MatchString(mb.Lease) {
			return fmt.Errorf("member %s: lease id %q", mb.Name, mb.Lease)
		}
		if !providerRE.MatchString(mb.Provider) {
			return fmt.Errorf("member %s: provider %q is not a SHA256 key fingerprint", mb.Name, mb.Provider)
		}
		if err := checkEndpoint(mb.Endpoint); err != nil {
			return fmt.Errorf("member %s: %w", mb.Name, err)
		}
		if k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(mb.HostKey)); err != nil || k == nil || len(rest) > 0 || len(mb.HostKey) > 8<<10 {
			return fmt.Errorf("member %s: host key is not one authorized_keys line", mb.Name)
		}
		if mb.Slots < 1 || mb.Slots > 4096 {
			return fmt.Errorf("member %s: %d slots, between 1 and 4096", mb.Name, mb.Slots)
		}
		if names[mb.Name] || addrs[mb.Addr] || leases[mb.Lease] {
			return fmt.Errorf("member %s: name, address or lease listed twice", mb.Name)
		}
		names[mb.Name], addrs[mb.Addr], leases[mb.Lease] = true, true, true
	}
	return nil
}

// CheckSubnet checks a session subnet: IPv4, private (10.0.0.0/8), clear
// of the sandboxes' own 10.0.2.0/24, between /16 and /29.
func CheckSubnet(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
		return fmt.Errorf("subnet %v: an IPv4 network address with its prefix length, e.g. 10.77.0.0/16", p)
	}
	if p.Bits() < 16 || p.Bits() > 29 {
		return fmt.Errorf("subnet %v: between /16 and /29", p)
	}
	if !netip.MustParsePrefix("10.0.0.0/8").Contains(p.Addr()) {
		return fmt.Errorf("subnet %v: must be inside 10.0.0.0/8", p)
	}
	if p.Overlaps(netip.MustParsePrefix("10.0.2.0/24")) {
		return fmt.Errorf("subnet %v: overlaps the sandboxes' own 10.0.2.0/24", p)
	}
	return nil
}

// CheckHostAddr checks that a is a host address of subnet p (neither its
// network nor its broadcast address).
func CheckHostAddr(p netip.Prefix, a netip.Addr) error {
	if !a.Is4() || !p.Contains(a) {
		return fmt.Errorf("address %v is not in the session's subnet %v", a, p)
	}
	if a == p.Addr() || a == lastAddr(p) {
		return fmt.Errorf("address %v is the subnet's network or broadcast address", a)
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// HostAddr is the address of the session's i-th host (from 1): the
// subnet's i-th host address.
func HostAddr(p netip.Prefix, i int) (netip.Addr, error) {
	if i < 1 || i >= 1<<(32-p.Bits())-1 {
		return netip.Addr{}, fmt.Errorf("host %d does not fit in %v", i, p)
	}
	b := p.Addr().As4()
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])+uint32(i))
	return netip.AddrFrom4(b), nil
}

// membershipJSON is the wire form.
type membershipJSON struct {
	V       int             `json:"v"`
	Session string          `json:"session"`
	Subnet  string          `json:"subnet"`
	Seq     uint64          `json:"seq"`
	Expires time.Time       `json:"expires"`
	Members []Member        `json:"members"`
	Sig     *signedjson.Sig `json:"sig"`
}

// MarshalJSON writes the wire form.
func (m Membership) MarshalJSON() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(membershipJSON{V: Version, Session: m.Session, Subnet: m.Subnet.String(), Seq: m.Seq,
		Expires: m.Expires, Members: m.Members, Sig: signedjson.FromSignature(m.Signature)})
}

// UnmarshalJSON reads and validates the wire form; unknown fields are an
// error. It does not verify the signature.
func (m *Membership) UnmarshalJSON(b []byte) error {
	var w membershipJSON
	if err := signedjson.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.V != Version {
		return fmt.Errorf("cluster membership version %d, this build reads %d", w.V, Version)
	}
	subnet, err := netip.ParsePrefix(w.Subnet)
	if err != nil {
		return fmt.Errorf("subnet: %w", err)
	}
	sig, err := w.Sig.Signature()
	if err != nil {
		return err
	}
	out := Membership{Session: w.Session, Subnet: subnet, Seq: w.Seq, Expires: w.Expires, Members: w.Members, Signature: sig}
	if err := out.validate(); err != nil {
		return err
	}
	*m = out
	return nil
}

// Encode returns the membership as one line of JSON, newline included.
func Encode(m Membership) ([]byte, error) {
	b, err := signedjson.EncodeLine(m, MaxSize)
	if err != nil {
		return nil, fmt.Errorf("encode cluster membership: %w", err)
	}
	return b, nil
}

// Decode parses and validates one encoded membership. It does not verify
// the signature: Check does.
func Decode(b []byte) (Membership, error) {
	var m Membership
	if err := signedjson.DecodeLine(b, MaxSize, &m); err != nil {
		return Membership{}, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return m, nil
}

// Check accepts m as the session's new membership on a provider: signed
// by renter (the key that owns the session's leases here), newer than
// held (the one the provider holds, nil for none), not expired at now, for
// the same session and subnet as held.
func Check(m Membership, renter ssh.PublicKey, held *Membership, now time.Time) error {
	if err := m.Verify(renter); err != nil {
		return err
	}
	if !now.Before(m.Expires) {
		return fmt.Errorf("%w: %w: expired at %v", ErrRejected, ErrStale, m.Expires.UTC().Format(time.RFC3339))
	}
	if m.Expires.Sub(now) > MaxValidity+time.Minute {
		return fmt.Errorf("%w: valid until %v, more than %v ahead", ErrRejected, m.Expires.UTC().Format(time.RFC3339), MaxValidity)
	}
	if held != nil {
		if held.Session != m.Session || held.Subnet != m.Subnet {
			return fmt.Errorf("%w: session %s on %v, held %s on %v", ErrRejected, m.Session, m.Subnet, held.Session, held.Subnet)
		}
		// The same membership again asks the provider to look at its
		// paths again (the renter does, once every provider holds it).
		same := m.Seq == held.Seq && bytes.Equal(m.CanonicalBytes(), held.CanonicalBytes())
		if m.Seq <= held.Seq && !same {
			return fmt.Errorf("%w: %w: sequence %d, already at %d", ErrRejected, ErrStale, m.Seq, held.Seq)
		}
	}
	return nil
}

// checkEndpoint checks a member's endpoint: its provider's gateway as
// HOST:PORT, or as a market multiaddr ending in /p2p/ID (a provider
// behind a NAT, its gateway served over libp2p).
func checkEndpoint(e string) error {
	if len(e) > 300 {
		return fmt.Errorf("endpoint of %d bytes", len(e))
	}
	if peeraddr.Is(e) {
		if err := peeraddr.Check(e); err != nil {
			return fmt.Errorf("endpoint %w", err)
		}
		return nil
	}
	if host, port, err := net.SplitHostPort(e); err != nil || host == "" || port == "" {
		return fmt.Errorf("endpoint %q is neither HOST:PORT nor a market multiaddr", e)
	}
	return nil
}
