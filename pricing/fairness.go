package pricing

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// The fairness goal (issue 7): a job's bill varies across honestly
// calibrated providers by at most GoalCV, and by at most GoalRatio of what
// CPU-second billing's varies.
const (
	GoalCV    = 0.05
	GoalRatio = 1.0 / 3
)

// ErrGoalNotMet is FairnessSummary.Check's error: the fairness goal does
// not hold.
var ErrGoalNotMet = errors.New("fairness goal not met")

// Job is one held-out job measured on one provider: work the calibration
// suite does not contain (a compile, a compression, a sort, a Python loop).
type Job struct {
	Name string `json:"name"`
	// Seconds is the job's wall-clock time.
	Seconds float64 `json:"seconds"`
	// Usage is the job's counter delta.
	Usage Usage `json:"usage"`
}

// ProviderRun is one provider configuration: its honest calibration and
// the held-out jobs run on it.
type ProviderRun struct {
	Name         string        `json:"name"`
	Calibrations []Calibration `json:"calibrations"`
	Jobs         []Job         `json:"jobs"`
}

// FairnessInput is a fairness experiment: every job run on every provider,
// each provider priced from its own calibration with the same Prices
// (normally PerScore, one price per unit of benchmark work).
type FairnessInput struct {
	Prices Prices `json:"prices"`
	// Reference, if set, is the reference machine's run of the suite
	// (Options.Reference); it overrides the one in Fairness's options.
	Reference *Calibration  `json:"reference,omitempty"`
	Providers []ProviderRun `json:"providers"`
}

// DecodeFairnessInput reads a FairnessInput's JSON form, rejecting unknown
// fields.
func DecodeFairnessInput(b []byte) (FairnessInput, error) {
	var in FairnessInput
	if err := decodeStrict(b, &in); err != nil {
		return FairnessInput{}, fmt.Errorf("%w: %v", ErrCalibration, err)
	}
	return in, nil
}

// FairnessReport compares, job by job, how much the bill varies across
// providers under the model, under CPU-second and under wall-second
// billing. Each variation is a coefficient of variation: the sample
// standard deviation across providers over the mean. CVs do not depend on
// the price level, so CPU- and wall-second bills are given in seconds.
type FairnessReport struct {
	Providers []ProviderFit   `json:"providers"`
	Jobs      []JobFairness   `json:"jobs"`
	Summary   FairnessSummary `json:"summary"`
}

// ProviderFit summarises one provider's model.
type ProviderFit struct {
	Name         string   `json:"name"`
	Hash         string   `json:"model"`
	Components   int      `json:"components"`
	VarianceKept float64  `json:"variance_kept"`
	RMSResidual  float64  `json:"rms_residual"`
	RMSHeldOut   *float64 `json:"rms_held_out,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
}

// JobFairness is one job across the providers, in the report's provider
// order.
type JobFairness struct {
	Name string `json:"name"`
	// Msat is the model's bill on each provider.
	Msat []float64 `json:"msat"`
	// CPUSeconds and WallSeconds are the job's CPU (cpu_ns) and wall time
	// on each provider.
	CPUSeconds  []float64 `json:"cpu_seconds"`
	WallSeconds []float64 `json:"wall_seconds"`
	// Coverage is the lowest Explanation.Coverage over the providers.
	Coverage float64 `json:"coverage"`
	ModelCV  float64 `json:"model_cv"`
	CPUCV    float64 `json:"cpu_cv"`
	WallCV   float64 `json:"wall_cv"`
}

// FairnessSummary aggregates the jobs. Met is whether the goal holds: the
// largest model CV at most GoalCV and the mean model CV at most GoalRatio
// of the mean CPU-second CV.
type FairnessSummary struct {
	MeanModelCV float64 `json:"mean_model_cv"`
	MaxModelCV  float64 `json:"max_model_cv"`
	MeanCPUCV   float64 `json:"mean_cpu_cv"`
	MeanWallCV  float64 `json:"mean_wall_cv"`
	Met         bool    `json:"met"`
}

// Fairness fits a model per provider from its own calibration and bills
// every job on every provider with it. It needs two providers or more and
// the same job names on each.
func Fairness(in FairnessInput, opts Options) (*FairnessReport, error) {
	if len(in.Providers) < 2 {
		return nil, fmt.Errorf("%w: fairness needs two providers or more, got %d", ErrCalibration, len(in.Providers))
	}
	var names []string
	for _, j := range in.Providers[0].Jobs {
		names = append(names, j.Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: provider %s ran no jobs", ErrCalibration, in.Providers[0].Name)
	}
	if in.Reference != nil {
		opts.Reference = in.Reference
	}
	rep := &FairnessReport{}
	for _, n := range names {
		rep.Jobs = append(rep.Jobs, JobFairness{Name: n, Coverage: 1})
	}
	for _, p := range in.Providers {
		model, err := Fit(p.Calibrations, in.Prices, opts)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		hash, err := model.Hash()
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		rep.Providers = append(rep.Providers, ProviderFit{
			Name: p.Name, Hash: hash, Components: len(model.Components), VarianceKept: model.VarianceKept,
			RMSResidual: model.RMSResidual, RMSHeldOut: model.RMSHeldOut, Warnings: model.Warnings,
		})
		if len(p.Jobs) != len(names) {
			return nil, fmt.Errorf("%w: provider %s ran %d jobs, provider %s %d", ErrCalibration, p.Name, len(p.Jobs), in.Providers[0].Name, len(names))
		}
		for _, job := range p.Jobs {
			i := slices.Index(names, job.Name)
			if i < 0 {
				return nil, fmt.Errorf("%w: provider %s ran job %q, which provider %s did not", ErrCalibration, p.Name, job.Name, in.Providers[0].Name)
			}
			if !(job.Seconds > 0) || math.IsInf(job.Seconds, 0) {
				return nil, fmt.Errorf("%w: provider %s job %q: wall seconds %v is not a positive number", ErrCalibration, p.Name, job.Name, job.Seconds)
			}
			e, err := model.Explain(job.Usage)
			if err != nil {
				return nil, fmt.Errorf("provider %s job %q: %w", p.Name, job.Name, err)
			}
			msat, _ := e.Msat.Float64()
			jf := &rep.Jobs[i]
			if len(jf.Msat) == len(rep.Providers) {
				return nil, fmt.Errorf("%w: provider %s ran job %q twice", ErrCalibration, p.Name, job.Name)
			}
			jf.Msat = append(jf.Msat, msat)
			jf.CPUSeconds = append(jf.CPUSeconds, float64(job.Usage["cpu_ns"])/1e9)
			jf.WallSeconds = append(jf.WallSeconds, job.Seconds)
			jf.Coverage = math.Min(jf.Coverage, e.Coverage)
		}
	}
	s := &rep.Summary
	for i := range rep.Jobs {
		j := &rep.Jobs[i]
		j.ModelCV, j.CPUCV, j.WallCV = cv(j.Msat), cv(j.CPUSeconds), cv(j.WallSeconds)
		s.MeanModelCV += j.ModelCV / float64(len(rep.Jobs))
		s.MeanCPUCV += j.CPUCV / float64(len(rep.Jobs))
		s.MeanWallCV += j.WallCV / float64(len(rep.Jobs))
		s.MaxModelCV = math.Max(s.MaxModelCV, j.ModelCV)
	}
	s.Met = s.MaxModelCV <= GoalCV && s.MeanModelCV <= GoalRatio*s.MeanCPUCV
	return rep, nil
}

// cv is the coefficient of variation of xs: sample standard deviation over
// mean; 0 when the mean is 0.
func cv(xs []float64) float64 {
	var mean float64
	for _, x := range xs {
		mean += x / float64(len(xs))
	}
	if mean == 0 || len(xs) < 2 {
		return 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss/float64(len(xs)-1)) / math.Abs(mean)
}

// Check returns nil if the goal is met, else ErrGoalNotMet with the CVs
// that miss it.
func (s FairnessSummary) Check() error {
	if s.Met {
		return nil
	}
	return fmt.Errorf("%w: model CV %s mean, %s max; CPU-second CV %s mean",
		ErrGoalNotMet, Percent(s.MeanModelCV), Percent(s.MaxModelCV), Percent(s.MeanCPUCV))
}

// Percent writes a fraction as a percentage with two decimals: "4.20%".
func Percent(x float64) string { return strconv.FormatFloat(100*x, 'f', 2, 64) + "%" }
