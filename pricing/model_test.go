package pricing

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func fittedModel(t testing.TB) *Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	m, err := Fit([]Calibration{synthCalibration(rng, 10, 0.005)}, Prices{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestModelRoundTrip(t *testing.T) {
	m := fittedModel(t)
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("decoded model differs:\n%+v\n%+v", got, m)
	}
	b2, _ := Encode(got)
	if !bytes.Equal(b, b2) {
		t.Fatal("encoding is not stable")
	}
	h1, _ := m.Hash()
	h2, _ := got.Hash()
	if h1 != h2 || !strings.HasPrefix(h1, "sha256:") {
		t.Fatalf("hashes %s, %s", h1, h2)
	}
	u := UsageFromVector(synthVector(rand.New(rand.NewPCG(1, 2))))
	q1, _ := m.Quote(u)
	q2, _ := got.Quote(u)
	if q1.Cmp(q2) != 0 {
		t.Fatalf("decoded model bills %s, the original %s", q2.FloatString(9), q1.FloatString(9))
	}
}

var (
	firstRate    = regexp.MustCompile(`"rate": [0-9.e+-]+`)
	calibrations = regexp.MustCompile(`"calibrations": \[[^\]]*\]`)
)

// modelDecodeTests are encodings Decode must refuse; FuzzDecode starts from
// them.
var modelDecodeTests = []struct {
	name string
	edit func(s string) string
	msg  string
}{
	{"not JSON", func(string) string { return "{" }, "unexpected end"},
	{"no version", func(s string) string { return strings.Replace(s, `"version": 1,`, "", 1) }, "no version"},
	{"other version", func(s string) string { return strings.Replace(s, `"version": 1,`, `"version": 2,`, 1) }, "version 2, this zennet reads version 1"},
	{"unknown field", func(s string) string { return strings.Replace(s, `"version": 1,`, `"version": 1, "bonus": 3,`, 1) }, `unknown field "bonus"`},
	{"trailing data", func(s string) string { return s + "{}" }, "after top-level value"},
	{"negative rate", func(s string) string { return strings.Replace(s, `"rate": `, `"rate": -`, 1) }, "is not a non-negative number"},
	{"huge number", func(s string) string { return firstRate.ReplaceAllLiteralString(s, `"rate": 1e999`) }, "cannot unmarshal"},
	{"no counters", func(s string) string {
		return s[:strings.Index(s, `"counters"`)] + `"counters": [], ` + s[strings.Index(s, `"prices"`):]
	}, "no counters"},
	{"no calibration", func(s string) string { return calibrations.ReplaceAllLiteralString(s, `"calibrations": []`) }, "no calibration recorded"},
	{"variance above one", func(s string) string { return strings.Replace(s, `"variance_kept": `, `"variance_kept": 7`, 1) }, "is not a fraction"},
}

func TestDecodeErrors(t *testing.T) {
	good, err := Encode(fittedModel(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range modelDecodeTests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.edit(string(good))))
			if !errors.Is(err, ErrModel) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Decode = %v, %v; want ErrModel containing %q", m, err, tt.msg)
			}
		})
	}
	if _, err := Decode(make([]byte, MaxModelSize+1)); !errors.Is(err, ErrModel) {
		t.Fatalf("oversized model: %v", err)
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	m := fittedModel(t)
	m.Counters[0].Rate = -1
	if _, err := Encode(m); !errors.Is(err, ErrModel) {
		t.Fatalf("Encode of a negative rate: %v", err)
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// encodes and decodes to the same model and bills without error.
func FuzzDecode(f *testing.F) {
	good, err := Encode(fittedModel(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, tt := range modelDecodeTests {
		f.Add([]byte(tt.edit(string(good))))
	}
	f.Add([]byte(`{"version":1,"counters":[{"name":"cpu_ns","scale":1,"rate":1e-6}],"prices":{},"calibrations":["x"],` +
		`"singular_values":[1],"components":[{"singular_value":1,"variance":1,"loadings":[1]}],"variance_kept":1,"ridge":0.001,` +
		`"residuals":[],"rms_residual":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrModel) {
				t.Fatalf("error %v is not ErrModel", err)
			}
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded model does not encode: %v", err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded model does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the model")
		}
		u := Usage{}
		for _, c := range m.Counters {
			u[c.Name] = 1 << 40
		}
		if _, err := m.Explain(u); err != nil {
			t.Fatalf("Explain: %v", err)
		}
	})
}

func TestDescribePrices(t *testing.T) {
	tests := []struct {
		name      string
		prices    Prices
		reference string
		want      string
	}{
		{"per step", Prices{}, "", "each step's own value"},
		{"per second", Prices{PerSecond: 12.5}, "", "12.5 msat per second of any step"},
		{"per score", Prices{PerScore: 1000}, "", "1000 msat per unit of score"},
		{"per score, relative", Prices{PerScore: 1000}, "sha256:ab", "1000 msat per reference-second (scores relative to sha256:ab)"},
		{"per reference CPU-second", Prices{PerReferenceCPUSecond: 7}, "sha256:ab", "7 msat per CPU-second of work on the reference sha256:ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Model{Prices: tt.prices, Reference: tt.reference}
			if got := m.DescribePrices(); got != tt.want {
				t.Errorf("DescribePrices() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	m := fittedModel(t)
	s, err := m.Summary("model.json")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := m.Hash()
	if s.Model != "model.json" || s.Hash != h || s.Steps != len(m.Residuals) || s.Components != len(m.Components) ||
		s.Counters != len(m.Counters) || s.VarianceKept != m.VarianceKept || s.RMSResidual != m.RMSResidual || s.RMSHeldOut != m.RMSHeldOut {
		t.Errorf("summary %+v of model %s", s, h)
	}
}
