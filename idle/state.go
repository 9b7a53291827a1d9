package idle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is what the owner's load allows renters.
type State int

// The states, from least to most owner activity.
const (
	// Idle: the owner leaves the machine alone; leases run unrestricted.
	Idle State = iota
	// Throttled: the owner uses the machine a little; leases run with
	// their CPU quotas multiplied by Policy.ThrottleFactor. Only a Policy
	// with a ThrottleFactor has this state.
	Throttled
	// Busy: the owner uses the machine; leases are paused.
	Busy
)

func (s State) String() string {
	switch s {
	case Idle:
		return "idle"
	case Throttled:
		return "throttled"
	case Busy:
		return "busy"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Threshold is a level of owner load: Value cores, or, if Fraction is set,
// Value times the machine's CPUs (0.25 is a quarter of the machine).
type Threshold struct {
	Value    float64
	Fraction bool
}

// Cores is a threshold of c cores.
func Cores(c float64) Threshold { return Threshold{Value: c} }

// Fraction is a threshold of f times the machine's CPUs.
func Fraction(f float64) Threshold { return Threshold{Value: f, Fraction: true} }

// ParseThreshold reads "0.5" (cores) or "25%" (of the machine's CPUs).
func ParseThreshold(s string) (Threshold, error) {
	s = strings.TrimSpace(s)
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || v < 0 || v != v {
		return Threshold{}, fmt.Errorf("threshold %q: want cores (0.5) or a percentage of the machine (25%%)", s)
	}
	if pct {
		return Fraction(v / 100), nil
	}
	return Cores(v), nil
}

func (t Threshold) String() string {
	if t.Fraction {
		return strconv.FormatFloat(t.Value*100, 'f', -1, 64) + "%"
	}
	return strconv.FormatFloat(t.Value, 'f', -1, 64)
}

// Cores returns the threshold in cores on a machine with cpus CPUs.
func (t Threshold) Cores(cpus int) float64 {
	if t.Fraction {
		return t.Value * float64(max(cpus, 1))
	}
	return t.Value
}

func (t Threshold) isZero() bool { return t.Value == 0 }

// Defaults of a Policy.
var (
	DefaultBusyAbove = Cores(0.5)
	DefaultIdleBelow = Cores(0.2)
)

// Default durations of a Policy.
const (
	DefaultBusyFor = 2 * time.Second
	DefaultIdleFor = 30 * time.Second
)

// Policy says when the owner counts as busy. Zero fields take the defaults.
//
// The owner's load L (Reading.Cores) falls in one of three zones: high
// (L > BusyAbove), low (L < IdleBelow) or between. Moving to a busier state
// takes a zone held for BusyFor, moving to a quieter one a zone held for
// IdleFor:
//
//	Idle      → Busy       high for BusyFor
//	Throttled → Busy       high for BusyFor
//	Busy      → Idle       low for IdleFor
//	Without a ThrottleFactor the band between keeps the current state.
//	With one:
//	Idle      → Throttled  not low (between or high) for BusyFor
//	Busy      → Throttled  not high (between or low) for IdleFor
//	Throttled → Idle       low for IdleFor
//
// "Held for D" means every reading since D ago was in the zone: a reading
// covers its Window, so with 1 s readings and BusyFor 2 s two high readings
// in a row make the owner busy and a single spike never does. Readings go
// up quickly (BusyFor, the owner must not wait) and come down slowly
// (IdleFor), so the state changes at most once per BusyFor upwards and
// once per IdleFor downwards whatever the load does: it cannot flap.
type Policy struct {
	// BusyAbove is the load above which the owner is busy (default 0.5
	// cores).
	BusyAbove Threshold
	// IdleBelow is the load below which the owner is idle (default 0.2
	// cores). At most BusyAbove.
	IdleBelow Threshold
	// BusyFor and IdleFor are how long a zone must hold (defaults 2 s and
	// 30 s).
	BusyFor, IdleFor time.Duration
	// ThrottleFactor, in (0, 1), enables the Throttled state: while in it
	// the caller multiplies renters' CPU quotas by ThrottleFactor. Zero
	// means two states only, Idle and Busy.
	ThrottleFactor float64
}

func (p Policy) withDefaults() Policy {
	if p.BusyAbove.isZero() {
		p.BusyAbove = DefaultBusyAbove
	}
	if p.IdleBelow.isZero() {
		p.IdleBelow = DefaultIdleBelow
	}
	if p.BusyFor <= 0 {
		p.BusyFor = DefaultBusyFor
	}
	if p.IdleFor <= 0 {
		p.IdleFor = DefaultIdleFor
	}
	return p
}

// Validate reports a Policy that cannot work.
func (p Policy) Validate() error {
	p = p.withDefaults()
	var errs []error
	if p.BusyAbove.Value < 0 || p.IdleBelow.Value < 0 {
		errs = append(errs, errors.New("idle: negative threshold"))
	}
	if p.BusyAbove.Fraction == p.IdleBelow.Fraction && p.IdleBelow.Value > p.BusyAbove.Value {
		errs = append(errs, fmt.Errorf("idle: idle-below %s is above busy-above %s", p.IdleBelow, p.BusyAbove))
	}
	if p.ThrottleFactor < 0 || p.ThrottleFactor >= 1 || p.ThrottleFactor != p.ThrottleFactor {
		errs = append(errs, fmt.Errorf("idle: throttle factor %g not in [0, 1)", p.ThrottleFactor))
	}
	return errors.Join(errs...)
}

// Factor is what the caller multiplies renters' CPU quotas by in state s:
// 1 when Idle, ThrottleFactor when Throttled, 0 when Busy (pause them).
func (p Policy) Factor(s State) float64 {
	switch s {
	case Idle:
		return 1
	case Throttled:
		return p.ThrottleFactor
	}
	return 0
}

// Hysteresis is the state machine of a Policy, fed one Reading at a time.
// It does no I/O and reads no clock: tests drive it with any times. It is
// not safe for concurrent use (Watcher locks it).
type Hysteresis struct {
	p     Policy
	state State
	// Starts of the current runs of readings in each zone condition; zero
	// when the last reading broke the run.
	high, low, notLow, notHigh time.Time
	last                       time.Time
}

// NewHysteresis starts a state machine in state initial (Throttled, for a
// Policy without a ThrottleFactor, starts Busy).
func NewHysteresis(p Policy, initial State) *Hysteresis {
	p = p.withDefaults()
	if p.ThrottleFactor <= 0 && initial == Throttled {
		initial = Busy
	}
	return &Hysteresis{p: p, state: initial}
}

// State returns the current state.
func (h *Hysteresis) State() State { return h.state }

// Policy returns the policy with its defaults filled in.
func (h *Hysteresis) Policy() Policy { return h.p }

// Step feeds a reading taken at now (the end of its window) and returns the
// state after it and whether it changed. A reading with no Window carries
// no load (the first sample of a Watcher) and changes nothing; neither
// does one older than the last.
func (h *Hysteresis) Step(r Reading, now time.Time) (State, bool) {
	if r.Window <= 0 || (!h.last.IsZero() && now.Before(h.last)) {
		return h.state, false
	}
	h.last = now
	busy := h.p.BusyAbove.Cores(r.CPUs)
	idle := min(h.p.IdleBelow.Cores(r.CPUs), busy)
	high, low := r.Cores > busy, r.Cores < idle
	from := now.Add(-r.Window)
	run := func(since *time.Time, in bool) {
		switch {
		case !in:
			*since = time.Time{}
		case since.IsZero():
			*since = from
		}
	}
	run(&h.high, high)
	run(&h.low, low)
	run(&h.notLow, !low)
	run(&h.notHigh, !high)
	// Sampling jitter must not cost a whole extra reading: 2 s of 1 s
	// readings that came 999 ms apart still hold for 2 s.
	slack := r.Window / 20
	held := func(since time.Time, d time.Duration) bool {
		return !since.IsZero() && now.Sub(since)+slack >= d
	}
	throttle := h.p.ThrottleFactor > 0
	next := h.state
	switch {
	case h.state != Busy && held(h.high, h.p.BusyFor):
		next = Busy
	case h.state == Idle && throttle && held(h.notLow, h.p.BusyFor):
		next = Throttled
	case h.state != Idle && held(h.low, h.p.IdleFor):
		next = Idle
	case h.state == Busy && throttle && held(h.notHigh, h.p.IdleFor):
		next = Throttled
	}
	changed := next != h.state
	h.state = next
	return next, changed
}
