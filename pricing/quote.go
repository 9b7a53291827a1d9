package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"

	"github.com/zennet/zennet/meter"
)

// Usage is a counter delta keyed by counter name, in each counter's units:
// what an interval used. Absent counters are zero.
type Usage map[string]uint64

// UsageFromVector is the Usage of a meter counter delta.
func UsageFromVector(d meter.Vector) Usage {
	u := make(Usage, meter.NumCounters)
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		u[c.Name()] = d[c]
	}
	return u
}

// DecodeUsage reads a JSON object of counter name to non-negative integer
// delta (a meter.Vector in JSON is one). Negative, fractional, non-numeric
// and out-of-range counts are errors.
func DecodeUsage(b []byte) (Usage, error) {
	var raw map[string]json.RawMessage
	if err := decodeStrict(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: null", ErrUsage)
	}
	u := make(Usage, len(raw))
	for name, r := range raw {
		x, err := strconv.ParseUint(string(r), 10, 64)
		if err != nil {
			var compact bytes.Buffer
			if json.Compact(&compact, r) != nil {
				compact.Write(r)
			}
			return nil, fmt.Errorf("%w: counter %s: %.40s is not a count (a non-negative integer below 2^64)", ErrUsage, name, compact.Bytes())
		}
		u[name] = x
	}
	return u, nil
}

// Quote is the bill for usage u under m in msat, exact: the sum over
// priced counters of rate × delta, each rate taken as the exact binary
// value of its float64. It is linear, so Quote of a cumulative counter
// vector minus Quote of the previous one is exactly Quote of the delta; a
// payment loop that pays Nanomsat(Quote(total)) minus what it has paid
// carries no remainders.
//
// Counters of m.Excluded are ignored; a counter the model does not know is
// an error.
func (m *Model) Quote(u Usage) (*big.Rat, error) {
	if err := m.checkUsage(u); err != nil {
		return nil, err
	}
	sum := new(big.Rat)
	var term, d big.Rat
	for _, c := range m.Counters {
		if x := u[c.Name]; x != 0 && c.Rate != 0 {
			term.SetFloat64(c.Rate) // finite: validate checked.
			d.SetUint64(x)
			sum.Add(sum, term.Mul(&term, &d))
		}
	}
	return sum, nil
}

// QuoteVector is Quote of a meter counter delta. Meter counters the model
// does not price are free; a model pricing a counter meter lacks is an
// error.
func (m *Model) QuoteVector(d meter.Vector) (*big.Rat, error) {
	u := Usage{}
	for _, c := range m.Counters {
		mc, ok := meter.CounterByName(c.Name)
		if !ok {
			return nil, fmt.Errorf("%w: the model prices %s, which meter does not count", ErrUsage, c.Name)
		}
		u[c.Name] = d[mc]
	}
	return m.Quote(u)
}

// Nanomsat rounds a bill in msat down to whole nanomsat (10⁻⁹ msat).
func Nanomsat(msat *big.Rat) (uint64, error) {
	if msat.Sign() < 0 {
		return 0, fmt.Errorf("%w: negative bill %s", ErrUsage, msat.FloatString(9))
	}
	var q big.Int
	n := new(big.Int).Mul(msat.Num(), big.NewInt(1e9))
	q.Quo(n, msat.Denom())
	if !q.IsUint64() {
		return 0, fmt.Errorf("%w: bill of %s msat does not fit in uint64 nanomsat", ErrUsage, msat.FloatString(3))
	}
	return q.Uint64(), nil
}

// checkUsage rejects counters the model neither prices nor excludes.
func (m *Model) checkUsage(u Usage) error {
	for name := range u {
		priced := slices.ContainsFunc(m.Counters, func(c CounterRate) bool { return c.Name == name })
		if !priced && !slices.Contains(m.Excluded, name) {
			return fmt.Errorf("%w: counter %q is not in the model", ErrUsage, name)
		}
	}
	return nil
}

// Explanation itemises a bill.
type Explanation struct {
	// Msat is Quote's exact bill.
	Msat *big.Rat
	// Lines are the priced counters with a non-zero delta, in model order.
	Lines []Line
	// Coverage is the fraction of the usage's size (in the fit's scaled
	// counter space, squared) that lies inside the kept components: near 1
	// for work like the calibration's, lower for work unlike any step,
	// whose price rests on the ridge's even spreading rather than on the
	// calibration. 1 for usage of no scaled counter.
	Coverage float64
	// Unexercised are counters with usage that no calibration step moved:
	// the model cannot price them and charges 0.
	Unexercised []string
}

// Line is one counter's part of a bill.
type Line struct {
	Counter string  `json:"counter"`
	Unit    string  `json:"unit,omitempty"`
	Delta   uint64  `json:"delta"`
	Rate    float64 `json:"rate"`
	Msat    float64 `json:"msat"`
}

// Explain is Quote with the bill itemised.
func (m *Model) Explain(u Usage) (*Explanation, error) {
	q, err := m.Quote(u)
	if err != nil {
		return nil, err
	}
	e := &Explanation{Msat: q, Coverage: 1}
	// z is the usage in the fit's scaled space, divided by its largest
	// entry so that squares cannot overflow (coverage is a ratio).
	z := make([]float64, len(m.Counters))
	var biggest float64
	for j, c := range m.Counters {
		x := u[c.Name]
		if x == 0 {
			continue
		}
		e.Lines = append(e.Lines, Line{Counter: c.Name, Unit: c.Unit, Delta: x, Rate: c.Rate, Msat: c.Rate * float64(x)})
		if c.Scale == 0 {
			e.Unexercised = append(e.Unexercised, c.Name)
			continue
		}
		z[j] = float64(x) / c.Scale
		biggest = math.Max(biggest, z[j])
	}
	if biggest > 0 && !math.IsInf(biggest, 0) {
		var norm2 float64
		for j := range z {
			z[j] /= biggest
			norm2 += z[j] * z[j]
		}
		var in float64
		for _, comp := range m.Components {
			var dot float64
			for j, l := range comp.Loadings {
				dot += l * z[j]
			}
			in += dot * dot
		}
		e.Coverage = math.Min(in/norm2, 1)
	}
	return e, nil
}

// FormatNanomsat writes n nanomsat as msat with nine decimals.
func FormatNanomsat(n uint64) string {
	return new(big.Rat).SetFrac(new(big.Int).SetUint64(n), big.NewInt(1e9)).FloatString(9)
}

// Bill is a quote rounded down to the nanomsat and itemised: Explain's
// Explanation in the form printed and sent as JSON.
type Bill struct {
	// Msat is Nanomsat written as msat with nine decimals.
	Msat     string  `json:"msat"`
	Nanomsat uint64  `json:"nanomsat"`
	Coverage float64 `json:"coverage"`
	// Lines are never nil.
	Lines       []Line   `json:"lines"`
	Unexercised []string `json:"unexercised,omitempty"`
}

// Bill bills u (Explain) rounded down to the nanomsat (Nanomsat).
func (m *Model) Bill(u Usage) (Bill, error) {
	e, err := m.Explain(u)
	if err != nil {
		return Bill{}, err
	}
	n, err := Nanomsat(e.Msat)
	if err != nil {
		return Bill{}, err
	}
	lines := e.Lines
	if lines == nil {
		lines = []Line{}
	}
	return Bill{Msat: FormatNanomsat(n), Nanomsat: n, Coverage: e.Coverage, Lines: lines, Unexercised: e.Unexercised}, nil
}
