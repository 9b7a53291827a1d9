package pricing

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/zennet/zennet/meter"
)

// synthVector is a synthetic job's counter delta as the meter reports it.
func synthVector(rng *rand.Rand) meter.Vector {
	u, _ := synthJob(rng, 0.005)
	var v meter.Vector
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		v[c] = u[c.Name()]
	}
	return v
}

// TestQuoteLinear checks that bills are exact and add up: the bill of a
// sum of intervals is the sum of their bills, to the last bit, so a payment
// loop billing cumulative vectors carries no remainder.
func TestQuoteLinear(t *testing.T) {
	m := fittedModel(t)
	rng := rand.New(rand.NewPCG(8, 8))
	var total meter.Vector
	sum := new(big.Rat)
	for range 50 {
		d := synthVector(rng)
		for i := range total {
			total[i] += d[i]
		}
		q, err := m.QuoteVector(d)
		if err != nil {
			t.Fatal(err)
		}
		sum.Add(sum, q)
	}
	q, err := m.QuoteVector(total)
	if err != nil {
		t.Fatal(err)
	}
	if q.Cmp(sum) != 0 {
		t.Fatalf("bill of the total %s, sum of the bills %s", q.FloatString(12), sum.FloatString(12))
	}
	// QuoteVector ignores the memory peak, which the model excludes.
	total[meter.MemoryPeak] = math.MaxUint64
	if q2, _ := m.QuoteVector(total); q2.Cmp(q) != 0 {
		t.Fatal("the memory peak changed the bill")
	}
}

func TestQuote(t *testing.T) {
	m := &Model{Version: ModelVersion, Counters: []CounterRate{
		{Name: "cpu_ns", Unit: "ns", Scale: 1e9, Rate: 1e-6},
		{Name: "net_in_bytes", Unit: "bytes", Scale: 1e6, Rate: 0.1},
		{Name: "page_faults_minor", Scale: 0, Rate: 0},
	}, Excluded: []string{"memory_peak_bytes"}}
	tests := []struct {
		name     string
		u        Usage
		nanomsat uint64
		err      string
	}{
		{"empty", Usage{}, 0, ""},
		{"one CPU-second", Usage{"cpu_ns": 1e9}, 1000e9, ""},
		{"sub-msat", Usage{"cpu_ns": 1}, 1000, ""}, // 1e-6 is not exact in binary: rounded down
		{"mixed", Usage{"cpu_ns": 3, "net_in_bytes": 7}, 700000000 + 3000, ""},
		{"excluded counter ignored", Usage{"cpu_ns": 1e9, "memory_peak_bytes": 1 << 40}, 1000e9, ""},
		{"unexercised counter free", Usage{"page_faults_minor": 1e6}, 0, ""},
		{"unknown counter", Usage{"cpu_nss": 1}, 0, `counter "cpu_nss" is not in the model`},
		{"too big for uint64 nanomsat", Usage{"net_in_bytes": math.MaxUint64}, 0, "does not fit in uint64 nanomsat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := m.Quote(tt.u)
			var n uint64
			if err == nil {
				n, err = Nanomsat(q)
			}
			if tt.err != "" {
				if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want ErrUsage containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// 1e-6 as a float64 is a little below 10⁻⁶, so floors land
			// one nanomsat under the decimal figure at most.
			if n != tt.nanomsat && n+1 != tt.nanomsat {
				t.Fatalf("%d nanomsat, want %d", n, tt.nanomsat)
			}
		})
	}
}

func TestQuoteVectorNonMeterCounter(t *testing.T) {
	m := &Model{Version: ModelVersion, Counters: []CounterRate{{Name: "instructions", Scale: 1, Rate: 1}}}
	if _, err := m.QuoteVector(meter.Vector{}); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "meter does not count") {
		t.Fatalf("err %v", err)
	}
}

func TestNanomsat(t *testing.T) {
	tests := []struct {
		name string
		r    *big.Rat
		want uint64
		err  bool
	}{
		{"zero", new(big.Rat), 0, false},
		{"floor", big.NewRat(1, 3), 333333333, false},
		{"whole", big.NewRat(5, 1), 5e9, false},
		{"negative", big.NewRat(-1, 1), 0, true},
		{"largest", new(big.Rat).SetFrac(new(big.Int).SetUint64(math.MaxUint64), big.NewInt(1e9)), math.MaxUint64, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Nanomsat(tt.r)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("Nanomsat(%s) = %d, %v", tt.r, got, err)
			}
		})
	}
}

// usageDecodeTests seed FuzzDecodeUsage.
var usageDecodeTests = []struct {
	name string
	in   string
	want Usage
	err  string
}{
	{"counts", `{"cpu_ns": 12, "net_in_bytes": 0}`, Usage{"cpu_ns": 12, "net_in_bytes": 0}, ""},
	{"largest count", `{"cpu_ns": 18446744073709551615}`, Usage{"cpu_ns": math.MaxUint64}, ""},
	{"empty", `{}`, Usage{}, ""},
	{"negative", `{"cpu_ns": -1}`, nil, "cpu_ns: -1 is not a count"},
	{"fraction", `{"cpu_ns": 1.5}`, nil, "1.5 is not a count"},
	{"exponent", `{"cpu_ns": 1e9}`, nil, "1e9 is not a count"},
	{"NaN", `{"cpu_ns": "NaN"}`, nil, `"NaN" is not a count`},
	{"Inf", `{"cpu_ns": Infinity}`, nil, "invalid character"},
	{"too big", `{"cpu_ns": 18446744073709551616}`, nil, "is not a count"},
	{"null", `null`, nil, "null"},
	{"array", `[1]`, nil, "cannot unmarshal array"},
	{"trailing", `{} {}`, nil, "after the JSON document"},
}

func TestDecodeUsage(t *testing.T) {
	for _, tt := range usageDecodeTests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := DecodeUsage([]byte(tt.in))
			if tt.err != "" {
				if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("DecodeUsage = %v, %v; want ErrUsage containing %q", u, err, tt.err)
				}
				return
			}
			if err != nil || len(u) != len(tt.want) {
				t.Fatalf("DecodeUsage = %v, %v", u, err)
			}
			for k, v := range tt.want {
				if u[k] != v {
					t.Fatalf("%s = %d, want %d", k, u[k], v)
				}
			}
		})
	}
}

// A meter.Vector's JSON is a usage.
func TestDecodeUsageOfVector(t *testing.T) {
	v := synthVector(rand.New(rand.NewPCG(2, 2)))
	b, _ := v.MarshalJSON()
	u, err := DecodeUsage(b)
	if err != nil {
		t.Fatal(err)
	}
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		if u[c.Name()] != v[c] {
			t.Fatalf("%s: %d, want %d", c.Name(), u[c.Name()], v[c])
		}
	}
}

func FuzzDecodeUsage(f *testing.F) {
	for _, tt := range usageDecodeTests {
		f.Add([]byte(tt.in))
	}
	m := fittedModel(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := DecodeUsage(b)
		if err != nil {
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("error %v is not ErrUsage", err)
			}
			return
		}
		q, err := m.Quote(u)
		if err != nil {
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("Quote error %v is not ErrUsage", err)
			}
			return
		}
		if q.Sign() < 0 {
			t.Fatalf("negative bill %s", q.FloatString(9))
		}
	})
}

func TestExplain(t *testing.T) {
	m := fittedModel(t)
	rng := rand.New(rand.NewPCG(4, 4))
	u, _ := synthJob(rng, 0)
	e, err := m.Explain(u)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, l := range e.Lines {
		sum += l.Msat
	}
	if q, _ := e.Msat.Float64(); !near(sum, q, 1e-12) {
		t.Fatalf("lines add to %v, bill %v", sum, q)
	}
	if e.Coverage < 0.999 {
		t.Errorf("coverage of work in the span of the calibration: %v", e.Coverage)
	}
	// Work that moves a counter against the grain of every step: only
	// io_read_bytes, which steps only ever move together with other I/O
	// counters.
	odd, err := m.Explain(Usage{meter.ReadBytes.Name(): 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if odd.Coverage > 0.5 {
		t.Errorf("coverage of work unlike any step: %v", odd.Coverage)
	}
	t.Logf("coverage: a held-out job %.6f, bare io_read_bytes %.3f", e.Coverage, odd.Coverage)
}

func TestFormatNanomsat(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0.000000000"},
		{1, "0.000000001"},
		{999_999_999, "0.999999999"},
		{1_000_000_005, "1.000000005"},
		{2_030_000_000_000, "2030.000000000"},
		{math.MaxUint64, "18446744073.709551615"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := FormatNanomsat(tt.n); got != tt.want {
				t.Errorf("FormatNanomsat(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}

func TestBill(t *testing.T) {
	m := fittedModel(t)
	rng := rand.New(rand.NewPCG(4, 4))
	job, _ := synthJob(rng, 0)
	tests := []struct {
		name  string
		usage Usage
		lines int
	}{
		{"no usage", Usage{}, 0},
		{"a job", job, -1},
		{"one counter", Usage{meter.CPU.Name(): 2e9}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := m.Bill(tt.usage)
			if err != nil {
				t.Fatal(err)
			}
			q, _ := m.Quote(tt.usage)
			n, _ := Nanomsat(q)
			if b.Nanomsat != n || b.Msat != FormatNanomsat(n) {
				t.Errorf("bill %s (%d), want %s", b.Msat, b.Nanomsat, FormatNanomsat(n))
			}
			if b.Lines == nil || (tt.lines >= 0 && len(b.Lines) != tt.lines) {
				t.Errorf("lines %v, want %d and never nil", b.Lines, tt.lines)
			}
		})
	}
	if _, err := m.Bill(Usage{"no_such_counter": 1}); !errors.Is(err, ErrUsage) {
		t.Errorf("an unknown counter: %v", err)
	}
}
