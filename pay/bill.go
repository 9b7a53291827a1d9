package pay

import (
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/zennet/zennet/meter"
)

// ErrStaleReport means a report was billed already, or is older than the
// last one billed: billing it would bill its usage twice.
var ErrStaleReport = errors.New("report already billed")

// ErrCountersBackwards means a report's counter is below the last billed
// value of the same counter.
var ErrCountersBackwards = errors.New("counter went backwards")

// Bill is what one usage report adds to a lease's bill.
type Bill struct {
	// Seq is the sequence number of the report billed.
	Seq uint64 `json:"seq"`
	// Usage is the counters' delta since the previous report.
	Usage meter.Vector `json:"usage"`
	// Msat is the whole msat this report adds: the floor of its exact cost
	// plus the carry it received.
	Msat uint64 `json:"msat"`
	// Billed is the lease's cumulative bill in whole msat, this one
	// included.
	Billed uint64 `json:"billed_msat"`
	// Carry is the exact sub-msat remainder carried to the next report,
	// in [0, 1) msat, as a fraction "a/b".
	Carry string `json:"carry_msat"`
}

// AccumulatorState is what an Accumulator must remember across restarts.
type AccumulatorState struct {
	// Seq is the last report billed; 0 before the first.
	Seq uint64 `json:"seq"`
	// Counters are the last billed report's counters.
	Counters meter.Vector `json:"counters"`
	// Billed is the cumulative bill in whole msat.
	Billed uint64 `json:"billed_msat"`
	// Carry is the exact sub-msat remainder, a fraction in [0, 1).
	Carry string `json:"carry_msat"`
}

// Accumulator bills a lease's usage reports one after another: each report
// adds rates · (counters - previous counters) to an exact running total,
// of which the whole msat are billed and the remainder carried. With fixed
// rates, Billed after report k is exactly floor(rates · counters_k): the
// sum of the interval bills telescopes, whatever the intervals.
// An Accumulator is not safe for concurrent use.
type Accumulator struct {
	rates Rates
	st    AccumulatorState
	carry big.Rat
}

// NewAccumulator returns an Accumulator at the start of a lease, whose
// counters start at zero.
func NewAccumulator(rates Rates) *Accumulator {
	return &Accumulator{rates: rates, st: AccumulatorState{Carry: "0"}}
}

// RestoreAccumulator returns an Accumulator that resumes from st.
func RestoreAccumulator(rates Rates, st AccumulatorState) (*Accumulator, error) {
	a := &Accumulator{rates: rates, st: st}
	if st.Carry == "" {
		a.st.Carry = "0"
	}
	if _, ok := a.carry.SetString(a.st.Carry); !ok || a.carry.Sign() < 0 || a.carry.Cmp(big.NewRat(1, 1)) >= 0 {
		return nil, fmt.Errorf("restore accumulator: carry %q is not a fraction in [0, 1)", st.Carry)
	}
	return a, nil
}

// State returns what to persist to resume the Accumulator.
func (a *Accumulator) State() AccumulatorState { return a.st }

// Rates returns the rates the Accumulator bills at.
func (a *Accumulator) Rates() Rates { return a.rates }

// SetRates changes the rates for the usage of reports after the last one
// billed; what was billed, and the carry, stay.
func (a *Accumulator) SetRates(r Rates) { a.rates = r }

// Peek returns the Bill that Add would return, without adding it.
func (a *Accumulator) Peek(seq uint64, counters meter.Vector) (Bill, error) {
	b, _, err := a.bill(seq, counters)
	return b, err
}

// Add bills the report with sequence number seq and cumulative counters.
// It refuses a seq that is not above the last one billed (ErrStaleReport)
// and counters below the last billed (ErrCountersBackwards); the caller
// checks reports (meter.Check) before billing them.
func (a *Accumulator) Add(seq uint64, counters meter.Vector) (Bill, error) {
	b, carry, err := a.bill(seq, counters)
	if err != nil {
		return Bill{}, err
	}
	a.carry.Set(carry)
	a.st = AccumulatorState{Seq: seq, Counters: counters, Billed: b.Billed, Carry: b.Carry}
	return b, nil
}

func (a *Accumulator) bill(seq uint64, counters meter.Vector) (Bill, *big.Rat, error) {
	if seq <= a.st.Seq {
		return Bill{}, nil, fmt.Errorf("%w: report %d, last billed %d", ErrStaleReport, seq, a.st.Seq)
	}
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		if counters[c] < a.st.Counters[c] {
			return Bill{}, nil, fmt.Errorf("%w: %s from %d to %d", ErrCountersBackwards, c.Name(), a.st.Counters[c], counters[c])
		}
	}
	d := counters.Sub(a.st.Counters)
	exact := a.rates.Cost(d)
	exact.Add(exact, &a.carry)
	whole := new(big.Int).Quo(exact.Num(), exact.Denom()) // floor: exact >= 0
	if !whole.IsUint64() || whole.Uint64() > math.MaxUint64-a.st.Billed {
		return Bill{}, nil, fmt.Errorf("bill report %d: %s msat overflows the bill", seq, whole)
	}
	carry := new(big.Rat).Sub(exact, new(big.Rat).SetInt(whole))
	msat := whole.Uint64()
	return Bill{Seq: seq, Usage: d, Msat: msat, Billed: a.st.Billed + msat, Carry: carry.RatString()}, carry, nil
}
