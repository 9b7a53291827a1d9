package provider

import (
	"errors"
	"time"

	"github.com/zennet/zennet/proto"
)

// ErrConflict is a lease not in a state that allows the operator's action,
// e.g. resuming a lease paused for want of payment.
var ErrConflict = errors.New("conflict")

// LeaseState is where a lease is in its life.
type LeaseState string

// The states of a lease.
const (
	StateStarting     LeaseState = "starting"      // sandbox being created
	StateRunning      LeaseState = "running"       // serving its renter
	StatePausedUnpaid LeaseState = "paused-unpaid" // paused by the provider: payments are overdue
	StatePaused       LeaseState = "paused"        // paused by the operator
	StateEnded        LeaseState = "ended"         // over; the sandbox is gone or going
)

// States lists every lease state, in the order of a lease's life.
var States = []LeaseState{StateStarting, StateRunning, StatePausedUnpaid, StatePaused, StateEnded}

// Status is a snapshot of the running provider.
type Status struct {
	// Time is when the snapshot was taken, by the provider's clock. Rates
	// (CPU %, earnings per hour) are computed between snapshots' times.
	// The control server fills it in when left zero.
	Time     time.Time `json:"time"`
	Identity Identity  `json:"identity"`
	// Capacity is what the provider sells in all; Used what its leases
	// hold now.
	Capacity Resources `json:"capacity"`
	Used     Resources `json:"used"`
	// Draining is true while the provider takes no new leases.
	Draining bool `json:"draining"`
	// IntervalS is the default metering interval in seconds.
	IntervalS int           `json:"interval_s"`
	Leases    []LeaseStatus `json:"leases"`
	Earnings  Earnings      `json:"earnings"`
	// Payments are the latest payments received, latest first (at most
	// about 50).
	Payments []PaymentEvent `json:"payments"`
	// PaymentFailures counts payments that failed or were refused since
	// the provider started.
	PaymentFailures uint64 `json:"payment_failures"`
	// Log holds the latest log lines, oldest first (at most about 100).
	Log []LogLine `json:"log"`
	// Market is the provider's market node.
	Market *MarketStatus `json:"market,omitempty"`
}

// MarketStatus is the provider's node of the libp2p market.
type MarketStatus struct {
	// Addrs are its multiaddrs; Announced the address its announcement
	// gives renters (the gateway's HOST:PORT, or a multiaddr when it is
	// behind a NAT), empty before the first.
	Addrs     []string `json:"addrs"`
	Announced string   `json:"announced,omitempty"`
	// Reachability is what AutoNAT found: public, private (behind a NAT)
	// or unknown (a LAN or loopback market, or not asked yet).
	Reachability string `json:"reachability"`
	// Relay is true when the node relays for others (--relay).
	Relay bool `json:"relay"`
	// Peers are connected; TopicPeers on the announcement topic.
	Peers      int `json:"peers"`
	TopicPeers int `json:"topic_peers"`
	// Known are the providers its directory holds.
	Known int `json:"known"`
	// What its validator did with the announcements it received:
	// accepted (kept and forwarded), ignored (not new), throttled (new
	// ones past a peer's rate) and rejected (bad: the sender's score
	// falls).
	Accepted  int64 `json:"accepted"`
	Ignored   int64 `json:"ignored"`
	Throttled int64 `json:"throttled"`
	Rejected  int64 `json:"rejected"`
}

// Identity says which provider this is.
type Identity struct {
	// Fingerprint is the SHA256 fingerprint of the provider's SSH host key.
	Fingerprint string `json:"fingerprint"`
	// Address is where the SSH gateway listens.
	Address string    `json:"address"`
	DataDir string    `json:"data_dir"`
	Started time.Time `json:"started"`
	Version string    `json:"version"`
}

// Resources is an amount of what a provider sells.
type Resources struct {
	Leases      int     `json:"leases"`
	MemoryBytes int64   `json:"memory_bytes"`
	CPUs        float64 `json:"cpus"`
	DiskBytes   int64   `json:"disk_bytes"`
}

// LeaseStatus is one lease as its provider sees it.
type LeaseStatus struct {
	ID string `json:"id"`
	// Renter is the SHA256 fingerprint of the renter's key.
	Renter  string       `json:"renter"`
	Started time.Time    `json:"started"`
	Limits  proto.Limits `json:"limits"`
	State   LeaseState   `json:"state"`
	// StateReason says why a lease is paused or ended.
	StateReason string `json:"state_reason,omitempty"`
	// Method is the payment method: "embedded" or "lightning" (empty when
	// the lease is not paid for).
	Method string `json:"method,omitempty"`
	// CPUNs is the cumulative CPU time in nanoseconds.
	CPUNs uint64 `json:"cpu_ns"`
	// MemoryBytes is the latest memory use (the peak of the last interval
	// when known, else the current use).
	MemoryBytes uint64 `json:"memory_bytes"`
	NetInBytes  uint64 `json:"net_in_bytes"`
	NetOutBytes uint64 `json:"net_out_bytes"`
	// BilledMsat is the cumulative bill, EarnedMsat what of it was paid
	// and counted, DueMsat what is billed and not yet paid.
	BilledMsat uint64 `json:"billed_msat"`
	EarnedMsat uint64 `json:"earned_msat"`
	DueMsat    uint64 `json:"due_msat"`
	// LastReport is the time of the latest usage report (zero before the
	// first).
	LastReport time.Time `json:"last_report,omitzero"`
}

// Earnings are what the provider was paid.
type Earnings struct {
	// SessionMsat is what this run of the provider earned.
	SessionMsat uint64 `json:"session_msat"`
	// TodayMsat is what was earned since local midnight.
	TodayMsat uint64 `json:"today_msat"`
}

// PaymentEvent is one payment received.
type PaymentEvent struct {
	Time   time.Time `json:"time"`
	Lease  string    `json:"lease"`
	Msat   uint64    `json:"msat"`
	Method string    `json:"method"`
}

// LogLine is one line of the provider's log.
type LogLine struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
}

// Lease returns the lease with id, if the snapshot has it.
func (s *Status) Lease(id string) (LeaseStatus, bool) {
	for _, l := range s.Leases {
		if l.ID == id {
			return l, true
		}
	}
	return LeaseStatus{}, false
}
