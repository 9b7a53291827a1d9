package pricing

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// The paired fairness measurement (issue 19, 'make bench-pricing'): a
// reference sandbox and a test sandbox run the same job one after the
// other, seconds apart, again and again, and each pair gives the ratio of
// the test's bill to the reference's. Whatever load the machine carries
// at that moment both see, so the ratios are far steadier than bills
// measured minutes apart. The reference against another sandbox of its
// own configuration gives the noise floor: the ratios two identical
// sandboxes give.

// Goals of the paired measurement.
const (
	// ControlTolerance is how far from 1 a no-bias control's bill ratio
	// may be: a CPU quota or a neighbour changes how fast work is done,
	// not how much it costs.
	ControlTolerance = 0.05
	// MaxBias is the largest bias (|ratio − 1|) allowed of a price where
	// CPU-seconds do unequal work (ptrace's system calls), and BiasShare
	// the largest share of CPU-seconds' own bias it may keep.
	MaxBias   = 0.15
	BiasShare = 1.0 / 3
	// InflatedTolerance is how far from 1 the renter's payment to a
	// provider whose CPU counters are scaled may be, after the renter's
	// checks, relative to what the honest counters bill.
	InflatedTolerance = 0.005
	// Confidence is the confidence level of intervals and noise bands.
	Confidence = 0.95
)

// ErrPairs is wrapped by Paired's errors.
var ErrPairs = errors.New("paired ratios")

// PairedRatio summarises the ratios test/ref of bills measured in pairs.
// Ratios are averaged as logarithms: a ratio of 2 and one of ½ average to
// 1, and the mean of the inverse ratios is the inverse of the mean.
type PairedRatio struct {
	// N is the number of pairs.
	N int `json:"n"`
	// Ratio is the geometric mean of the pairs' ratios.
	Ratio float64 `json:"ratio"`
	// LogSD is the sample standard deviation of the log ratios: 0.02 is a
	// pair-to-pair spread of about 2%.
	LogSD float64 `json:"log_sd"`
	// Low and High bound the Confidence interval of Ratio (Student's t on
	// the log ratios).
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Paired summarises the ratios test[i]/ref[i]. It needs two pairs or
// more, and every bill positive and finite.
func Paired(ref, test []float64) (PairedRatio, error) {
	if len(ref) != len(test) {
		return PairedRatio{}, fmt.Errorf("%w: %d reference bills, %d test bills", ErrPairs, len(ref), len(test))
	}
	if len(ref) < 2 {
		return PairedRatio{}, fmt.Errorf("%w: %d pairs, need two or more", ErrPairs, len(ref))
	}
	logs := make([]float64, len(ref))
	for i := range ref {
		if !(ref[i] > 0) || !(test[i] > 0) || math.IsInf(ref[i], 0) || math.IsInf(test[i], 0) {
			return PairedRatio{}, fmt.Errorf("%w: pair %d: bills %v and %v are not positive numbers", ErrPairs, i, ref[i], test[i])
		}
		logs[i] = math.Log(test[i] / ref[i])
	}
	mean, sd := stat.MeanStdDev(logs, nil)
	n := float64(len(logs))
	h := tQuantile(n-1) * sd / math.Sqrt(n)
	return PairedRatio{N: len(logs), Ratio: math.Exp(mean), LogSD: sd, Low: math.Exp(mean - h), High: math.Exp(mean + h)}, nil
}

// tQuantile is the two-sided Confidence quantile of Student's t with df
// degrees of freedom.
func tQuantile(df float64) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(1 - (1-Confidence)/2)
}

// NoiseBand is the range of mean ratios that a comparison indistinguishable
// from the noise floor gives: the reference against itself.
type NoiseBand struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Contains reports whether ratio r is inside the band.
func (b NoiseBand) Contains(r float64) bool { return r >= b.Low && r <= b.High }

// Band is the noise band of test against the noise floor self (the
// reference against a sandbox of its own configuration, the same job):
// the self comparison's mean ratio ± the half-width of Welch's test of the
// difference between the two means of log ratios at Confidence. A test
// comparison whose mean ratio is inside differs from the reference no
// more than an identical sandbox does, as far as n pairs can tell; the
// band widens with either comparison's spread and narrows with more
// pairs. Both need two pairs or more.
func (self PairedRatio) Band(test PairedRatio) (NoiseBand, error) {
	if self.N < 2 || test.N < 2 {
		return NoiseBand{}, fmt.Errorf("%w: a noise band needs two pairs or more on each side, got %d and %d", ErrPairs, self.N, test.N)
	}
	vs, vt := self.LogSD*self.LogSD/float64(self.N), test.LogSD*test.LogSD/float64(test.N)
	se := math.Sqrt(vs + vt)
	h := 0.0
	if se > 0 {
		// Welch–Satterthwaite degrees of freedom.
		df := (vs + vt) * (vs + vt) / (vs*vs/float64(self.N-1) + vt*vt/float64(test.N-1))
		h = tQuantile(df) * se
	}
	m := math.Log(self.Ratio)
	return NoiseBand{Low: math.Exp(m - h), High: math.Exp(m + h)}, nil
}

// Bias is how far ratio r is from 1: |r − 1|.
func Bias(r float64) float64 { return math.Abs(r - 1) }

// ControlMet is the goal of a no-bias control: its mean ratio within
// ControlTolerance of 1 and inside its noise band.
func ControlMet(test PairedRatio, band NoiseBand) bool {
	return Bias(test.Ratio) <= ControlTolerance && band.Contains(test.Ratio)
}

// BiasMet is the goal of a price on a configuration whose CPU-seconds do
// unequal work: its bias at most MaxBias and at most BiasShare of
// CPU-seconds' bias on the same pairs.
func BiasMet(price, cpu PairedRatio) bool {
	b := Bias(price.Ratio)
	return b <= MaxBias && b <= BiasShare*Bias(cpu.Ratio)
}

// InflatedMet is the goal for a provider whose counters are scaled: after
// the renter's checks it pays, for a run, within InflatedTolerance of what
// the honest counters bill; when a check refused one of the run's reports
// (rejected: the renter drops the host there and pays nothing more), never
// more than that.
func InflatedMet(paid float64, rejected bool) bool {
	if rejected {
		return paid <= 1+InflatedTolerance
	}
	return Bias(paid) <= InflatedTolerance
}
