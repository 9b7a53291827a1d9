// Package proto holds the messages that renters and providers exchange on the
// negotiation channel, the SSH channel type names, and the sentinel errors
// shared by every side. It imports nothing of zennet's own.
package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// Version is the negotiation protocol version this build speaks.
const Version = 1

// SSH channel types opened by the renter on a provider's gateway.
const (
	// ChannelNegotiate carries newline-delimited JSON messages: demand,
	// offer, accept, lease, release, released and error.
	ChannelNegotiate = "zennet-negotiate-v1@zennet"
	// ChannelLease carries one end-to-end SSH connection to a lease's
	// sandbox. Its extra data is the lease id (an SSH string).
	ChannelLease = "zennet-lease-v1@zennet"
)

// A lease stream carries one end-to-end SSH connection to a lease's host
// on a TCP connection of its own, with no second SSH layer around it (see
// docs/protocol.md). The renter asks for a ticket on its SSH connection to
// the gateway (RequestLeaseStream, the lease id as an SSH string; the
// reply is the ticket), then connects to the gateway's address again and
// sends StreamMagic and the ticket; from then on the connection carries
// the host's SSH. A provider that does not know the request answers false
// and the renter uses ChannelLease.
const (
	RequestLeaseStream = "zennet-lease-stream-v1@zennet"
	StreamMagic        = "ZNLEASE1"
	TicketSize         = 32
)

// A cluster stream carries one session's frames between two of its
// providers on a TCP connection of its own, sealed with AES-256-GCM under
// keys the two agreed on their SSH connection, beside the session's
// ChannelCluster (see docs/protocol.md, "Cluster streams"). The dialling
// provider, whose tunnel channel is open, sends RequestClusterStream (a
// ClusterStreamRequest) on its SSH connection; the reply is a ticket and
// the other's key share (ClusterStreamReply). It then connects to the same
// address, sends ClusterStreamMagic and the ticket, and sealed records
// follow both ways. Either end that cannot have one uses the channel.
const (
	RequestClusterStream = "zennet-cluster-stream-v1@zennet"
	ClusterStreamMagic   = "ZNCLUST1"
	// ClusterKeyShare is the size of each side's key share.
	ClusterKeyShare = 32
)

// SSHCiphers is the cipher preference zennet writes into every ssh_config
// for its hosts (the renter's and the one inside each host): AES-GCM
// first, which OpenSSH and the hosts' agent (Go's x/crypto/ssh) both run
// with the CPU's AES instructions. OpenSSH would otherwise pick
// chacha20-poly1305, which x/crypto computes without assembly on amd64,
// and the agent's share of every byte would cost several times more.
const SSHCiphers = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"

// ValidHostKey reports whether s is exactly one public key in
// authorized_keys form ("TYPE BASE64", as ssh.MarshalAuthorizedKey writes
// it): no options, no comment, no second line. A lease's host key goes
// into the renter's known_hosts and the session's hosts' own; a provider
// that sent "KEY\n* ssh-ed25519 …" or "@cert-authority …" would otherwise
// pin keys of its choosing for other hosts.
func ValidHostKey(s string) bool {
	key, comment, options, rest, err := gossh.ParseAuthorizedKey([]byte(s))
	if err != nil || comment != "" || len(options) != 0 || len(rest) != 0 {
		return false
	}
	return s == strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key)))
}

// MaxMessageSize bounds one encoded message on the negotiation channel.
const MaxMessageSize = 1 << 20

// Message types.
const (
	TypeDemand   = "demand"
	TypeOffer    = "offer"
	TypeAccept   = "accept"
	TypeLease    = "lease"
	TypeRelease  = "release"
	TypeReleased = "released"
	TypeEnded    = "ended"
	TypeUsage    = "usage"
	TypePayment  = "payment"
	TypeCredit   = "credit"
	TypeState    = "state"
	TypeError    = "error"
	// TypeMembership carries the renter's signed membership of a session
	// (package cluster's encoding); the provider answers TypeCluster or
	// TypeError.
	TypeMembership = "membership"
	TypeCluster    = "cluster"
	// TypeStarting tells a renter, while an accept that asked for it
	// (Accept.Progress) is being granted, how many of its hosts have
	// started; the accept's leases or its error follow as ever.
	TypeStarting = "starting"
)

// Message is the envelope of every negotiation message. Exactly one of the
// payload fields is set, the one named by Type.
type Message struct {
	V        int       `json:"v"`
	Type     string    `json:"type"`
	Demand   *Demand   `json:"demand,omitempty"`
	Offer    *Offer    `json:"offer,omitempty"`
	Accept   *Accept   `json:"accept,omitempty"`
	Lease    *Lease    `json:"lease,omitempty"`
	Release  *Release  `json:"release,omitempty"`
	Released *Released `json:"released,omitempty"`
	Ended    *Ended    `json:"ended,omitempty"`
	// Usage is a signed usage report in the meter's own encoding; this
	// package carries it without looking inside.
	Usage json.RawMessage `json:"usage,omitempty"`
	// PayRequest rides on a usage message: the provider's demand for
	// payment of the bill up to that report, in the pay package's
	// encoding. Final marks the lease's last report.
	PayRequest json.RawMessage `json:"pay_request,omitempty"`
	Final      bool            `json:"final,omitempty"`
	// Payment is the renter's proof of payment (pay.Proof's encoding).
	Payment json.RawMessage `json:"payment,omitempty"`
	Credit  *Credit         `json:"credit,omitempty"`
	State   *LeaseState     `json:"state,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	// Membership is a session's signed membership (cluster.Encode's form);
	// this package carries it without looking inside.
	Membership json.RawMessage `json:"membership,omitempty"`
	Cluster    *ClusterStatus  `json:"cluster,omitempty"`
	Starting   *Starting       `json:"starting,omitempty"`
}

// Limits are the resources of one host.
type Limits struct {
	// MemoryBytes is the memory the renter sees as MemTotal inside.
	MemoryBytes int64 `json:"memory_bytes"`
	// CPUs is the CPU quota in cores (0.5 = half a core).
	CPUs float64 `json:"cpus"`
	// DiskBytes is what the host can write to its root filesystem. In a
	// demand, 0 asks for the provider's default; offers and leases carry
	// the actual size.
	DiskBytes int64 `json:"disk_bytes,omitempty"`
}

// Satisfies reports whether offered limits give at least what l asks.
func (l Limits) Satisfies(offered Limits) bool {
	return offered.MemoryBytes == l.MemoryBytes && offered.CPUs == l.CPUs &&
		(l.DiskBytes == 0 || offered.DiskBytes >= l.DiskBytes)
}

// Demand is the renter's request: Count hosts with Limits each.
type Demand struct {
	Count  int    `json:"count"`
	Limits Limits `json:"limits"`
	// IntervalSeconds is how often the renter wants usage reports;
	// 0 asks for DefaultInterval.
	IntervalSeconds int `json:"interval_s,omitempty"`
	// Methods are the payment methods the renter can pay by, preferred
	// first; none means the default (embedded).
	Methods []string `json:"methods,omitempty"`
	// BidPerWorkMsat, when set, is the renter's counter-offer: the price
	// per reference CPU-second of work it proposes. A provider priced by the
	// model that asks more offers at the bid or at its floor, whichever is
	// higher (PaymentTerms.ListPricePerWorkMsat keeps its asking price);
	// one that asks less, or flat rates, ignores it.
	BidPerWorkMsat float64 `json:"bid_per_work_msat,omitempty"`
}

// Usage report intervals, in seconds.
const (
	DefaultInterval = 5
	MinInterval     = 1
	MaxInterval     = 60
)

// Offer is the provider's answer to a demand: how many of the demanded hosts
// it can give now, and on what terms.
type Offer struct {
	Count  int       `json:"count"`
	Limits Limits    `json:"limits"`
	Expiry time.Time `json:"expiry"`
	// IntervalSeconds is the agreed usage report interval.
	IntervalSeconds int `json:"interval_s"`
	// Payment is what the hosts cost and how they are paid.
	Payment PaymentTerms `json:"payment"`
}

// PaymentTerms are a provider's prices and payment rules.
type PaymentTerms struct {
	// Methods the provider accepts, preferred first: "embedded",
	// "lightning".
	Methods []string `json:"methods"`
	// Rates are msat per unit of each meter counter, exact decimals or
	// fractions ("1/1000000"), in the pay package's encoding. Counters
	// not named cost nothing.
	Rates json.RawMessage `json:"rates"`
	// MinPayableMsat is the least amount the provider asks at once
	// (besides the method's own minimum).
	MinPayableMsat uint64 `json:"min_payable_msat,omitempty"`
	// GraceSeconds is how long a payable bill may stay unpaid before the
	// provider pauses the host; UnpaidTimeoutSeconds how long it may stay
	// overdue before the provider ends the lease.
	GraceSeconds         int `json:"grace_s"`
	UnpaidTimeoutSeconds int `json:"unpaid_timeout_s"`
	// LightningNode is the provider's lnd node public key (hex), when it
	// accepts lightning: invoices must pay it.
	LightningNode string `json:"lightning_node,omitempty"`
	// PrepayMsat, when set, is what each host must be paid up front,
	// before it runs: the price of its first interval at its limits at
	// Rates (terms.Prepay computes it; the renter checks it). A provider
	// asks it of renter keys it has no paid lease from. Each lease
	// message then carries its prepayment request, and the host is
	// paused until it is paid.
	PrepayMsat uint64 `json:"prepay_msat,omitempty"`
	// Calibration is the provider's calibration set (the bench package's
	// signed JSON): what its hosts do per unit of benchmark work, for
	// renters to price it and to spot-check it.
	Calibration json.RawMessage `json:"calibration,omitempty"`
	// PricePerWorkMsat, when set, says the Rates are the price model's
	// (docs/pricing.md): fitted from Calibration so that a second of the
	// reference machine's work costs this many msat. Renters fit the same
	// model and check.
	PricePerWorkMsat float64 `json:"price_per_work_msat,omitempty"`
	// ListPricePerWorkMsat, when the price is a counter-offer's (lower than
	// the provider asks of others), is the provider's asking price.
	ListPricePerWorkMsat float64 `json:"list_price_per_work_msat,omitempty"`
}

// Accept takes Count hosts of the offer, paid by Method (one of the
// offer's; empty means the default, embedded).
type Accept struct {
	Count  int    `json:"count"`
	Method string `json:"method,omitempty"`
	// Cluster, if set, puts the granted hosts on the renter's session
	// network.
	Cluster *ClusterJoin `json:"cluster,omitempty"`
	// Progress asks for a TypeStarting message as each host has started,
	// before the leases (which come together: all or none).
	Progress bool `json:"progress,omitempty"`
}

// Starting is how many of an accept's Count hosts have started.
type Starting struct {
	Started int `json:"started"`
	Count   int `json:"count"`
}

// ClusterJoin puts the hosts an accept grants on a session's private
// network (package cluster): each gets an interface with its address.
type ClusterJoin struct {
	Session string `json:"session"`
	// Subnet is the session's network, e.g. "10.77.0.0/16".
	Subnet string `json:"subnet"`
	// Addrs are the hosts' addresses, one for each host accepted, in the
	// order their leases come.
	Addrs []string `json:"addrs"`
	// Key is the session's own public key (authorized_keys format): it
	// opens the session's hosts, for ssh from one to another.
	// PrivateKey is its private half (OpenSSH PEM), put in each host.
	Key        string `json:"key"`
	PrivateKey string `json:"private_key"`
}

// ClusterStatus answers a membership: the sequence the provider now holds
// for the session, and how it reaches each other provider of it.
type ClusterStatus struct {
	Session string        `json:"session"`
	Seq     uint64        `json:"seq"`
	Peers   []ClusterPeer `json:"peers,omitempty"`
}

// ClusterPeer is a provider's path to another provider of a session.
type ClusterPeer struct {
	// Provider is the other provider's host key fingerprint.
	Provider string `json:"provider"`
	// Path is "direct" (a tunnel of its own), "relayed" (through the
	// renter's connections) or "down".
	Path string `json:"path"`
}

// Paths between two providers of a session.
const (
	PathDirect  = "direct"
	PathRelayed = "relayed"
	PathDown    = "down"
)

// Credit is the provider's acknowledgement of a payment: what it has now
// counted for the lease in all. Refused says why a proof was not counted.
type Credit struct {
	ID         string `json:"id"`
	PaidMsat   uint64 `json:"paid_msat"`
	BilledMsat uint64 `json:"billed_msat"`
	Refused    string `json:"refused,omitempty"`
}

// Lease states a provider announces.
const (
	StateRunning = "running"
	StatePaused  = "paused"
)

// LeaseState tells the renter that the provider paused or resumed a lease,
// and why: Cause for programs, Reason for people.
type LeaseState struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Cause is who paused the lease; on StateRunning, whose pause (or,
	// for PauseOwnerBusy, CPU throttle) ends, if any. Empty from
	// providers built before it.
	Cause  PauseCause `json:"cause,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

// PauseCause names who paused a lease. Decisions are made on it, never on
// a Reason's text.
type PauseCause string

// The writers of pauses.
const (
	// PauseUnpaid: a payable bill went unpaid past the grace; a payment
	// resumes the lease.
	PauseUnpaid PauseCause = "unpaid"
	// PauseOwnerBusy: the provider's owner is using the machine
	// (--when-idle); the lease resumes when the owner leaves it.
	PauseOwnerBusy PauseCause = "owner_busy"
	// PauseOperator: the provider's operator paused it ('zennet provider
	// pause', the dashboard); only the operator resumes it.
	PauseOperator PauseCause = "operator"
)

// Lease is one granted host.
type Lease struct {
	ID     string `json:"id"`
	Limits Limits `json:"limits"`
	// HostKey is the sandbox's SSH host key in authorized_keys format; the
	// renter pins it so that its ssh never asks.
	HostKey string    `json:"host_key"`
	Started time.Time `json:"started"`
	// ClusterAddr is the host's address on its session's network, when
	// the accept put it on one.
	ClusterAddr string `json:"cluster_addr,omitempty"`
	// Prepay is the host's prepayment request (the pay package's encoded
	// Request, for PaymentTerms.PrepayMsat), when the offer asked one.
	Prepay json.RawMessage `json:"prepay,omitempty"`
}

// Release ends leases.
type Release struct {
	IDs []string `json:"ids"`
}

// Released confirms that the leases are ended and their sandboxes destroyed.
type Released struct {
	IDs []string `json:"ids"`
}

// Ended tells the renter that the provider ended a lease on its own: Cause
// for programs, Reason for people.
type Ended struct {
	ID string `json:"id"`
	// Cause is why; empty from providers built before it.
	Cause  EndCause `json:"cause,omitempty"`
	Reason string   `json:"reason"`
}

// EndCause names why a lease ended. Decisions are made on it (the renter's
// whether the provider is to blame), never on a Reason's text.
type EndCause string

// Why leases end. Only the first five reach the renter in an ended
// message: the others end a lease the renter let go of, or one it never
// got.
const (
	// EndMemoryExceeded: the host overran its memory limit and its
	// sandbox was killed (gVisor has no OOM killer inside).
	EndMemoryExceeded EndCause = "memory_exceeded"
	// EndSandboxExited: the sandbox stopped on its own for another
	// reason (a crash), or the provider lost track of it.
	EndSandboxExited EndCause = "sandbox_exited"
	// EndUnpaid: a bill stayed unpaid past the unpaid timeout.
	EndUnpaid EndCause = "unpaid"
	// EndOperator: the provider's operator ended it ('zennet provider
	// end', the dashboard).
	EndOperator EndCause = "operator"
	// EndProviderShutdown: the provider is shutting down.
	EndProviderShutdown EndCause = "provider_shutdown"
	// EndReleased: the renter released it.
	EndReleased EndCause = "released"
	// EndRenterGone: the renter's negotiation session went away.
	EndRenterGone EndCause = "renter_gone"
	// EndPaymentSetup: its payment account could not be opened, so the
	// grant was undone.
	EndPaymentSetup EndCause = "payment_setup"
)

// Error codes.
const (
	CodeCapacity   = "capacity"
	CodeBadRequest = "bad-request"
	CodeVersion    = "version"
	CodeInternal   = "internal"
	CodeNotFound   = "not-found"
)

// Error is a refusal. Message is one sentence fit for the renter's terminal.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, ErrCapacity) and friends work for a decoded Error.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrCapacity:
		return e.Code == CodeCapacity
	case ErrBadRequest:
		return e.Code == CodeBadRequest
	case ErrVersion:
		return e.Code == CodeVersion
	case ErrNotFound:
		return e.Code == CodeNotFound
	}
	return false
}

// Sentinel errors.
var (
	ErrCapacity   = errors.New("provider has no capacity")
	ErrBadRequest = errors.New("bad request")
	ErrVersion    = errors.New("protocol version mismatch")
	ErrNotFound   = errors.New("no such lease")
	ErrForbidden  = errors.New("forbidden")
)

// Encode returns m as one line of JSON, newline included, after stamping
// the protocol version.
func Encode(m Message) ([]byte, error) {
	m.V = Version
	if err := m.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) >= MaxMessageSize {
		return nil, fmt.Errorf("message of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	return append(b, '\n'), nil
}

// Decode parses and validates one message.
func Decode(line []byte) (Message, error) {
	var m Message
	if len(line) > MaxMessageSize {
		return m, fmt.Errorf("message of %d bytes exceeds %d", len(line), MaxMessageSize)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("decode message: %w", err)
	}
	if dec.More() {
		return Message{}, errors.New("decode message: trailing data")
	}
	if m.V != Version {
		return Message{}, fmt.Errorf("%w: got v%d, this build speaks v%d", ErrVersion, m.V, Version)
	}
	if err := m.validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (m Message) validate() error {
	set := 0
	for _, p := range []bool{m.Demand != nil, m.Offer != nil, m.Accept != nil, m.Lease != nil,
		m.Release != nil, m.Released != nil, m.Ended != nil, m.Usage != nil, m.Payment != nil, m.Credit != nil,
		m.State != nil, m.Error != nil, m.Membership != nil, m.Cluster != nil, m.Starting != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("message %q carries %d payloads, want 1", m.Type, set)
	}
	if m.Type != TypeUsage && (m.PayRequest != nil || m.Final) {
		return fmt.Errorf("message %q carries a payment request or final flag, only usage may", m.Type)
	}
	var ok bool
	switch m.Type {
	case TypeDemand:
		ok = m.Demand != nil
		if ok {
			if err := m.Demand.Validate(); err != nil {
				return err
			}
		}
	case TypeOffer:
		ok = m.Offer != nil
		if ok && (m.Offer.Count < 0 || m.Offer.Limits.validate() != nil ||
			m.Offer.IntervalSeconds < MinInterval || m.Offer.IntervalSeconds > MaxInterval) {
			return errors.New("offer: invalid count, limits or interval")
		}
		if ok {
			if err := m.Offer.Payment.validate(); err != nil {
				return err
			}
		}
	case TypeAccept:
		ok = m.Accept != nil
		if ok && m.Accept.Count < 1 {
			return errors.New("accept: count must be at least 1")
		}
		if ok && m.Accept.Cluster != nil {
			c := m.Accept.Cluster
			if len(c.Addrs) != m.Accept.Count || c.Session == "" || len(c.Session) > 64 || c.Subnet == "" || c.Key == "" || len(c.Key) > 16<<10 ||
				c.PrivateKey == "" || len(c.PrivateKey) > 16<<10 {
				return errors.New("accept: a cluster join needs a session, a subnet, a key and an address for each host")
			}
		}
	case TypeStarting:
		ok = m.Starting != nil
		if ok && (m.Starting.Started < 1 || m.Starting.Started > m.Starting.Count || m.Starting.Count > MaxHostsPerDemand) {
			return errors.New("starting: started must be 1 to count")
		}
	case TypeMembership:
		ok = len(m.Membership) > 0
	case TypeCluster:
		ok = m.Cluster != nil
		if ok && len(m.Cluster.Peers) > 4096 {
			return errors.New("cluster: too many peers")
		}
	case TypeLease:
		ok = m.Lease != nil
		if ok && (!ValidLeaseID(m.Lease.ID) || m.Lease.Limits.validate() != nil) {
			return errors.New("lease: invalid id or limits")
		}
		if ok && !ValidHostKey(m.Lease.HostKey) {
			return errors.New("lease: the host key is not one public key in authorized_keys form")
		}
		if ok && len(m.Lease.Prepay) > 16<<10 {
			return errors.New("lease: prepayment request over 16 KiB")
		}
	case TypeRelease:
		ok = m.Release != nil
		if ok {
			for _, id := range m.Release.IDs {
				if !ValidLeaseID(id) {
					return fmt.Errorf("release: invalid lease id %q", id)
				}
			}
		}
	case TypeReleased:
		ok = m.Released != nil
	case TypeEnded:
		ok = m.Ended != nil
	case TypeUsage:
		ok = len(m.Usage) > 0
	case TypePayment:
		ok = len(m.Payment) > 0
	case TypeCredit:
		ok = m.Credit != nil
		if ok && !ValidLeaseID(m.Credit.ID) {
			return fmt.Errorf("credit: invalid lease id %q", m.Credit.ID)
		}
	case TypeState:
		ok = m.State != nil
		if ok && (!ValidLeaseID(m.State.ID) || m.State.State != StateRunning && m.State.State != StatePaused) {
			return errors.New("state: invalid lease id or state")
		}
	case TypeError:
		ok = m.Error != nil && m.Error.Message != ""
	default:
		return fmt.Errorf("unknown message type %q", m.Type)
	}
	if !ok {
		return fmt.Errorf("message type %q without its payload", m.Type)
	}
	return nil
}

func (p PaymentTerms) validate() error {
	if len(p.Methods) == 0 || len(p.Methods) > 8 {
		return errors.New("offer: payment terms name no method (or too many)")
	}
	if len(p.Rates) == 0 {
		return errors.New("offer: payment terms without rates")
	}
	if p.GraceSeconds < 1 || p.UnpaidTimeoutSeconds < p.GraceSeconds {
		return errors.New("offer: payment grace must be at least 1 s and the unpaid timeout at least the grace")
	}
	if !(p.PricePerWorkMsat >= 0 && p.PricePerWorkMsat < 1e15) || p.PricePerWorkMsat > 0 && len(p.Calibration) == 0 {
		return errors.New("offer: a price per unit of work needs a calibration set, and a finite positive price")
	}
	return nil
}

// MaxHostsPerDemand bounds one demand.
const MaxHostsPerDemand = 10000

// Validate checks a demand's ranges.
func (d *Demand) Validate() error {
	if d.Count < 1 || d.Count > MaxHostsPerDemand {
		return fmt.Errorf("%w: host count %d out of range 1..%d", ErrBadRequest, d.Count, MaxHostsPerDemand)
	}
	if err := d.Limits.validate(); err != nil {
		return err
	}
	if d.IntervalSeconds != 0 && (d.IntervalSeconds < MinInterval || d.IntervalSeconds > MaxInterval) {
		return fmt.Errorf("%w: usage interval %ds out of range %d..%d", ErrBadRequest, d.IntervalSeconds, MinInterval, MaxInterval)
	}
	if len(d.Methods) > 8 {
		return fmt.Errorf("%w: %d payment methods named, at most 8", ErrBadRequest, len(d.Methods))
	}
	if !(d.BidPerWorkMsat >= 0 && d.BidPerWorkMsat <= MaxPricePerWork) { // also rejects NaN
		return fmt.Errorf("%w: bid %v msat per work out of range 0..%g", ErrBadRequest, d.BidPerWorkMsat, float64(MaxPricePerWork))
	}
	return nil
}

// MaxPricePerWork bounds a price per reference CPU-second of work, in msat
// (10 000 bitcoin, as market.MaxPricePerWork bounds announcements).
const MaxPricePerWork = 1e12

// MinMemory is the least memory a host may have.
const MinMemory = 64 << 20

// MinDisk is the least disk a host may have.
const MinDisk = 64 << 20

func (l Limits) validate() error {
	if l.MemoryBytes < MinMemory || l.MemoryBytes > 1<<50 {
		return fmt.Errorf("%w: memory %d bytes out of range (at least 64M)", ErrBadRequest, l.MemoryBytes)
	}
	if !(l.CPUs > 0 && l.CPUs <= 4096) { // also rejects NaN
		return fmt.Errorf("%w: cpus %v out of range (0 < cpus <= 4096)", ErrBadRequest, l.CPUs)
	}
	if l.DiskBytes != 0 && (l.DiskBytes < MinDisk || l.DiskBytes > 1<<50) {
		return fmt.Errorf("%w: disk %d bytes out of range (at least 64M)", ErrBadRequest, l.DiskBytes)
	}
	return nil
}

// LeaseIDLen is the fixed length of every lease id. runsc matches container
// ids by prefix, so ids of one length can never shadow each other.
const LeaseIDLen = 20

// LeaseIDPrefix starts every lease id.
const LeaseIDPrefix = "zn-"

// ValidLeaseID reports whether id has the form zn- plus 17 lowercase hex
// digits.
func ValidLeaseID(id string) bool {
	if len(id) != LeaseIDLen || !strings.HasPrefix(id, LeaseIDPrefix) {
		return false
	}
	for _, c := range id[len(LeaseIDPrefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
