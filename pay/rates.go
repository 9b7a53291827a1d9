package pay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/zennet/zennet/meter"
)

// MaxRateLen bounds the text of one rate, so that an offer cannot make a
// party compute with enormous numbers.
const MaxRateLen = 64

// Rates are what one unit of each meter counter costs, in msat, as exact
// non-negative rationals: a rate of 1 sat per CPU-hour is exactly
// 1/3600000000 msat per cpu_ns. The zero value charges nothing. In JSON,
// Rates is an object from counter name to a decimal or a/b fraction string,
// zero rates omitted: {"cpu_ns":"1/3600000000","net_out_bytes":"0.000001"}.
type Rates struct {
	// r holds each counter's rate; nil is zero. The Rats are never
	// modified once set, so copies of a Rates share them safely.
	r [meter.NumCounters]*big.Rat
}

// ParseRate parses one rate in msat per unit: a decimal ("0.25") or a
// fraction ("1/3600000000"), non-negative, without exponent or sign.
func ParseRate(s string) (*big.Rat, error) {
	if s == "" || len(s) > MaxRateLen {
		return nil, fmt.Errorf("rate %.70q: length %d out of range 1..%d", s, len(s), MaxRateLen)
	}
	slash, dot := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '/':
			slash++
		case c == '.':
			dot++
		default:
			return nil, fmt.Errorf("rate %q: unexpected %q (want digits, '.' or '/')", s, c)
		}
	}
	if slash > 1 || dot > 1 || slash == 1 && dot == 1 {
		return nil, fmt.Errorf("rate %q: want a decimal or a fraction a/b", s)
	}
	if slash == 1 && (s[0] == '/' || s[len(s)-1] == '/') || dot == 1 && len(s) == 1 {
		return nil, fmt.Errorf("rate %q: want a decimal or a fraction a/b", s)
	}
	var r big.Rat
	if _, ok := r.SetString(s); !ok {
		return nil, fmt.Errorf("rate %q: not a number (zero denominator?)", s)
	}
	return &r, nil
}

// Set sets counter c's rate, in msat per unit, from its text (ParseRate).
func (rs *Rates) Set(c meter.Counter, msatPerUnit string) error {
	if c < 0 || c >= meter.NumCounters {
		return fmt.Errorf("set rate: no counter %d", int(c))
	}
	r, err := ParseRate(msatPerUnit)
	if err != nil {
		return fmt.Errorf("set rate of %s: %w", c.Name(), err)
	}
	if r.Sign() == 0 {
		r = nil
	}
	rs.r[c] = r
	return nil
}

// SetFloat sets counter c's rate from a float64 (as a pricing model
// computes it), through its shortest decimal form, so that the agreed rate
// is the decimal both parties see.
func (rs *Rates) SetFloat(c meter.Counter, msatPerUnit float64) error {
	if !(msatPerUnit >= 0) || msatPerUnit > 1e18 {
		return fmt.Errorf("set rate of %s: %v out of range", c.Name(), msatPerUnit)
	}
	return rs.Set(c, strconv.FormatFloat(msatPerUnit, 'f', -1, 64))
}

// Rate returns counter c's rate in msat per unit.
func (rs *Rates) Rate(c meter.Counter) *big.Rat {
	if rs.r[c] == nil {
		return new(big.Rat)
	}
	return new(big.Rat).Set(rs.r[c])
}

// String returns counter c's rate as ParseRate reads it.
func (rs *Rates) String(c meter.Counter) string { return rs.Rate(c).RatString() }

// IsZero reports whether every rate is zero.
func (rs *Rates) IsZero() bool {
	for _, r := range rs.r {
		if r != nil {
			return false
		}
	}
	return true
}

// Equal reports whether rs and o are the same rates.
func (rs *Rates) Equal(o *Rates) bool {
	for c := range rs.r {
		if rs.Rate(meter.Counter(c)).Cmp(o.Rate(meter.Counter(c))) != 0 {
			return false
		}
	}
	return true
}

// Cost returns the exact cost in msat of usage d at these rates.
func (rs *Rates) Cost(d meter.Vector) *big.Rat {
	sum := new(big.Rat)
	var x, t big.Rat
	for i, v := range d {
		if v == 0 || rs.r[i] == nil {
			continue
		}
		x.SetUint64(v)
		t.Mul(&x, rs.r[i])
		sum.Add(sum, &t)
	}
	return sum
}

// MarshalJSON writes the non-zero rates as an object in counter order.
func (rs Rates) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		if rs.r[c] == nil {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		fmt.Fprintf(&b, "%q:%q", c.Name(), rs.r[c].RatString())
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object of counter names to rate strings; unknown
// counters and malformed rates are errors, missing counters cost nothing.
func (rs *Rates) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("rates: %w", err)
	}
	if m == nil {
		return errors.New("rates: null")
	}
	var out Rates
	for name, s := range m {
		c, ok := meter.CounterByName(name)
		if !ok {
			return fmt.Errorf("rates: unknown counter %q", name)
		}
		if err := out.Set(c, s); err != nil {
			return fmt.Errorf("rates: %w", err)
		}
	}
	*rs = out
	return nil
}
