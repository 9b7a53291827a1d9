package pay

import (
	"encoding/json"
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/zennet/zennet/meter"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // RatString; "" means an error
	}{
		{name: "zero", in: "0", want: "0"},
		{name: "integer", in: "42", want: "42"},
		{name: "decimal", in: "0.25", want: "1/4"},
		{name: "leading dot", in: ".5", want: "1/2"},
		{name: "fraction", in: "1/3600000000", want: "1/3600000000"},
		{name: "fraction reduces", in: "6/4", want: "3/2"},
		{name: "tiny decimal", in: "0.000000000277", want: "277/1000000000000"},
		{name: "empty", in: ""},
		{name: "negative", in: "-1"},
		{name: "plus sign", in: "+1"},
		{name: "exponent", in: "1e9"},
		{name: "huge exponent", in: "1e999999999"},
		{name: "hex", in: "0x10"},
		{name: "zero denominator", in: "1/0"},
		{name: "two slashes", in: "1/2/3"},
		{name: "decimal fraction", in: "1.5/2"},
		{name: "no numerator", in: "/2"},
		{name: "no denominator", in: "2/"},
		{name: "lone dot", in: "."},
		{name: "two dots", in: "1.2.3"},
		{name: "space", in: " 1"},
		{name: "too long", in: "0." + strings.Repeat("1", MaxRateLen)},
		{name: "not a number", in: "cheap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRate(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseRate(%q) = %s, want an error", tt.in, r.RatString())
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRate(%q): %v", tt.in, err)
			}
			if got := r.RatString(); got != tt.want {
				t.Errorf("ParseRate(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseRate: an accepted rate is non-negative and reads back from its
// RatString.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"0", "0.25", "1/3", "1e9", "-1", "1/0", ".", "00000.1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.Sign() < 0 {
			t.Fatalf("negative rate %s from %q", r.RatString(), s)
		}
		if len(r.RatString()) <= MaxRateLen {
			r2, err := ParseRate(r.RatString())
			if err != nil || r2.Cmp(r) != 0 {
				t.Fatalf("%q -> %s does not read back: %v", s, r.RatString(), err)
			}
		}
	})
}

func testRates(t testing.TB) Rates {
	t.Helper()
	var rs Rates
	for c, s := range map[meter.Counter]string{
		meter.CPU:         "1/3600000", // 1 sat per 3.6 CPU-seconds
		meter.MemoryTime:  "0.000271",
		meter.NetOutBytes: "1/1000000",
		meter.WriteBytes:  "1/3",
	} {
		if err := rs.Set(c, s); err != nil {
			t.Fatal(err)
		}
	}
	return rs
}

func TestRatesJSON(t *testing.T) {
	rs := testRates(t)
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cpu_ns":"1/3600000","io_write_bytes":"1/3","memory_mib_ms":"271/1000000","net_out_bytes":"1/1000000"}`
	if string(b) != want {
		t.Errorf("rates JSON\n got %s\nwant %s", b, want)
	}
	var back Rates
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Equal(&rs) {
		t.Errorf("rates changed in a round trip: %s", b)
	}
	for _, tt := range []struct{ name, in string }{
		{name: "null", in: `null`},
		{name: "unknown counter", in: `{"gpu_ns":"1"}`},
		{name: "number", in: `{"cpu_ns":1}`},
		{name: "negative", in: `{"cpu_ns":"-1"}`},
		{name: "array", in: `[]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r Rates
			if err := json.Unmarshal([]byte(tt.in), &r); err == nil {
				t.Errorf("accepted %s", tt.in)
			}
		})
	}
}

func TestRatesSetFloat(t *testing.T) {
	var rs Rates
	if err := rs.SetFloat(meter.CPU, 2.77e-7); err != nil {
		t.Fatal(err)
	}
	if got := rs.String(meter.CPU); got != "277/1000000000" {
		t.Errorf("SetFloat(2.77e-7) = %s", got)
	}
	for _, f := range []float64{-1, 1e300} {
		if err := rs.SetFloat(meter.CPU, f); err == nil {
			t.Errorf("SetFloat(%v) accepted", f)
		}
	}
}

func vec(kv ...uint64) meter.Vector {
	var v meter.Vector
	for i := 0; i+1 < len(kv); i += 2 {
		v[kv[i]] = kv[i+1]
	}
	return v
}

func TestAccumulatorCarries(t *testing.T) {
	var rs Rates
	if err := rs.Set(meter.CPU, "1/3"); err != nil {
		t.Fatal(err)
	}
	a := NewAccumulator(rs)
	steps := []struct {
		name      string
		cpu       uint64
		msat      uint64
		billed    uint64
		carry     string
		wantError error
	}{
		{name: "a third", cpu: 1, msat: 0, billed: 0, carry: "1/3"},
		{name: "two thirds", cpu: 2, msat: 0, billed: 0, carry: "2/3"},
		{name: "whole", cpu: 3, msat: 1, billed: 1, carry: "0"},
		{name: "idle", cpu: 3, msat: 0, billed: 1, carry: "0"},
		{name: "ten and a third", cpu: 34, msat: 10, billed: 11, carry: "1/3"},
		{name: "backwards", cpu: 33, wantError: ErrCountersBackwards},
	}
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			b, err := a.Add(uint64(i+1), vec(uint64(meter.CPU), s.cpu))
			if s.wantError != nil {
				if !errors.Is(err, s.wantError) {
					t.Fatalf("Add: %v, want %v", err, s.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Msat != s.msat || b.Billed != s.billed || b.Carry != s.carry {
				t.Errorf("bill %+v, want msat %d billed %d carry %s", b, s.msat, s.billed, s.carry)
			}
		})
	}
	if _, err := a.Add(5, vec(uint64(meter.CPU), 100)); !errors.Is(err, ErrStaleReport) {
		t.Errorf("re-billing report 5: %v, want ErrStaleReport", err)
	}
}

// TestAccumulatorTelescopes: however the usage is cut into reports, the
// interval bills add up to exactly floor(rates · final counters), and a
// restored accumulator goes on as if it had never stopped.
func TestAccumulatorTelescopes(t *testing.T) {
	rs := testRates(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 20 {
		a := NewAccumulator(rs)
		var cur meter.Vector
		var sum uint64
		for seq := uint64(1); seq <= 200; seq++ {
			for _, c := range []meter.Counter{meter.CPU, meter.MemoryTime, meter.NetOutBytes, meter.WriteBytes, meter.ReadBytes} {
				cur[c] += rng.Uint64N(5_000_000_000)
			}
			b, err := a.Add(seq, cur)
			if err != nil {
				t.Fatal(err)
			}
			sum += b.Msat
			if seq%37 == 0 { // a restart
				a, err = RestoreAccumulator(rs, a.State())
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		exact := rs.Cost(cur)
		floor := new(big.Int).Quo(exact.Num(), exact.Denom())
		if !floor.IsUint64() || floor.Uint64() != sum || a.State().Billed != sum {
			t.Fatalf("run %d: bills add up to %d msat (state %d), floor of the exact total is %s", run, sum, a.State().Billed, floor)
		}
		rest := new(big.Rat).Sub(exact, new(big.Rat).SetInt(floor))
		if got := a.State().Carry; got != rest.RatString() {
			t.Fatalf("run %d: carry %s, want %s", run, got, rest.RatString())
		}
	}
}

func TestAccumulatorOverflow(t *testing.T) {
	var rs Rates
	if err := rs.Set(meter.CPU, "1000000"); err != nil {
		t.Fatal(err)
	}
	a := NewAccumulator(rs)
	if _, err := a.Add(1, vec(uint64(meter.CPU), 1<<62)); err == nil {
		t.Fatal("a bill of 2^62 × 10^6 msat did not overflow")
	}
	if a.State().Seq != 0 {
		t.Errorf("a refused report moved the state: %+v", a.State())
	}
}

func TestRestoreAccumulatorBadCarry(t *testing.T) {
	for _, c := range []string{"1", "-1/2", "3/2", "x"} {
		if _, err := RestoreAccumulator(Rates{}, AccumulatorState{Carry: c}); err == nil {
			t.Errorf("carry %q accepted", c)
		}
	}
}
