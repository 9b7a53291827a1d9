// Package market is the domain of zennet's market (issue 9): providers'
// signed, expiring, proof-of-work-stamped announcements; the directory of
// announcements a node knows; when a provider announces anew (Originator);
// the renter's choice among offers by its rules (price
// per unit of work, score, payment method, reputation, risk spreading),
// with a reason for every provider; and each side's own reputation book of
// its counterparts.
//
// The package does no networking and knows nothing of SSH or the command
// line: p2p carries announcements (libp2p's gossipsub and DHT), sshgate
// offers, cli asks and prints. See docs/market.md.
package market

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/peeraddr"
	"github.com/zennet/zennet/internal/signedjson"
	"github.com/zennet/zennet/internal/sshsig"
)

// AnnouncementVersion is the version of the announcement format, JSON and
// signed bytes alike.
const AnnouncementVersion = 1

// MaxAnnouncementSize bounds an encoded announcement (its JSON, without the
// trailing newline). An ed25519 or ECDSA host key leaves about 1.3 KiB
// free; an RSA key of more than about 4096 bits does not fit.
const MaxAnnouncementSize = 2 << 10

// AnnouncementNamespace is the namespace of announcement signatures, made as
// OpenSSH's PROTOCOL.sshsig describes (package internal/sshsig): a provider
// host key's signature over an announcement can pass for nothing else the
// key signs (an SSH key exchange, a usage report, a calibration set).
const AnnouncementNamespace = "announcement-v1@zennet"

// Time rules of announcements.
const (
	// MaxValidity is the longest an announcement may be valid: Expires is
	// after Issued and at most this much later.
	MaxValidity = 24 * time.Hour
	// MaxClockSkew is how far in the future Issued may be, by the
	// receiver's clock.
	MaxClockSkew = 2 * time.Minute
)

// Suggested defaults for the wiring (docs/market.md has the arithmetic).
const (
	// DefaultMinWork is the proof of work a node asks of announcements it
	// receives: 2^20 hashes, about a quarter of a second of one core.
	DefaultMinWork = 20
	// DefaultMintWork is what a provider stamps its announcements with:
	// above DefaultMinWork, so that receivers who ask a little more still
	// take them (2^22 hashes, about a second of one core).
	DefaultMintWork = 22
	// DefaultValidity is how long a provider's announcements are valid; it
	// announces anew (next Seq) well before, e.g. every half of it.
	DefaultValidity = time.Hour
)

// Bounds of announcement fields.
const (
	MaxAddressLen     = 261 // a 253-byte host name, ':' and a port, or a bracketed IPv6 address
	MaxCalibrationLen = 128
	MaxMethods        = 8
	MaxLeases         = 1 << 20
	MaxCPUs           = 1 << 20
	MaxScore          = 1e6
	MaxPricePerWork   = 1e12 // msat per reference CPU-second of work: 10 000 BTC
)

// Payment methods an announcement may name. They are pay.MethodEmbedded
// and pay.MethodLightning; the market package does not import pay (and
// with it lnd), so a test keeps the two lists equal where pay is built.
const (
	MethodEmbedded  = "embedded"
	MethodLightning = "lightning"
)

// KnownMethods lists the payment methods announcements may name.
var KnownMethods = []string{MethodEmbedded, MethodLightning}

// Errors of announcement checks. Check's errors wrap exactly one of these,
// and their messages say what is wrong.
var (
	// ErrInvalid: malformed, a field missing or out of range, too large.
	ErrInvalid = errors.New("invalid announcement")
	// ErrBadSignature: unsigned, or the signature does not verify with the
	// announced provider key: forged, signed by another key, or changed
	// after signing.
	ErrBadSignature = errors.New("announcement signature does not verify")
	// ErrExpired: the announcement's Expires has passed.
	ErrExpired = errors.New("announcement expired")
	// ErrFuture: issued later than the receiver's clock allows
	// (MaxClockSkew).
	ErrFuture = errors.New("announcement issued in the future")
	// ErrWork: the proof-of-work stamp has fewer leading zero bits than
	// the receiver asks.
	ErrWork = errors.New("announcement proof of work too weak")
)

// Capacity is what a provider can lease now.
type Capacity struct {
	// Leases is how many more hosts it can grant.
	Leases int
	// MemoryBytes, CPUs and DiskBytes are the free memory, CPU cores and
	// disk over all of them.
	MemoryBytes int64
	CPUs        float64
	DiskBytes   int64
}

// Announcement is a provider's signed statement that it sells capacity at
// an address, on terms. It is small, expires within MaxValidity, and
// carries a proof-of-work stamp whose difficulty each receiver chooses.
type Announcement struct {
	// Version is AnnouncementVersion; Mint and Sign set it when zero.
	Version int
	// Provider is the provider's SSH host key in authorized_keys form
	// without options or comment, exactly as ProviderString writes it:
	// the identity that signs the announcement and that renters pin when
	// they dial Address.
	Provider string
	// Address is host:port of the provider's SSH gateway, or the
	// multiaddr of its market node (ending in its /p2p/ID, often through
	// a relay's /p2p-circuit) where its gateway is served over libp2p.
	Address string
	// Capacity is what is free now.
	Capacity Capacity
	// PricePerWorkMsat is the price of one reference CPU-second of benchmark
	// work in msat (docs/pricing.md); 0 means flat rates, no price per
	// unit of work.
	PricePerWorkMsat float64
	// Score is the work the provider's hosts do relative to the reference
	// machine (RelativeScore over its calibration set); 0 means
	// uncalibrated.
	Score float64
	// Calibration is the digest of the provider's calibration set
	// (bench.Set.Digest), empty when it has none.
	Calibration string
	// Methods are the payment methods it accepts, preferred first.
	Methods []string
	// Seq numbers the provider's announcements: a higher one supersedes.
	Seq uint64
	// Issued and Expires bound the announcement's validity.
	Issued, Expires time.Time
	// Nonce is the proof-of-work stamp (Mint).
	Nonce uint64
	// Signature is by the provider's host key over CanonicalBytes,
	// wrapped as PROTOCOL.sshsig describes; nil until Sign.
	Signature *ssh.Signature
}

// SameOffer reports whether a and b offer the same: address, leases, CPUs,
// prices, score, calibration and methods equal, and free memory and disk
// within 1% (they move a little all the time). Who signed them, their Seq
// and validity are not compared.
func SameOffer(a, b Announcement) bool {
	near := func(x, y int64) bool {
		d := x - y
		if d < 0 {
			d = -d
		}
		return d <= max(x, y)/100
	}
	return a.Address == b.Address && a.Capacity.Leases == b.Capacity.Leases && a.Capacity.CPUs == b.Capacity.CPUs &&
		near(a.Capacity.MemoryBytes, b.Capacity.MemoryBytes) && near(a.Capacity.DiskBytes, b.Capacity.DiskBytes) &&
		a.PricePerWorkMsat == b.PricePerWorkMsat && a.Score == b.Score && a.Calibration == b.Calibration &&
		slices.Equal(a.Methods, b.Methods)
}

// ProviderString is k in the form Announcement.Provider takes: its
// authorized_keys line without comment or newline.
func ProviderString(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// CanonicalBytes is the announcement's content in SSH wire format: the
// string "zennet-announcement", uint32 version, string provider, string
// address, capacity as uint64 leases, uint64 memory bytes, the IEEE 754
// bits of the CPUs as uint64 and uint64 disk bytes, the IEEE 754 bits of
// the price per work and of the score as uint64s, string calibration,
// uint32 number of methods then each method as a string, uint64 seq, int64
// issued and expires in Unix ns, and last uint64 nonce. Both the proof of
// work and the signature cover all of it, so a provider mints first and
// signs after.
func (a *Announcement) CanonicalBytes() []byte {
	b := make([]byte, 0, 192+len(a.Provider)+len(a.Address)+len(a.Calibration)+16*len(a.Methods))
	b = signedjson.AppendString(b, "zennet-announcement")
	b = binary.BigEndian.AppendUint32(b, uint32(a.Version))
	b = signedjson.AppendString(b, a.Provider)
	b = signedjson.AppendString(b, a.Address)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Capacity.Leases))
	b = binary.BigEndian.AppendUint64(b, uint64(a.Capacity.MemoryBytes))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(a.Capacity.CPUs))
	b = binary.BigEndian.AppendUint64(b, uint64(a.Capacity.DiskBytes))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(a.PricePerWorkMsat))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(a.Score))
	b = signedjson.AppendString(b, a.Calibration)
	b = binary.BigEndian.AppendUint32(b, uint32(len(a.Methods)))
	for _, m := range a.Methods {
		b = signedjson.AppendString(b, m)
	}
	b = binary.BigEndian.AppendUint64(b, a.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Issued.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(a.Expires.UnixNano()))
	return binary.BigEndian.AppendUint64(b, a.Nonce)
}

// ProviderKey parses Provider.
func (a *Announcement) ProviderKey() (ssh.PublicKey, error) {
	k, err := parseProvider(a.Provider)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return k, nil
}

// Fingerprint is the SHA256 fingerprint of the provider key
// (ssh.FingerprintSHA256), or "" when Provider does not parse. It is the
// key reputation books and Candidates use.
func (a *Announcement) Fingerprint() string {
	k, err := parseProvider(a.Provider)
	if err != nil {
		return ""
	}
	return ssh.FingerprintSHA256(k)
}

// Sign signs the announcement with the provider's host key, which must be
// the key Provider names. Mint before Sign: changing the nonce afterwards
// breaks the signature.
func (a *Announcement) Sign(signer ssh.Signer) error {
	if a.Version == 0 {
		a.Version = AnnouncementVersion
	}
	if got := ProviderString(signer.PublicKey()); got != a.Provider {
		return fmt.Errorf("sign announcement: the signer's key %s is not the announced provider's", ssh.FingerprintSHA256(signer.PublicKey()))
	}
	if err := a.validate(); err != nil {
		return fmt.Errorf("sign announcement: %w", err)
	}
	sig, err := sshsig.Sign(signer, AnnouncementNamespace, a.CanonicalBytes())
	if err != nil {
		return fmt.Errorf("sign announcement: %w", err)
	}
	a.Signature = sig
	return nil
}

// Verify checks the signature against the announced provider key. Its
// errors wrap ErrBadSignature (or ErrInvalid when Provider does not
// parse).
func (a *Announcement) Verify() error {
	k, err := a.ProviderKey()
	if err != nil {
		return err
	}
	if err := sshsig.Verify(k, AnnouncementNamespace, a.CanonicalBytes(), a.Signature); err != nil {
		if a.Signature == nil {
			return fmt.Errorf("%w: not signed", ErrBadSignature)
		}
		return fmt.Errorf("%w: forged, changed after signing, or not signed by %s: %v", ErrBadSignature, ssh.FingerprintSHA256(k), err)
	}
	return nil
}

// Work is the announcement's proof of work: the number of leading zero
// bits of the SHA-256 of its CanonicalBytes (0 to 256).
func Work(a *Announcement) uint {
	return leadingZeros(sha256.Sum256(a.CanonicalBytes()))
}

func leadingZeros(h [sha256.Size]byte) uint {
	var n uint
	for i := 0; i < len(h); i += 8 {
		w := binary.BigEndian.Uint64(h[i:])
		z := uint(bits.LeadingZeros64(w))
		n += z
		if z < 64 {
			break
		}
	}
	return n
}

// Mint searches nonces from 0 until Work(a) >= bits, sets a.Nonce and
// clears a.Signature (sign afterwards). The expected cost is 2^bits
// SHA-256 hashes of about 200 to 1000 bytes (BenchmarkMint measures the
// rate: some millions per second per core on current machines, so 20 bits
// take a fraction of a second and 30 bits minutes). It returns ctx's error
// when cancelled, and an error when a is invalid or bits > 256.
func Mint(ctx context.Context, a *Announcement, bits uint) error {
	if a.Version == 0 {
		a.Version = AnnouncementVersion
	}
	if bits > 256 {
		return fmt.Errorf("mint announcement: %d bits of work is more than SHA-256 has", bits)
	}
	if err := a.validate(); err != nil {
		return fmt.Errorf("mint announcement: %w", err)
	}
	a.Signature = nil
	a.Nonce = 0
	// The nonce is the last 8 bytes: hash the whole blocks before it
	// once, and per nonce only the rest from that midstate.
	b := a.CanonicalBytes()
	whole := (len(b) - 8) / sha256.BlockSize * sha256.BlockSize
	h := sha256.New()
	h.Write(b[:whole])
	mid, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return fmt.Errorf("mint announcement: %w", err)
	}
	restore := h.(encoding.BinaryUnmarshaler)
	rest := b[whole:]
	tail := rest[len(rest)-8:]
	var sum [sha256.Size]byte
	for nonce := uint64(0); ; nonce++ {
		if nonce&0xfff == 0 && nonce != 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("mint announcement: %w", err)
			}
		}
		binary.BigEndian.PutUint64(tail, nonce)
		if err := restore.UnmarshalBinary(mid); err != nil {
			return fmt.Errorf("mint announcement: %w", err)
		}
		h.Write(rest)
		h.Sum(sum[:0])
		if leadingZeros(sum) >= bits {
			a.Nonce = nonce
			return nil
		}
		if nonce == math.MaxUint64 {
			return errors.New("mint announcement: no nonce has enough work")
		}
	}
}

// Check is a receiver's test of an announcement at time now, asking for at
// least minBits of work. It returns nil, or an error wrapping exactly one
// of ErrInvalid (malformed), ErrExpired (Expires is not after now),
// ErrFuture (Issued is more than MaxClockSkew after now), ErrWork (Work <
// minBits) and ErrBadSignature (not signed by Provider over these bytes),
// tested in that order: the cheap tests first, the signature last.
func Check(a *Announcement, now time.Time, minBits uint) error {
	if err := a.validate(); err != nil {
		return err
	}
	if !a.Expires.After(now) {
		return fmt.Errorf("%w: it expired at %s, %s ago", ErrExpired, a.Expires.UTC().Format(time.RFC3339), now.Sub(a.Expires).Round(time.Second))
	}
	if a.Issued.Sub(now) > MaxClockSkew {
		return fmt.Errorf("%w: issued at %s, %s from now (more than the %s allowed for clock skew)",
			ErrFuture, a.Issued.UTC().Format(time.RFC3339), a.Issued.Sub(now).Round(time.Second), MaxClockSkew)
	}
	if w := Work(a); w < minBits {
		return fmt.Errorf("%w: stamp has %d bits of work, %d asked", ErrWork, w, minBits)
	}
	return a.Verify()
}

// Times an announcement can carry: those whose Unix ns fit in an int64.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64)
)

func (a *Announcement) validate() error {
	if err := a.check(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

func (a *Announcement) check() error {
	if a.Version != AnnouncementVersion {
		return fmt.Errorf("version %d, this build reads %d", a.Version, AnnouncementVersion)
	}
	if _, err := parseProvider(a.Provider); err != nil {
		return err
	}
	if err := checkAddress(a.Address); err != nil {
		return err
	}
	c := a.Capacity
	if c.Leases < 0 || c.Leases > MaxLeases {
		return fmt.Errorf("capacity of %d leases", c.Leases)
	}
	if c.MemoryBytes < 0 || c.DiskBytes < 0 {
		return fmt.Errorf("negative capacity: memory %d bytes, disk %d bytes", c.MemoryBytes, c.DiskBytes)
	}
	for _, f := range []struct {
		name string
		v    float64
		max  float64
	}{{"capacity CPUs", c.CPUs, MaxCPUs}, {"price per work", a.PricePerWorkMsat, MaxPricePerWork}, {"score", a.Score, MaxScore}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || math.Signbit(f.v) || f.v > f.max {
			return fmt.Errorf("%s %v: want a finite number from 0 to %g", f.name, f.v, f.max)
		}
	}
	if len(a.Calibration) > MaxCalibrationLen {
		return fmt.Errorf("calibration digest of %d bytes", len(a.Calibration))
	}
	for _, ch := range []byte(a.Calibration) {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == ':' || ch == '-' || ch == '_' || ch == '.') {
			return fmt.Errorf("calibration digest %q: bad character", a.Calibration)
		}
	}
	if len(a.Methods) == 0 || len(a.Methods) > MaxMethods {
		return fmt.Errorf("%d payment methods: want 1 to %d", len(a.Methods), MaxMethods)
	}
	for i, m := range a.Methods {
		if !slices.Contains(KnownMethods, m) {
			if len(m) > 32 {
				m = m[:32] + "…"
			}
			return fmt.Errorf("unknown payment method %q (known: %s)", m, strings.Join(KnownMethods, ", "))
		}
		if slices.Contains(a.Methods[:i], m) {
			return fmt.Errorf("payment method %q named twice", m)
		}
	}
	if a.Seq == 0 {
		return errors.New("sequence number 0")
	}
	for _, t := range []time.Time{a.Issued, a.Expires} {
		if t.Before(minTime) || t.After(maxTime) {
			return fmt.Errorf("time %s out of range", t.UTC().Format(time.RFC3339))
		}
	}
	if !a.Expires.After(a.Issued) {
		return errors.New("expires before it is issued")
	}
	if d := a.Expires.Sub(a.Issued); d > MaxValidity {
		return fmt.Errorf("valid for %s, more than %s", d, MaxValidity)
	}
	return nil
}

func parseProvider(s string) (ssh.PublicKey, error) {
	if s == "" {
		return nil, errors.New("no provider key")
	}
	if len(s) > MaxAnnouncementSize {
		return nil, fmt.Errorf("provider key of %d bytes", len(s))
	}
	k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("provider key: %v", err)
	}
	if len(rest) != 0 || ProviderString(k) != s {
		return nil, errors.New("provider key is not one authorized_keys line without options or comment")
	}
	switch k.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
	case ssh.KeyAlgoRSA:
		ck, ok := k.(ssh.CryptoPublicKey)
		if !ok {
			return nil, errors.New("provider key: unreadable RSA key")
		}
		if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); !ok || rk.N.BitLen() < 2048 {
			return nil, errors.New("provider key: RSA keys need at least 2048 bits")
		}
	default:
		return nil, fmt.Errorf("provider key type %s is not a host key zennet accepts (ed25519, ECDSA, RSA)", k.Type())
	}
	return k, nil
}

func checkAddress(addr string) error {
	if len(addr) == 0 || len(addr) > MaxAddressLen {
		return fmt.Errorf("address of %d bytes", len(addr))
	}
	if peeraddr.Is(addr) {
		// A provider reached over the libp2p market (behind a NAT, through
		// a relay): a multiaddr ending in its peer ID, which the market's
		// node checks is the provider's own.
		if err := peeraddr.Check(addr); err != nil {
			return fmt.Errorf("address %w", err)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not host:port", addr)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || port[0] == '0' {
		return fmt.Errorf("address %q: port is not a number from 1 to 65535", addr)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	if strings.Contains(host, ":") { // SplitHostPort took it from brackets
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return fmt.Errorf("address %q: bad IPv6 address", addr)
		}
		return nil
	}
	if len(host) > 253 {
		return fmt.Errorf("address %q: host name too long", addr)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("address %q: bad host name", addr)
		}
		for i, ch := range []byte(label) {
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' && i > 0 && i < len(label)-1 || ch == '_') {
				return fmt.Errorf("address %q: bad host name", addr)
			}
		}
	}
	return nil
}

// announcementJSON is the wire form of an Announcement.
type announcementJSON struct {
	V                int             `json:"v"`
	Provider         string          `json:"provider"`
	Address          string          `json:"address"`
	Capacity         *capacityJSON   `json:"capacity"`
	PricePerWorkMsat float64         `json:"price_per_work_msat"`
	Score            float64         `json:"score"`
	Calibration      string          `json:"calibration,omitempty"`
	Methods          []string        `json:"methods"`
	Seq              uint64          `json:"seq"`
	Issued           time.Time       `json:"issued"`
	Expires          time.Time       `json:"expires"`
	Nonce            uint64          `json:"nonce"`
	Sig              *signedjson.Sig `json:"sig,omitempty"`
}

type capacityJSON struct {
	Leases      int     `json:"leases"`
	MemoryBytes int64   `json:"memory_bytes"`
	CPUs        float64 `json:"cpus"`
	DiskBytes   int64   `json:"disk_bytes"`
}

// MarshalJSON writes the announcement's wire form; an invalid announcement
// is an error.
func (a Announcement) MarshalJSON() ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	c := a.Capacity
	w := announcementJSON{V: a.Version, Provider: a.Provider, Address: a.Address,
		Capacity:         &capacityJSON{Leases: c.Leases, MemoryBytes: c.MemoryBytes, CPUs: c.CPUs, DiskBytes: c.DiskBytes},
		PricePerWorkMsat: a.PricePerWorkMsat, Score: a.Score, Calibration: a.Calibration, Methods: a.Methods,
		Seq: a.Seq, Issued: a.Issued.UTC(), Expires: a.Expires.UTC(), Nonce: a.Nonce, Sig: signedjson.FromSignature(a.Signature)}
	return json.Marshal(w)
}

// UnmarshalJSON reads and validates the wire form; unknown fields,
// trailing data and anything out of range are errors wrapping ErrInvalid.
// It does not verify the signature: Check does.
func (a *Announcement) UnmarshalJSON(b []byte) error {
	if len(b) > MaxAnnouncementSize {
		return fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalid, len(b), MaxAnnouncementSize)
	}
	var w announcementJSON
	if err := signedjson.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if w.V != AnnouncementVersion {
		return fmt.Errorf("%w: version %d, this build reads %d", ErrInvalid, w.V, AnnouncementVersion)
	}
	if w.Capacity == nil {
		return fmt.Errorf("%w: no capacity", ErrInvalid)
	}
	sig, err := w.Sig.Signature()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c := w.Capacity
	out := Announcement{Version: w.V, Provider: w.Provider, Address: w.Address,
		Capacity:         Capacity{Leases: c.Leases, MemoryBytes: c.MemoryBytes, CPUs: c.CPUs, DiskBytes: c.DiskBytes},
		PricePerWorkMsat: w.PricePerWorkMsat, Score: w.Score, Calibration: w.Calibration, Methods: w.Methods,
		Seq: w.Seq, Issued: w.Issued, Expires: w.Expires, Nonce: w.Nonce, Signature: sig}
	if err := out.validate(); err != nil {
		return err
	}
	*a = out
	return nil
}

// EncodeAnnouncement returns the announcement as one line of JSON, newline
// included. It fails when a is invalid or its JSON exceeds
// MaxAnnouncementSize.
func EncodeAnnouncement(a Announcement) ([]byte, error) {
	b, err := signedjson.EncodeLine(a, MaxAnnouncementSize)
	if errors.Is(err, signedjson.ErrTooBig) {
		err = fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return nil, fmt.Errorf("encode announcement: %w", err)
	}
	return b, nil
}

// DecodeAnnouncement parses and validates one encoded announcement (a
// trailing newline is allowed). It does not verify the signature, the
// times against a clock or the work: Check does.
func DecodeAnnouncement(b []byte) (Announcement, error) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	var a Announcement
	if err := a.UnmarshalJSON(b); err != nil {
		return Announcement{}, fmt.Errorf("decode announcement: %w", err)
	}
	return a, nil
}

// RelativeScore is the geometric mean over steps of score[i] /
// reference[i]: the work a provider's hosts do relative to the reference
// machine, for Announcement.Score. The two slices pair the same steps (same
// workload and seed) of the provider's calibration set and the reference
// set (bench.Reference). Steps with a score of 0 or less on either side are
// skipped; with none left it returns an error.
func RelativeScore(score, reference []float64) (float64, error) {
	if len(score) != len(reference) {
		return 0, fmt.Errorf("relative score: %d scores, %d reference scores", len(score), len(reference))
	}
	var sum float64
	n := 0
	for i := range score {
		s, r := score[i], reference[i]
		if !(s > 0) || !(r > 0) || math.IsInf(s, 0) || math.IsInf(r, 0) {
			continue
		}
		sum += math.Log(s / r)
		n++
	}
	if n == 0 {
		return 0, errors.New("relative score: no step with a positive score on both sides")
	}
	return math.Exp(sum / float64(n)), nil
}
