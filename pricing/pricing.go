// Package pricing fits a price model to benchmark calibration runs and bills
// counter deltas with it: Zennet's "User Rates Determination", made robust.
//
// A calibration run gives, per benchmark step k, a row v_k of meter counter
// rates (counter units per second) and the agreed value s_k of a second of
// that step (msat per second). Fit finds non-negative rates r (msat per
// counter unit) with V r ≈ s; Quote bills an interval's counter delta Δv as
// r · Δv, exactly, in msat.
//
// Counters are collinear (cpu_ns, cpu_user_ns and proc_cpu_ns measure
// nearly the same thing) and of wildly different scales (ns against page
// faults), so Fit
//
//  1. scales every counter's column to unit root mean square;
//  2. takes the thin SVD of the scaled matrix and keeps the leading
//     principal components carrying Options.MinVariance of its variance
//     (uncentred: a bill has no intercept, so zero usage costs zero);
//  3. solves, in the scaled counter space, the reduced least-squares
//     problem  min ‖Σ_k W_kᵀ w − U_kᵀ s‖² + λ‖w‖²  subject to w ≥ 0
//     by Lawson–Hanson NNLS, with λ = Options.Ridge × σ_k²;
//  4. unscales: r_j = w_j / scale_j.
//
// The truncation decides what the calibration can tell apart; the ridge and
// the sign constraint only choose within what it cannot: among rate vectors
// that fit the kept components equally, the one that spreads the price most
// evenly over collinear counters and charges nothing negative. See
// docs/pricing.md for the method, its assumptions and what they mean for
// fairness.
package pricing

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/zennet/zennet/meter"
)

var (
	// ErrCalibration means calibration input or prices that cannot be
	// fitted: a NaN, infinite or negative rate, a missing counter, a
	// missing value.
	ErrCalibration = errors.New("bad calibration")
	// ErrNoSignal means the calibration exercises no counter at all, so
	// there is nothing to price by.
	ErrNoSignal = errors.New("calibration carries no signal")
	// ErrModel means a model that is malformed or of another version.
	ErrModel = errors.New("bad price model")
	// ErrUsage means a usage delta that cannot be billed: an unknown
	// counter, a negative or fractional count, a bill past uint64 nanomsat.
	ErrUsage = errors.New("bad usage")
)

// Defaults of Options.
const (
	DefaultMinVariance = 0.999
	DefaultRidge       = 1e-3
)

// NonAdditive are meter counters Fit never prices: they are not sums over
// time (a peak), so a bill linear in them would not add up over intervals.
var NonAdditive = []string{meter.MemoryPeak.Name()}

// DefaultExclude are the counters Fit leaves out unless Options.Exclude
// says otherwise: involuntary context switches are preemptions, which rise
// with contention on the provider's host rather than with the renter's
// work, so pricing them would pay a provider for overcommitting.
var DefaultExclude = []string{meter.CtxSwitchesInvoluntary.Name()}

// WorkCounters are the counters the fairness commands' model prices by
// default (NegotiationExclude): CPU time, split into user and system time,
// and its cross-check, each bounded by the renter's check of every report
// (meter.Check), the split and the cross-check only in sum and tick by
// tick. Negotiation itself prices cpu_ns alone since issue 19 (Tariff):
// a model of these four priced the split, which a provider could move. The canonical suite spans them: every step moves them, in
// different proportions. Voluntary context switches were priced too until
// issue 19: nothing bounds them (a provider may report any number), and
// without them the five real calibration sets fit as well or better (held
// out: 13.6% against 15.6% under a 1-CPU quota, 22.1% against 24.4% with a
// neighbour, 45.1% against 45.5% on ptrace). The others — bytes
// and system calls of I/O, page faults, disk, network, memory — are each
// moved by one or two step types, so their fitted rates carry whatever those
// steps' values leave unexplained, and a job moving them far beyond any step
// was billed many times its worth: on a quiet machine the held-out `tar`
// paid 14× on a provider with a CPU-hungry neighbour, through the bytes it
// read (docs/pricing.md, "Measured fairness"). Their work is still paid: in
// gVisor it is CPU time of the sandbox.
var WorkCounters = []string{
	meter.CPU.Name(), meter.CPUUser.Name(), meter.CPUSystem.Name(), meter.ProcCPU.Name(),
}

// NegotiationExclude returns every meter counter but the WorkCounters:
// the principal component model that Zennet negotiated with until issue
// 19, which `zennet price fairness` and `zennet bench fairness` still fit
// by default.
func NegotiationExclude() []string {
	var out []string
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		if !slices.Contains(WorkCounters, c.Name()) && !slices.Contains(NonAdditive, c.Name()) {
			out = append(out, c.Name())
		}
	}
	return out
}

// WarnResidual is the RMS relative residual (fitted or held out) above
// which Fit warns.
const WarnResidual = 0.05

// maxRate bounds counter rates and values, far above anything real, so
// that squares cannot overflow.
const maxRate = 1e150

// rankTol is the relative singular value below which a direction is taken
// as exactly absent (duplicate counters, repeated steps).
const rankTol = 1e-9

// Options tune Fit. The zero value uses the defaults.
type Options struct {
	// MinVariance is the fraction of the scaled matrix's variance the kept
	// components must carry (default DefaultMinVariance). Ignored when
	// Components is set.
	MinVariance float64
	// Components, when positive, keeps exactly that many components (or
	// the matrix's rank if lower).
	Components int
	// Ridge is λ relative to the smallest kept squared singular value
	// (default DefaultRidge): a kept component's fit shrinks by at most
	// Ridge / (1 + Ridge).
	Ridge float64
	// Exclude names counters not to price, besides NonAdditive. nil means
	// DefaultExclude; an empty, non-nil slice excludes nothing more.
	Exclude []string
	// Reference, with Prices.PerScore, is a calibration run of the same
	// steps on the reference machine: each step's score is divided by the
	// score of the reference step of the same name. The model records its
	// ID.
	Reference *Calibration
}

func (o Options) withDefaults() (Options, error) {
	if o.MinVariance == 0 {
		o.MinVariance = DefaultMinVariance
	}
	if o.Ridge == 0 {
		o.Ridge = DefaultRidge
	}
	if !(o.MinVariance > 0 && o.MinVariance <= 1) {
		return o, fmt.Errorf("%w: minimum variance %v is not in (0, 1]", ErrCalibration, o.MinVariance)
	}
	if !(o.Ridge > 0) || math.IsInf(o.Ridge, 0) {
		return o, fmt.Errorf("%w: ridge %v is not a positive number", ErrCalibration, o.Ridge)
	}
	if o.Components < 0 {
		return o, fmt.Errorf("%w: %d components", ErrCalibration, o.Components)
	}
	return o, nil
}

// Fit fits a model to the steps of the calibration sets, valued by prices.
// Every step must give a finite, non-negative rate for the same counters.
func Fit(cals []Calibration, prices Prices, opts Options) (*Model, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := prices.validate(); err != nil {
		return nil, err
	}
	ids := make([]string, len(cals))
	for i, c := range cals {
		ids[i] = c.ID()
	}
	if opts.Reference != nil {
		if !prices.relative() {
			return nil, fmt.Errorf("%w: a reference calibration only makes sense with a price per score or per reference CPU-second", ErrCalibration)
		}
		rel := make([]Calibration, len(cals))
		for i, c := range cals {
			if rel[i], err = relativeScores(c, opts.Reference, prices.Mode() == "per_reference_cpu_second"); err != nil {
				return nil, err
			}
		}
		cals = rel
	}
	if prices.Mode() == "per_reference_cpu_second" && opts.Reference == nil {
		return nil, fmt.Errorf("%w: a price per reference CPU-second needs the reference calibration", ErrCalibration)
	}
	p, err := assemble(cals, prices, opts.Exclude)
	if err != nil {
		return nil, err
	}
	sol, err := solve(p.v, p.s, opts)
	if err != nil {
		return nil, err
	}
	n, m := p.v.Dims()
	model := &Model{
		Version:        ModelVersion,
		Excluded:       p.excluded,
		Prices:         prices,
		SingularValues: sol.sv,
		VarianceKept:   sol.varKept,
		Ridge:          opts.Ridge,
	}
	model.Calibrations = ids
	if opts.Reference != nil {
		model.Reference = opts.Reference.ID()
	}
	var unexercised []string
	for j, name := range p.names {
		model.Counters = append(model.Counters, CounterRate{Name: name, Unit: p.units[j], Scale: sol.scale[j], Rate: sol.rates[j]})
		if sol.scale[j] == 0 {
			unexercised = append(unexercised, name)
		}
	}
	for i := range sol.k {
		model.Components = append(model.Components, Component{
			SingularValue: sol.sv[i],
			Variance:      sol.variance[i],
			Loadings:      sol.loadings[i],
		})
	}

	// Residuals, and leave-one-out errors when there is something to
	// leave out.
	fitted := make([]float64, n)
	mat.NewVecDense(n, fitted).MulVec(p.v, mat.NewVecDense(m, sol.rates))
	var held []float64
	if n > 1 {
		held = heldOut(p.v, p.s, opts)
	}
	var sumSq, sumHeld float64
	for i := range n {
		rel := (fitted[i] - p.s[i]) / p.s[i]
		r := Residual{Calibration: p.cal[i], Step: p.step[i], Value: p.s[i], Fitted: fitted[i], Relative: rel}
		sumSq += rel * rel
		if held != nil {
			r.HeldOut = &held[i]
			sumHeld += held[i] * held[i]
		}
		model.Residuals = append(model.Residuals, r)
	}
	model.RMSResidual = math.Sqrt(sumSq / float64(n))
	if n > 1 {
		h := math.Sqrt(sumHeld / float64(n))
		model.RMSHeldOut = &h
	}

	warn := func(format string, a ...any) { model.Warnings = append(model.Warnings, fmt.Sprintf(format, a...)) }
	if n == 1 {
		warn("one calibration step: every job is priced as if it were that step; calibrate with steps that load the machine in different mixes")
	} else if sol.k == n {
		warn("as many components as steps (%d): the fit is exact by construction, so its residuals say nothing; the held-out errors do", n)
	}
	if opts.Components > sol.rank {
		warn("%d components asked for, but the calibration has rank %d", opts.Components, sol.rank)
	}
	if len(unexercised) > 0 {
		warn("no step exercised %s: priced at 0, so a job using only %s pays nothing for it", strings.Join(unexercised, ", "), plural(len(unexercised), "that counter", "those counters"))
	}
	if model.RMSResidual > WarnResidual {
		warn("the model misses the agreed step values by %.1f%% RMS: the counters do not explain the values linearly, or the constraint that rates be non-negative binds", 100*model.RMSResidual)
	}
	if model.RMSHeldOut != nil && *model.RMSHeldOut > WarnResidual {
		warn("a step left out of the fit is mispriced by %.1f%% RMS: some steps exercise what no other step does; more steps would make the model surer", 100**model.RMSHeldOut)
	}
	return model, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// problem is the calibration as a matrix.
type problem struct {
	v         *mat.Dense // steps × counters, counter units per second
	s         []float64  // msat per second
	names     []string   // counters
	units     []string
	excluded  []string
	cal, step []string // per row, for residuals
}

// assemble checks the calibration sets and lays them out as a matrix.
func assemble(cals []Calibration, prices Prices, exclude []string) (*problem, error) {
	if len(cals) == 0 {
		return nil, fmt.Errorf("%w: no calibration set", ErrCalibration)
	}
	if exclude == nil {
		exclude = DefaultExclude
	}
	skip := map[string]bool{}
	for _, name := range append(slices.Clone(NonAdditive), exclude...) {
		skip[name] = true
	}
	p := &problem{}
	var cols map[string]int
	seenExcluded := map[string]bool{}
	var rows [][]float64
	for _, c := range cals {
		id := c.ID()
		if len(c.Rows) == 0 {
			return nil, fmt.Errorf("%w: calibration %s has no steps", ErrCalibration, id)
		}
		for ri, r := range c.Rows {
			where := fmt.Sprintf("calibration %s step %q", id, r.Step)
			if r.Step == "" {
				where = fmt.Sprintf("calibration %s step #%d", id, ri+1)
			}
			if cols == nil {
				for name := range r.Rates {
					if skip[name] {
						continue
					}
					if name == "" {
						return nil, fmt.Errorf("%w: %s: a counter has no name", ErrCalibration, where)
					}
					p.names = append(p.names, name)
				}
				if len(p.names) == 0 {
					return nil, fmt.Errorf("%w: %s: no counters", ErrCalibration, where)
				}
				sortCounters(p.names)
				cols = make(map[string]int, len(p.names))
				for j, name := range p.names {
					cols[name] = j
					unit := c.Units[name]
					if mc, ok := meter.CounterByName(name); ok {
						unit = mc.Unit()
					}
					p.units = append(p.units, unit)
				}
			}
			row := make([]float64, len(p.names))
			have := 0
			for name, x := range r.Rates {
				if skip[name] {
					seenExcluded[name] = true
					continue
				}
				j, ok := cols[name]
				if !ok {
					return nil, fmt.Errorf("%w: %s: counter %s is not in the first step", ErrCalibration, where, name)
				}
				switch {
				case math.IsNaN(x) || math.IsInf(x, 0):
					return nil, fmt.Errorf("%w: %s: counter %s: rate %v is not a number", ErrCalibration, where, name, x)
				case x < 0:
					return nil, fmt.Errorf("%w: %s: counter %s: rate %v is negative; counters never go backwards", ErrCalibration, where, name, x)
				case x > maxRate:
					return nil, fmt.Errorf("%w: %s: counter %s: rate %v is implausibly large", ErrCalibration, where, name, x)
				}
				row[j] = x
				have++
			}
			if have != len(p.names) {
				for _, name := range p.names {
					if _, ok := r.Rates[name]; !ok {
						return nil, fmt.Errorf("%w: %s: counter %s missing", ErrCalibration, where, name)
					}
				}
			}
			if math.IsNaN(r.Seconds) || math.IsInf(r.Seconds, 0) || r.Seconds < 0 {
				return nil, fmt.Errorf("%w: %s: seconds %v is not a non-negative number", ErrCalibration, where, r.Seconds)
			}
			s, err := prices.value(r)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrCalibration, where, err)
			}
			if s > maxRate {
				return nil, fmt.Errorf("%w: %s: value %v is implausibly large", ErrCalibration, where, s)
			}
			rows = append(rows, row)
			p.s = append(p.s, s)
			p.cal = append(p.cal, id)
			p.step = append(p.step, cmp.Or(r.Step, fmt.Sprintf("#%d", ri+1)))
		}
	}
	for name := range seenExcluded {
		p.excluded = append(p.excluded, name)
	}
	sortCounters(p.excluded)
	p.v = mat.NewDense(len(rows), len(p.names), nil)
	for i, r := range rows {
		p.v.SetRow(i, r)
	}
	return p, nil
}

// sortCounters orders names as meter orders its counters, others after
// them by name.
func sortCounters(names []string) {
	slices.SortFunc(names, func(a, b string) int {
		ca, oka := meter.CounterByName(a)
		cb, okb := meter.CounterByName(b)
		switch {
		case oka && okb:
			return cmp.Compare(ca, cb)
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a, b)
	})
}
