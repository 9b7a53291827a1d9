// Package control is the running provider's local control interface: a
// JSON-over-HTTP API on a unix socket under the provider's data dir (used by
// 'zennet dashboard', 'zennet provider ...' and scripts), its client, and
// the opt-in Prometheus /metrics endpoint.
//
// control is an adapter: it translates between the socket (or a scrape) and
// a Provider, which the running provider (provider.Provider) implements. The
// documents it carries are the provider package's: Status and the types in
// it are aliases of them.
package control

import (
	"context"

	"github.com/zennet/zennet/provider"
)

// Provider is what the running provider offers to its operator.
type Provider interface {
	// Status returns a snapshot of the provider: identity, capacity,
	// leases, earnings, payments and recent log lines.
	Status(ctx context.Context) (Status, error)
	// Pause pauses a lease's sandbox (runsc pause) on the operator's word.
	Pause(ctx context.Context, id string) error
	// Resume resumes a lease the operator paused.
	Resume(ctx context.Context, id string) error
	// End ends the lease and destroys its sandbox.
	End(ctx context.Context, id string) error
	// Drain stops (on) or restarts (off) taking new leases; the current
	// leases go on either way.
	Drain(ctx context.Context, on bool) error
}

// The documents of the control API (see the provider package).
type (
	Status       = provider.Status
	Identity     = provider.Identity
	Resources    = provider.Resources
	LeaseStatus  = provider.LeaseStatus
	LeaseState   = provider.LeaseState
	Earnings     = provider.Earnings
	PaymentEvent = provider.PaymentEvent
	LogLine      = provider.LogLine
	MarketStatus = provider.MarketStatus
)

// The states of a lease.
const (
	StateStarting     = provider.StateStarting
	StateRunning      = provider.StateRunning
	StatePausedUnpaid = provider.StatePausedUnpaid
	StatePaused       = provider.StatePaused
	StateEnded        = provider.StateEnded
)

// States lists every lease state, in the order of a lease's life.
var States = provider.States
