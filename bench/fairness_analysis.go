package bench

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/pricing"
)

// InflatedScale is how much the inflated provider scales the CPU counters
// it reports (cpu_ns, its user/system split, proc_cpu_ns): in its
// calibration set and in its usage reports.
const InflatedScale = 1.5

// InflatedReportInterval is how often the inflated provider's usage
// reports come during a job, as a lease's do by default
// (proto.DefaultInterval), the last one at its end.
const InflatedReportInterval = 5 * time.Second

// OfferFunc is the renter's check of an offer priced per unit of work at
// price msat per reference CPU-second, from calibration set against the
// reference run ref: the rates it would agree to, or why it refuses the
// offer (terms.RatesAgainst).
type OfferFunc func(set, ref *Set, price float64) (pay.Rates, error)

// FairnessAnalysis says how to price a FairnessRun.
type FairnessAnalysis struct {
	// Price is msat per reference CPU-second of work (the negotiated
	// pricing.Prices.PerReferenceCPUSecond); 0 means 100.
	Price float64
	// Options fit the principal component model (pricing.Fit) of
	// 'zennet price'; Reference is set to the reference arm's.
	Options pricing.Options
	// Offer is the renter's check of an offer, which the inflated
	// provider must pass.
	Offer OfferFunc
	// Flat are the flat rates a provider offers when a renter would
	// refuse its calibration (terms.OfferRates; the provider's default
	// rates): with Offer, each job is also billed as negotiation does,
	// at the tariff where an arm's set passes Offer and at Flat where it
	// does not (JobRatios.Negotiated).
	Flat pay.Rates
}

// ArmFit is how an arm's calibration prices.
type ArmFit struct {
	Name string `json:"name"`
	// TariffMsatPerCPUSecond is the tariff's rate (pricing.FitTariff) and
	// TariffResidual, TariffHeldOut its RMS errors on its own steps.
	TariffMsatPerCPUSecond float64 `json:"tariff_msat_per_cpu_second"`
	TariffResidual         float64 `json:"tariff_residual"`
	TariffHeldOut          float64 `json:"tariff_held_out"`
	// Refused is why a renter refuses an offer priced by this set, if it
	// does (terms: untrusted, unanchored…); the tariff's figures are then
	// what it would bill, not what negotiation does (flat rates).
	Refused string `json:"refused,omitempty"`
	// ModelResidual is the principal component model's RMS error on the
	// steps; ModelError why it could not be fitted.
	ModelResidual float64 `json:"model_residual"`
	ModelError    string  `json:"model_error,omitempty"`
	// ReplicateSpread is the median over the steps, and ReplicateSpreadMax
	// the largest, of the spread of the replicates' work per CPU-second
	// ((max − min) / median).
	ReplicateSpread    float64 `json:"replicate_spread"`
	ReplicateSpreadMax float64 `json:"replicate_spread_max"`
}

// JobRatios is one job of one comparison: the paired ratios test/ref of
// each way of billing it.
type JobRatios struct {
	Job string `json:"job"`
	// CPU is CPU-seconds (cpu_ns); Tariff the negotiated tariff, each
	// arm's rate from its own calibration; Model the principal component
	// model of 'zennet price'; Wall wall-seconds.
	CPU    pricing.PairedRatio `json:"cpu"`
	Tariff pricing.PairedRatio `json:"tariff"`
	Model  pricing.PairedRatio `json:"model"`
	Wall   pricing.PairedRatio `json:"wall"`
	// Negotiated is what negotiation bills (FairnessAnalysis.Flat): each
	// arm at its tariff if a renter takes an offer priced by its set, at
	// the flat rates if it refuses it. Flat names the arms billed at flat
	// rates (none: Negotiated is the tariff's ratio).
	Negotiated pricing.PairedRatio `json:"negotiated"`
	Flat       []string            `json:"flat,omitempty"`
	// Band is the tariff's noise band (pricing.PairedRatio.Band) against
	// the noise comparison's same job; nil for the noise comparison.
	Band *pricing.NoiseBand `json:"band,omitempty"`
	// RefCPUSeconds is the median CPU time of the job on the reference.
	RefCPUSeconds float64 `json:"ref_cpu_seconds"`
}

// ComparisonResult is one comparison's ratios.
type ComparisonResult struct {
	Name string      `json:"name"`
	Arm  string      `json:"arm"`
	Kind string      `json:"kind"`
	Jobs []JobRatios `json:"jobs"`
}

// InflatedJob is the inflated provider on one job: what the renter pays,
// each pair's test run reported with its CPU counters × InflatedScale
// and checked as a renter checks, over what the honest reports bill.
type InflatedJob struct {
	Job string `json:"job"`
	// Ratios are each run's payment ratio; Min and Max bound them.
	Ratios []float64 `json:"ratios"`
	// Refused says, for each run, whether a check refused one of its
	// reports.
	Refused []bool  `json:"refused"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	// Rejected counts the runs in which meter.Check rejected a report
	// (the renter drops the host and pays only what it accepted before),
	// FirstRejection says why the first was.
	Rejected       int    `json:"rejected"`
	FirstRejection string `json:"first_rejection,omitempty"`
}

// InflatedResult is the inflated provider.
type InflatedResult struct {
	// Arm is the arm whose measurements it reports inflated.
	Arm string `json:"arm"`
	// Scale is InflatedScale; RateRatio the inflated set's agreed rate
	// over the honest one's (1/Scale when the refit neutralises it).
	Scale     float64 `json:"scale"`
	RateRatio float64 `json:"rate_ratio"`
	// Refused is why the renter refuses its offer, if it does.
	Refused string        `json:"refused,omitempty"`
	Jobs    []InflatedJob `json:"jobs,omitempty"`
}

// GoalResult is one goal on one job.
type GoalResult struct {
	Goal       string  `json:"goal"`
	Comparison string  `json:"comparison"`
	Job        string  `json:"job"`
	Value      float64 `json:"value"`
	Met        bool    `json:"met"`
	Detail     string  `json:"detail"`
}

// FairnessReport is a priced FairnessRun.
type FairnessReport struct {
	Price       float64            `json:"price"`
	Arms        []ArmFit           `json:"arms"`
	Comparisons []ComparisonResult `json:"comparisons"`
	Inflated    *InflatedResult    `json:"inflated,omitempty"`
	Goals       []GoalResult       `json:"goals"`
	Met         bool               `json:"met"`
}

// ErrGoalNotMet is FairnessReport.Check's error.
var ErrGoalNotMet = errors.New("fairness goal not met")

// Check returns nil when every goal is met, else ErrGoalNotMet naming
// those that are not.
func (r *FairnessReport) Check() error {
	var missed []string
	for _, g := range r.Goals {
		if !g.Met {
			missed = append(missed, g.Comparison+"/"+g.Job+" "+g.Goal)
		}
	}
	if len(missed) == 0 && len(r.Goals) > 0 {
		return nil
	}
	if len(r.Goals) == 0 {
		return fmt.Errorf("%w: no goals were measured", ErrGoalNotMet)
	}
	return fmt.Errorf("%w: %d of %d: %v", ErrGoalNotMet, len(missed), len(r.Goals), missed)
}

// Goals of a report.
const (
	GoalControl  = "tariff ratio within ±5% of 1 and inside the noise band"
	GoalTariff   = "tariff bias ≤ ⅓ of CPU-seconds' and ≤ 15%"
	GoalModel    = "model bias ≤ ⅓ of CPU-seconds' and ≤ 15%"
	GoalInflated = "inflated counters paid 1.000 ± 0.5% where the renter's checks passed, never more where one refused a report"
)

// armPrice is an arm's tariff and model, and what negotiation bills it
// by.
type armPrice struct {
	name  string
	rate  float64 // msat per cpu_ns
	model *pricing.Model
	// flat: negotiation refuses the arm's set, and bills at flat.
	flat    bool
	flatAt  pay.Rates
	offered bool // the negotiated bill is known
}

// AnalyseFairness prices run: every arm's tariff and model fitted from its
// own calibration relative to the reference arm's, every pair's bills and
// their ratios, the noise bands and the goals: no-bias controls within
// pricing.ControlTolerance of 1 and inside the noise band (the tariff,
// which negotiation bills by); bias comparisons with the tariff's and the
// model's bias each at most pricing.BiasShare of CPU-seconds' and at most
// pricing.MaxBias; the noise comparison's test arm, its CPU counters
// reported × InflatedScale, paid within pricing.InflatedTolerance after
// a.Offer and meter.Check.
func AnalyseFairness(run *FairnessRun, a FairnessAnalysis) (*FairnessReport, error) {
	if len(run.Arms) < 2 || run.Arms[0].Set == nil {
		return nil, errors.New("the run has no reference calibration")
	}
	if a.Price == 0 {
		a.Price = 100
	}
	prices := pricing.Prices{PerReferenceCPUSecond: a.Price}
	ref := run.Arms[0].Set
	refCal, err := CalibrationOf(ref)
	if err != nil {
		return nil, fmt.Errorf("arm %s: %w", run.Arms[0].Arm.Name, err)
	}
	a.Options.Reference = &refCal
	rep := &FairnessReport{Price: a.Price}
	price := map[string]armPrice{}
	for _, m := range run.Arms {
		cal, err := CalibrationOf(m.Set)
		if err != nil {
			return nil, fmt.Errorf("arm %s: %w", m.Arm.Name, err)
		}
		t, err := pricing.FitTariff(cal, prices, &refCal)
		if err != nil {
			return nil, fmt.Errorf("arm %s: %w", m.Arm.Name, err)
		}
		fit := ArmFit{Name: m.Arm.Name, TariffMsatPerCPUSecond: 1e9 * t.Rate, TariffResidual: t.RMSResidual, TariffHeldOut: t.RMSHeldOut}
		fit.ReplicateSpread, fit.ReplicateSpreadMax = replicateSpread(m.Replicates)
		// The negotiated bill is known with the renter's check and, for an
		// arm it refuses, flat rates that charge for CPU time.
		var cpuSecond meter.Vector
		cpuSecond[meter.CPU] = 1e9
		p := armPrice{name: m.Arm.Name, rate: t.Rate, flatAt: a.Flat, offered: a.Offer != nil}
		if a.Offer != nil {
			if _, err := a.Offer(m.Set, ref, a.Price); err != nil {
				fit.Refused, p.flat = err.Error(), true
				p.offered = a.Flat.Cost(cpuSecond).Sign() > 0
			}
		}
		if model, err := pricing.Fit([]pricing.Calibration{cal}, prices, a.Options); err != nil {
			fit.ModelError = err.Error()
		} else {
			p.model, fit.ModelResidual = model, model.RMSResidual
		}
		price[m.Arm.Name] = p
		rep.Arms = append(rep.Arms, fit)
	}
	refName := run.Arms[0].Arm.Name
	var noise map[string]JobRatios
	for _, cm := range run.Comparisons {
		c := cm.Comparison
		cr := ComparisonResult{Name: c.Name, Arm: c.Arm, Kind: c.Kind}
		for _, job := range c.Jobs {
			jr, err := jobRatios(job, cm.Pairs[job], price[refName], price[c.Arm])
			if err != nil {
				return nil, fmt.Errorf("comparison %s: %w", c.Name, err)
			}
			cr.Jobs = append(cr.Jobs, jr)
		}
		if c.Kind == FairNoise && noise == nil {
			noise = map[string]JobRatios{}
			for _, jr := range cr.Jobs {
				noise[jr.Job] = jr
			}
			inf, goals, err := inflated(cm, run, a)
			if err != nil {
				return nil, err
			}
			rep.Inflated = inf
			rep.Goals = append(rep.Goals, goals...)
		}
		rep.Comparisons = append(rep.Comparisons, cr)
	}
	for i := range rep.Comparisons {
		cr := &rep.Comparisons[i]
		if cr.Kind == FairNoise {
			continue
		}
		for k := range cr.Jobs {
			jr := &cr.Jobs[k]
			self, ok := noise[jr.Job]
			if !ok {
				return nil, fmt.Errorf("comparison %s: job %s has no noise floor", cr.Name, jr.Job)
			}
			band, err := self.Tariff.Band(jr.Tariff)
			if err != nil {
				return nil, fmt.Errorf("comparison %s job %s: %w", cr.Name, jr.Job, err)
			}
			jr.Band = &band
			switch cr.Kind {
			case FairControl:
				rep.Goals = append(rep.Goals, GoalResult{Goal: GoalControl, Comparison: cr.Name, Job: jr.Job, Value: jr.Tariff.Ratio,
					Met:    pricing.ControlMet(jr.Tariff, band),
					Detail: fmt.Sprintf("tariff %.3f (CPU-s %.3f), noise band %.3f–%.3f", jr.Tariff.Ratio, jr.CPU.Ratio, band.Low, band.High) + negotiatedNote(*jr)})
			case FairBias:
				for _, g := range []struct {
					goal string
					r    pricing.PairedRatio
				}{{GoalTariff, jr.Tariff}, {GoalModel, jr.Model}} {
					gr := GoalResult{Goal: g.goal, Comparison: cr.Name, Job: jr.Job, Value: pricing.Bias(g.r.Ratio),
						Met:    g.r.N > 0 && pricing.BiasMet(g.r, jr.CPU),
						Detail: fmt.Sprintf("bias %s against CPU-seconds' %s (ratio %.3f, CPU-s %.3f)", pricing.Percent(pricing.Bias(g.r.Ratio)), pricing.Percent(pricing.Bias(jr.CPU.Ratio)), g.r.Ratio, jr.CPU.Ratio) + negotiatedNote(*jr)}
					if g.r.N == 0 {
						gr.Value, gr.Detail = -1, "no model: an arm's calibration did not fit (see the arms)"
					}
					rep.Goals = append(rep.Goals, gr)
				}
			}
		}
	}
	rep.Met = rep.Check() == nil
	return rep, nil
}

// negotiatedNote says what negotiation bills a job, where it is not the
// tariff: an arm whose set a renter refuses is billed at flat rates.
func negotiatedNote(jr JobRatios) string {
	if jr.Negotiated.N == 0 || len(jr.Flat) == 0 {
		return ""
	}
	return fmt.Sprintf("; negotiation refuses the set of %s, whose bill is then its flat rates': ratio %.3f (bias %s)",
		strings.Join(jr.Flat, ", "), jr.Negotiated.Ratio, pricing.Percent(pricing.Bias(jr.Negotiated.Ratio)))
}

// jobRatios bills a job's pairs on the reference's and the test arm's
// prices.
func jobRatios(job string, pairs []FairPair, ref, test armPrice) (JobRatios, error) {
	jr := JobRatios{Job: job}
	for _, a := range []armPrice{ref, test} {
		if a.flat && !slices.Contains(jr.Flat, a.name) {
			jr.Flat = append(jr.Flat, a.name)
		}
	}
	var cr, ct, tr, tt, nr, nt, mr, mt, wr, wt, refCPU []float64
	for _, p := range pairs {
		rc, tc := float64(p.Ref.Usage["cpu_ns"]), float64(p.Test.Usage["cpu_ns"])
		cr, ct = append(cr, rc), append(ct, tc)
		tr, tt = append(tr, ref.rate*rc), append(tt, test.rate*tc)
		nr, nt = append(nr, ref.negotiated(p.Ref.Usage)), append(nt, test.negotiated(p.Test.Usage))
		wr, wt = append(wr, p.Ref.Seconds), append(wt, p.Test.Seconds)
		refCPU = append(refCPU, rc/1e9)
		if ref.model != nil && test.model != nil {
			a, err := quote(ref.model, p.Ref.Usage)
			if err != nil {
				return jr, err
			}
			b, err := quote(test.model, p.Test.Usage)
			if err != nil {
				return jr, err
			}
			mr, mt = append(mr, a), append(mt, b)
		}
	}
	var err error
	if jr.CPU, err = pricing.Paired(cr, ct); err != nil {
		return jr, fmt.Errorf("job %s: CPU-seconds: %w", job, err)
	}
	if jr.Tariff, err = pricing.Paired(tr, tt); err != nil {
		return jr, fmt.Errorf("job %s: tariff: %w", job, err)
	}
	if jr.Wall, err = pricing.Paired(wr, wt); err != nil {
		return jr, fmt.Errorf("job %s: wall-seconds: %w", job, err)
	}
	if ref.offered && test.offered {
		if jr.Negotiated, err = pricing.Paired(nr, nt); err != nil {
			return jr, fmt.Errorf("job %s: negotiated: %w", job, err)
		}
	}
	if len(mr) > 0 {
		if jr.Model, err = pricing.Paired(mr, mt); err != nil {
			return jr, fmt.Errorf("job %s: model: %w", job, err)
		}
	}
	jr.RefCPUSeconds = median(refCPU)
	return jr, nil
}

// negotiated is the bill of usage as negotiation prices the arm: its
// tariff, or its flat rates when a renter refuses its set.
func (a armPrice) negotiated(usage map[string]uint64) float64 {
	if !a.flat {
		return a.rate * float64(usage["cpu_ns"])
	}
	var v meter.Vector
	for name, d := range usage {
		if c, ok := meter.CounterByName(name); ok {
			v[c] = d
		}
	}
	f, _ := a.flatAt.Cost(v).Float64()
	return f
}

func quote(m *pricing.Model, usage map[string]uint64) (float64, error) {
	q, err := m.Quote(pricing.Usage(usage))
	if err != nil {
		return 0, err
	}
	f, _ := q.Float64()
	return f, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// replicateSpread is the median and the largest, over the steps, of
// (max − min) / median of the replicates' work per CPU-second.
func replicateSpread(reps []*Set) (med, worst float64) {
	if len(reps) < 2 {
		return 0, 0
	}
	var spreads []float64
	for k := range reps[0].Steps {
		var w []float64
		for _, s := range reps {
			if k < len(s.Steps) {
				w = append(w, workPerCPU(s.Steps[k]))
			}
		}
		m := median(w)
		if m > 0 {
			lo, hi := w[0], w[0]
			for _, x := range w {
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
			spreads = append(spreads, (hi-lo)/m)
			worst = math.Max(worst, (hi-lo)/m)
		}
	}
	return median(spreads), worst
}

// cpuCounters are the counters the inflated provider scales.
var cpuCounters = []meter.Counter{meter.CPU, meter.CPUUser, meter.CPUSystem, meter.ProcCPU}

// InflateSet returns set with its CPU counters' deltas and rates × scale.
func InflateSet(set *Set, scale float64) *Set {
	out := *set
	out.Signer, out.Signature = nil, nil
	out.Steps = make([]Step, len(set.Steps))
	for k, st := range set.Steps {
		st.Delta, st.Rates = maps.Clone(st.Delta), maps.Clone(st.Rates)
		for _, c := range cpuCounters {
			st.Delta[c.Name()] = uint64(math.Round(float64(st.Delta[c.Name()]) * scale))
			st.Rates[c.Name()] *= scale
		}
		out.Steps[k] = st
	}
	return &out
}

// inflated prices the noise comparison's test runs as the inflated
// provider's: the renter checks its inflated set (a.Offer) against the
// reference and each run's reports (meter.Check, the lease's quota the
// arm's), and pays the last report it accepted at the agreed rates; the
// honest bill is the honest set's agreed rates on the run's counters.
func inflated(cm ComparisonMeasurement, run *FairnessRun, a FairnessAnalysis) (*InflatedResult, []GoalResult, error) {
	c := cm.Comparison
	inf := &InflatedResult{Arm: c.Arm, Scale: InflatedScale}
	var arm *ArmMeasurement
	for i := range run.Arms {
		if run.Arms[i].Arm.Name == c.Arm {
			arm = &run.Arms[i]
		}
	}
	if arm == nil {
		return nil, nil, fmt.Errorf("comparison %s: no arm %s", c.Name, c.Arm)
	}
	notMet := func(why string) (*InflatedResult, []GoalResult, error) {
		inf.Refused = why
		var goals []GoalResult
		for _, j := range c.Jobs {
			goals = append(goals, GoalResult{Goal: GoalInflated, Comparison: "inflated", Job: j, Met: false, Detail: why})
		}
		return inf, goals, nil
	}
	if a.Offer == nil {
		return notMet("no offer check to run")
	}
	ref := run.Arms[0].Set
	honest, err := a.Offer(arm.Set, ref, a.Price)
	if err != nil {
		return notMet("the honest set is refused: " + err.Error())
	}
	rates, err := a.Offer(InflateSet(arm.Set, InflatedScale), ref, a.Price)
	if err != nil {
		return notMet("the inflated set is refused: " + err.Error())
	}
	hr, _ := honest.Rate(meter.CPU).Float64()
	ir, _ := rates.Rate(meter.CPU).Float64()
	if hr > 0 {
		inf.RateRatio = ir / hr
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	var goals []GoalResult
	for _, job := range c.Jobs {
		ij := InflatedJob{Job: job, Min: math.Inf(1), Max: math.Inf(-1)}
		for _, p := range cm.Pairs[job] {
			var d meter.Vector
			for name, v := range p.Test.Usage {
				if c, ok := meter.CounterByName(name); ok {
					d[c] = v
				}
			}
			want := honest.Cost(d)
			paid, why, err := PayInflated(p.Test, rates, arm.Arm.CPUs, InflatedScale, signer)
			if err != nil {
				return nil, nil, fmt.Errorf("inflated %s: %w", job, err)
			}
			ij.Refused = append(ij.Refused, why != "")
			if why != "" {
				ij.Rejected++
				if ij.FirstRejection == "" {
					ij.FirstRejection = why
				}
			}
			r := 0.0
			if want.Sign() > 0 {
				r, _ = new(big.Rat).Quo(paid, want).Float64()
			}
			ij.Ratios = append(ij.Ratios, r)
			ij.Min, ij.Max = math.Min(ij.Min, r), math.Max(ij.Max, r)
		}
		met := len(ij.Ratios) > 0
		for i, r := range ij.Ratios {
			met = met && pricing.InflatedMet(r, ij.Refused[i])
		}
		detail := fmt.Sprintf("paid %.4f–%.4f of the honest bill, rate ×%.4f; %d of %d runs had a report rejected", ij.Min, ij.Max, inf.RateRatio, ij.Rejected, len(ij.Ratios))
		if ij.FirstRejection != "" {
			detail += " (" + ij.FirstRejection + ")"
		}
		goals = append(goals, GoalResult{Goal: GoalInflated, Comparison: "inflated", Job: job, Value: ij.Max, Met: met, Detail: detail})
		inf.Jobs = append(inf.Jobs, ij)
	}
	return inf, goals, nil
}

// PayInflated is what a renter pays for run s of a job reported by a
// provider whose CPU counters are scaled by scale: a report every
// InflatedReportInterval of the run's trace and one at its end, each
// signed and checked by meter.Check against a lease of cpus cores that
// began with the run, as the renter's usage book checks them. The renter
// pays the last report it accepted at rates; at the first it rejects it
// drops the host, and why says so.
func PayInflated(s JobSample, rates pay.Rates, cpus, scale float64, signer ssh.Signer) (paid *big.Rat, why string, err error) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	terms := meter.Terms{Lease: "fairness-inflated", Key: signer.PublicKey(), Start: start, CPUs: cpus}
	var due []TracePoint
	next := InflatedReportInterval.Seconds()
	for _, tp := range s.Trace {
		if tp.At >= next {
			due = append(due, tp)
			next += InflatedReportInterval.Seconds()
		}
	}
	var last meter.Vector
	for name, v := range s.Usage {
		if c, ok := meter.CounterByName(name); ok {
			last[c] = v
		}
	}
	if n := len(due); n == 0 || due[n-1].At < s.Seconds {
		due = append(due, TracePoint{At: s.Seconds, Counters: last})
	}
	paid = new(big.Rat)
	var prev *meter.Report
	for i, tp := range due {
		v := tp.Counters
		for _, c := range cpuCounters {
			v[c] = uint64(math.Round(float64(v[c]) * scale))
		}
		rep := meter.Report{Lease: terms.Lease, Seq: uint64(i + 1), Start: start,
			Time: start.Add(time.Duration(tp.At * float64(time.Second))), Counters: v}
		if err := rep.Sign(signer); err != nil {
			return nil, "", err
		}
		if err := meter.Check(terms, prev, rep); err != nil {
			return paid, err.Error(), nil
		}
		paid = rates.Cost(rep.Counters)
		prev = &rep
	}
	return paid, "", nil
}
