package renter

import (
	"fmt"

	"github.com/zennet/zennet/proto"
)

// Event is something a rental tells its user while it runs: a command
// prints it ("zennet: " and its String on stderr), a test inspects it.
type Event interface {
	String() string
	event()
}

// Progress is a live status line while renting ("" clears it): shown on a
// terminal only.
type Progress struct{ Text string }

// ProviderPath says how a provider behind a NAT (a market multiaddr) was
// reached: "direct", "direct (hole punched)" or "relayed through ID".
type ProviderPath struct {
	Address, Path string
	Relayed       bool
}

// Notice is a message of no other type: a ledger note, a payment that is
// still unresolved, a host paused by its provider.
type Notice struct{ Text string }

// Dropped is a host the renter stopped paying: its reports failed their
// checks, stopped coming, or its provider over-asked. Released is true
// when the host had already left the rental (a probe's drop, a replaced
// host): then only its account stops.
type Dropped struct {
	Host, Lease, Provider, Reason string
	Released                      bool
}

// Ended is a lease its provider ended, why (Cause, and Reason for people);
// ProvidersFault tells whether it counts against the provider (and the host
// is replaced).
type Ended struct {
	Host, Lease, Provider, Reason string
	Cause                         proto.EndCause
	ProvidersFault                bool
}

// ProviderLost is a provider whose connection ended, with the hosts that
// went with it.
type ProviderLost struct {
	Err   error
	Hosts int
}

// Replaced is a lost host replaced by a host of another provider.
type Replaced struct{ Host, Provider, Lease string }

// ReplaceShort says that fewer hosts than were lost could be replaced.
type ReplaceShort struct {
	Got, Lost, Holding int
	Err                error
}

// Explanation is why the market's choice took a provider or not (with
// Config.Explain).
type Explanation struct{ Address, Provider, Reason string }

func (e Progress) String() string { return e.Text }
func (e Notice) String() string   { return e.Text }
func (e ProviderPath) String() string {
	if e.Relayed {
		return fmt.Sprintf("provider %s: no direct connection (hole punching failed); its SSH is %s, at the relay's speed", e.Address, e.Path)
	}
	return fmt.Sprintf("provider %s reached %s", e.Address, e.Path)
}
func (e Dropped) String() string {
	if e.Released {
		return fmt.Sprintf("stopped paying released lease %s (provider %s): %s", e.Lease, e.Provider, e.Reason)
	}
	return fmt.Sprintf("dropped %s (lease %s, provider %s): %s; stopped paying it", e.Host, e.Lease, e.Provider, e.Reason)
}
func (e Ended) String() string {
	return fmt.Sprintf("%s (lease %s) ended by provider %s: %s", e.Host, e.Lease, e.Provider, e.Reason)
}
func (e ProviderLost) String() string {
	return fmt.Sprintf("%v; %s lost", e.Err, Plural(e.Hosts, "host"))
}
func (e Replaced) String() string {
	return fmt.Sprintf("replaced %s with a host of provider %s (lease %s)", e.Host, e.Provider, e.Lease)
}
func (e ReplaceShort) String() string {
	msg := fmt.Sprintf("could replace %d of %d lost hosts", e.Got, e.Lost)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s; holding %s", msg, Plural(e.Holding, "host"))
}
func (e Explanation) String() string {
	return fmt.Sprintf("%s (%s): %s", e.Address, e.Provider, e.Reason)
}

func (Progress) event()     {}
func (Notice) event()       {}
func (ProviderPath) event() {}
func (Dropped) event()      {}
func (Ended) event()        {}
func (ProviderLost) event() {}
func (Replaced) event()     {}
func (ReplaceShort) event() {}
func (Explanation) event()  {}
func (ProbeResult) event()  {}
func (SpotCheck) event()    {}

// Plural returns "1 host", "2 hosts".
func Plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}
