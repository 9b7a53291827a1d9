package pricing

import (
	"errors"
	"math"
	"testing"
)

func closeTo(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// ratios returns reference bills of 1 and test bills e^l for each log
// ratio l.
func ratios(logs ...float64) (ref, test []float64) {
	for _, l := range logs {
		ref, test = append(ref, 2), append(test, 2*math.Exp(l))
	}
	return ref, test
}

func TestPaired(t *testing.T) {
	// Log ratios ±0.1, twice: mean 0, sample SD sqrt(4·0.01/3); Student's
	// t for 3 degrees of freedom at 95% two-sided is 3.18245 (tables).
	ref, test := ratios(0.1, -0.1, 0.1, -0.1)
	p, err := Paired(ref, test)
	if err != nil {
		t.Fatal(err)
	}
	sd := math.Sqrt(0.04 / 3)
	h := 3.18245 * sd / 2
	if p.N != 4 || !closeTo(p.Ratio, 1, 1e-12) || !closeTo(p.LogSD, sd, 1e-12) || !closeTo(p.Low, math.Exp(-h), 1e-5) || !closeTo(p.High, math.Exp(h), 1e-5) {
		t.Errorf("Paired = %+v, want ratio 1, log SD %.5f, interval %.5f–%.5f", p, sd, math.Exp(-h), math.Exp(h))
	}
	// The mean is geometric: 2 and ½ average to 1, and swapping the sides
	// inverts the ratio.
	p, _ = Paired([]float64{1, 2}, []float64{2, 1})
	if !closeTo(p.Ratio, 1, 1e-12) {
		t.Errorf("2 and ½: ratio %v, want 1", p.Ratio)
	}
	a, _ := Paired([]float64{1, 1, 1}, []float64{1.1, 1.3, 1.2})
	b, _ := Paired([]float64{1.1, 1.3, 1.2}, []float64{1, 1, 1})
	if !closeTo(a.Ratio*b.Ratio, 1, 1e-12) || !closeTo(a.LogSD, b.LogSD, 1e-12) {
		t.Errorf("swapped sides: %v × %v, want 1", a.Ratio, b.Ratio)
	}
	for _, tt := range []struct {
		name      string
		ref, test []float64
	}{
		{"one pair", []float64{1}, []float64{1}},
		{"unpaired", []float64{1, 1, 1}, []float64{1, 1}},
		{"zero bill", []float64{1, 0}, []float64{1, 1}},
		{"negative bill", []float64{1, 1}, []float64{1, -1}},
		{"infinite bill", []float64{1, math.Inf(1)}, []float64{1, 1}},
		{"NaN bill", []float64{1, 1}, []float64{math.NaN(), 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Paired(tt.ref, tt.test); !errors.Is(err, ErrPairs) {
				t.Errorf("Paired = %v, want ErrPairs", err)
			}
		})
	}
}

func TestNoiseBand(t *testing.T) {
	// Equal sizes and spreads: Welch's degrees of freedom are 2(n−1) = 6,
	// t = 2.44691 (tables), the standard error sqrt(2)·sd/sqrt(n).
	self := PairedRatio{N: 4, Ratio: 1.01, LogSD: 0.02}
	test := PairedRatio{N: 4, Ratio: 1.04, LogSD: 0.02}
	b, err := self.Band(test)
	if err != nil {
		t.Fatal(err)
	}
	h := 2.44691 * math.Sqrt(2) * 0.02 / 2
	if !closeTo(b.Low, 1.01*math.Exp(-h), 1e-5) || !closeTo(b.High, 1.01*math.Exp(h), 1e-5) {
		t.Errorf("band %+v, want %.5f–%.5f", b, 1.01*math.Exp(-h), 1.01*math.Exp(h))
	}
	if !b.Contains(1.01) || !b.Contains(1.04) || b.Contains(1.06) || b.Contains(0.97) {
		t.Errorf("band %+v: wrong membership", b)
	}
	// Unequal spreads: the noisier side dominates the degrees of freedom.
	self = PairedRatio{N: 10, Ratio: 1, LogSD: 0.01}
	test = PairedRatio{N: 10, Ratio: 1, LogSD: 0.05}
	b, _ = self.Band(test)
	vs, vt := 0.0001/10, 0.0025/10
	df := (vs + vt) * (vs + vt) / (vs*vs/9 + vt*vt/9)
	if h := tQuantile(df) * math.Sqrt(vs+vt); !closeTo(b.High, math.Exp(h), 1e-12) || !(df > 9 && df < 10) {
		t.Errorf("band %+v, df %v", b, df)
	}
	// More pairs, a narrower band.
	wide, _ := PairedRatio{N: 3, Ratio: 1, LogSD: 0.03}.Band(PairedRatio{N: 3, Ratio: 1, LogSD: 0.03})
	narrow, _ := PairedRatio{N: 20, Ratio: 1, LogSD: 0.03}.Band(PairedRatio{N: 20, Ratio: 1, LogSD: 0.03})
	if !(narrow.High < wide.High && narrow.Low > wide.Low) {
		t.Errorf("20 pairs %+v not inside 3 pairs %+v", narrow, wide)
	}
	// No spread at all: the band is the self ratio alone.
	b, _ = PairedRatio{N: 2, Ratio: 1.02}.Band(PairedRatio{N: 2, Ratio: 1.02})
	if b.Low != 1.02 || b.High != 1.02 {
		t.Errorf("band without spread %+v", b)
	}
	if _, err := (PairedRatio{N: 1}).Band(PairedRatio{N: 5}); !errors.Is(err, ErrPairs) {
		t.Errorf("one pair: %v", err)
	}
}

func TestGoals(t *testing.T) {
	band := NoiseBand{Low: 0.97, High: 1.06}
	for _, tt := range []struct {
		name  string
		ratio float64
		want  bool
	}{
		{"on 1", 1, true},
		{"within 5% and the band", 1.049, true},
		{"inside the band, beyond 5%", 1.055, false},
		{"within 5%, below the band", 0.965, false},
	} {
		if got := ControlMet(PairedRatio{N: 10, Ratio: tt.ratio}, band); got != tt.want {
			t.Errorf("control %s: %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, tt := range []struct {
		name       string
		price, cpu float64
		want       bool
	}{
		{"within a third of CPU's", 1.099, 1.30, true},
		{"more than a third", 1.11, 1.30, false},
		{"a third, but above 15%", 1.16, 1.60, false},
		{"below, the other way", 0.95, 1.5, true},
		{"no CPU bias to beat", 1.01, 1, false},
	} {
		if got := BiasMet(PairedRatio{Ratio: tt.price}, PairedRatio{Ratio: tt.cpu}); got != tt.want {
			t.Errorf("bias %s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if !InflatedMet(0.9951, false) || !InflatedMet(1.0049, false) || InflatedMet(1.006, false) || InflatedMet(0.667, false) || InflatedMet(0, false) {
		t.Error("InflatedMet: wrong at its bounds")
	}
	// A run whose report a check refused (the host dropped there): paid
	// less is the check working; paid more never is.
	if !InflatedMet(0, true) || !InflatedMet(0.667, true) || !InflatedMet(1.0049, true) || InflatedMet(1.006, true) || InflatedMet(1.5, true) {
		t.Error("InflatedMet of a run with a refused report: wrong at its bounds")
	}
}
