package pricing

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/zennet/zennet/meter"
)

// heldOutErrors fits one synthetic calibration per seed and returns the
// relative errors of the bills of jobs held out from it.
func heldOutErrors(t *testing.T, seeds, steps, jobs int, sd float64) (errs []float64, models []*Model) {
	t.Helper()
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(steps)))
		m, err := Fit([]Calibration{synthCalibration(rng, steps, sd)}, Prices{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		models = append(models, m)
		for range jobs {
			u, v := synthJob(rng, sd)
			q, err := m.Quote(u)
			if err != nil {
				t.Fatal(err)
			}
			f, _ := q.Float64()
			errs = append(errs, math.Abs(f-v)/v)
		}
	}
	slices.Sort(errs)
	return errs, models
}

func quantile(sorted []float64, q float64) float64 { return sorted[int(q*float64(len(sorted)-1))] }

// TestFitHeldOut is the ground-truth test: six hidden uncorrelated
// resources, eighteen counters a known linear mix of them with independent
// noise on every counter of every step and job, and jobs unlike any step.
func TestFitHeldOut(t *testing.T) {
	tests := []struct {
		name      string
		steps     int
		sd        float64
		maxErr    float64 // every job
		p95Err    float64
		minVarKep float64
	}{
		{"exact counters, 12 steps", 12, 0, 0.005, 0.002, 0.999999},
		{"0.5% noise, 12 steps", 12, 0.005, 0.02, 0.01, 0.9999},
		{"0.5% noise, 24 steps", 24, 0.005, 0.02, 0.01, 0.9999},
		{"1% noise, 12 steps", 12, 0.01, 0.04, 0.02, 0.9999},
		{"1% noise, 24 steps", 24, 0.01, 0.04, 0.02, 0.9999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, models := heldOutErrors(t, 20, tt.steps, 100, tt.sd)
			max, p95 := errs[len(errs)-1], quantile(errs, 0.95)
			minVar := 1.0
			for _, m := range models {
				minVar = math.Min(minVar, m.VarianceKept)
				if len(m.Components) != numRes {
					t.Errorf("kept %d components, want the %d hidden resources (singular values %.3g)", len(m.Components), numRes, m.SingularValues)
				}
				for _, c := range m.Counters {
					if c.Rate < 0 {
						t.Errorf("negative rate %v for %s", c.Rate, c.Name)
					}
				}
			}
			t.Logf("%d jobs: median error %.2f%%, 95%% %.2f%%, max %.2f%%; variance kept ≥ %.5f%%",
				len(errs), 100*quantile(errs, 0.5), 100*p95, 100*max, 100*minVar)
			if max > tt.maxErr || p95 > tt.p95Err {
				t.Errorf("held-out error: 95%% %.4f (want ≤ %v), max %.4f (want ≤ %v)", p95, tt.p95Err, max, tt.maxErr)
			}
			if minVar < tt.minVarKep {
				t.Errorf("variance kept %v, want ≥ %v", minVar, tt.minVarKep)
			}
		})
	}
}

// pinvRates is Zennet's original r = V⁺ s (scaled columns optional,
// truncated to rank k when k > 0), for the ablation.
func pinvRates(p *problem, scaled bool, k int) []float64 {
	n, m := p.v.Dims()
	a := mat.DenseCopyOf(p.v)
	sc := make([]float64, m)
	for j := range m {
		sc[j] = 1
		if norm := mat.Norm(a.ColView(j), 2); scaled && norm > 0 {
			sc[j] = norm / math.Sqrt(float64(n))
		}
		for i := range n {
			a.Set(i, j, a.At(i, j)/sc[j])
		}
	}
	var svd mat.SVD
	svd.Factorize(a, mat.SVDThin)
	if k == 0 {
		k = svd.Rank(1e-15)
	}
	var x mat.Dense
	svd.SolveTo(&x, mat.NewDense(n, 1, p.s), k)
	r := make([]float64, m)
	for j := range m {
		r[j] = x.At(j, 0) / sc[j]
	}
	return r
}

// TestAblation shows what each step of the method buys on noisy counters:
// the plain pseudoinverse, with scaling, with truncation, and the full fit
// (ridge and non-negative rates on top).
func TestAblation(t *testing.T) {
	const sd, steps = 0.01, 12
	methods := []struct {
		name  string
		rates func(p *problem, m *Model) []float64
	}{
		{"pseudoinverse", func(p *problem, _ *Model) []float64 { return pinvRates(p, false, 0) }},
		{"scaled pseudoinverse", func(p *problem, _ *Model) []float64 { return pinvRates(p, true, 0) }},
		{"scaled, truncated", func(p *problem, m *Model) []float64 { return pinvRates(p, true, len(m.Components)) }},
		{"model", func(_ *problem, m *Model) []float64 {
			var r []float64
			for _, c := range m.Counters {
				r = append(r, c.Rate)
			}
			return r
		}},
	}
	p95 := map[string]float64{}
	for _, meth := range methods {
		var errs []float64
		negative := 0
		for seed := range 20 {
			rng := rand.New(rand.NewPCG(uint64(seed), steps))
			cal := synthCalibration(rng, steps, sd)
			m, err := Fit([]Calibration{cal}, Prices{}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, err := assemble([]Calibration{cal}, Prices{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := meth.rates(p, m)
			for _, x := range r {
				if x < 0 {
					negative++
				}
			}
			for range 100 {
				u, v := synthJob(rng, sd)
				var bill float64
				for j, name := range p.names {
					bill += r[j] * float64(u[name])
				}
				errs = append(errs, math.Abs(bill-v)/v)
			}
		}
		slices.Sort(errs)
		p95[meth.name] = quantile(errs, 0.95)
		t.Logf("%-22s held-out error median %6.2f%%  95%% %6.2f%%  max %7.2f%%  negative rates %3d in 20 fits",
			meth.name, 100*quantile(errs, 0.5), 100*p95[meth.name], 100*errs[len(errs)-1], negative)
		if meth.name == "model" && negative > 0 {
			t.Errorf("the model has %d negative rates", negative)
		}
	}
	if p95["model"] > p95["pseudoinverse"]/5 {
		t.Errorf("the model (95%% error %.4f) should beat the plain pseudoinverse (%.4f) many times over", p95["model"], p95["pseudoinverse"])
	}
}

// calib builds a calibration from rows of rates over the given counters,
// valued per step.
func calib(counters []string, values []float64, rows ...[]float64) Calibration {
	var c Calibration
	for i, r := range rows {
		rates := map[string]float64{}
		for j, name := range counters {
			rates[name] = r[j]
		}
		c.Rows = append(c.Rows, Row{Step: "s" + string(rune('a'+i)), Rates: rates, Seconds: 10, Value: values[i]})
	}
	return c
}

func hasWarning(m *Model, part string) bool {
	return slices.ContainsFunc(m.Warnings, func(w string) bool { return strings.Contains(w, part) })
}

func quoteFloat(t *testing.T, m *Model, u Usage) float64 {
	t.Helper()
	q, err := m.Quote(u)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := q.Float64()
	return f
}

func near(a, b, rel float64) bool { return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b)) }

// TestFitDegenerate covers inputs that fit, with a documented behaviour.
func TestFitDegenerate(t *testing.T) {
	cpu, faults, net := meter.CPU.Name(), meter.PageFaultsMinor.Name(), meter.NetInBytes.Name()
	tests := []struct {
		name  string
		cal   Calibration
		opts  Options
		check func(t *testing.T, m *Model)
	}{
		{
			name: "single step prices everything as that step",
			cal:  calib([]string{cpu, faults}, []float64{1000}, []float64{1e9, 5000}),
			check: func(t *testing.T, m *Model) {
				if !hasWarning(m, "one calibration step") {
					t.Errorf("warnings %q", m.Warnings)
				}
				if m.RMSHeldOut != nil {
					t.Errorf("held-out error of a single step: %v", *m.RMSHeldOut)
				}
				if got := quoteFloat(t, m, Usage{cpu: 2e9, faults: 10000}); !near(got, 2000, 1e-3) {
					t.Errorf("two seconds of the step cost %v, want 2000", got)
				}
				// Scaled, the rate vector is the step's direction: each
				// counter carries half the price.
				if r0, r1 := m.Counters[0].Rate*m.Counters[0].Scale, m.Counters[1].Rate*m.Counters[1].Scale; !near(r0, r1, 1e-9) {
					t.Errorf("scaled rates %v and %v differ", r0, r1)
				}
			},
		},
		{
			name: "duplicate counters share the price",
			cal: calib([]string{cpu, "cpu_copy", faults}, []float64{1000, 600, 1600},
				[]float64{1e9, 1e9, 0}, []float64{0, 0, 3000}, []float64{1e9, 1e9, 3000}),
			check: func(t *testing.T, m *Model) {
				if m.Counters[0].Rate != m.Counters[2].Rate && !near(m.Counters[0].Rate, m.Counters[2].Rate, 1e-9) {
					t.Errorf("cpu_ns rate %v, its copy %v", m.Counters[0].Rate, m.Counters[2].Rate)
				}
				if got := quoteFloat(t, m, Usage{cpu: 1e9, "cpu_copy": 1e9}); !near(got, 1000, 2e-3) {
					t.Errorf("a CPU-second costs %v, want 1000", got)
				}
				if len(m.Components) != 2 || len(m.SingularValues) != 3 {
					t.Errorf("%d components of singular values %v, want 2 (rank 2)", len(m.Components), m.SingularValues)
				}
			},
		},
		{
			name: "repeated steps are rank-deficient rows",
			cal: calib([]string{cpu, faults}, []float64{1000, 1000, 300},
				[]float64{1e9, 0}, []float64{1e9, 0}, []float64{0, 1000}),
			check: func(t *testing.T, m *Model) {
				if got := quoteFloat(t, m, Usage{cpu: 1e9, faults: 1000}); !near(got, 1300, 2e-3) {
					t.Errorf("bill %v, want 1300", got)
				}
			},
		},
		{
			name: "fewer steps than resources: exact fit, warned",
			cal: calib([]string{cpu, faults, net}, []float64{1000, 500},
				[]float64{1e9, 100, 0}, []float64{0, 3000, 1e6}),
			check: func(t *testing.T, m *Model) {
				if !hasWarning(m, "as many components as steps") {
					t.Errorf("warnings %q", m.Warnings)
				}
			},
		},
		{
			name: "a counter no step moved is priced at zero, warned",
			cal: calib([]string{cpu, faults, net}, []float64{1000, 300},
				[]float64{1e9, 0, 0}, []float64{0, 1000, 0}),
			check: func(t *testing.T, m *Model) {
				i := slices.IndexFunc(m.Counters, func(c CounterRate) bool { return c.Name == net })
				if m.Counters[i].Rate != 0 || m.Counters[i].Scale != 0 {
					t.Errorf("unexercised counter: %+v", m.Counters[i])
				}
				if !hasWarning(m, "no step exercised "+net) {
					t.Errorf("warnings %q", m.Warnings)
				}
				e, err := m.Explain(Usage{net: 1 << 20})
				if err != nil {
					t.Fatal(err)
				}
				if e.Msat.Sign() != 0 || !slices.Equal(e.Unexercised, []string{net}) {
					t.Errorf("explanation %+v", e)
				}
			},
		},
		{
			name: "values a negative rate would fit more closely are fitted non-negatively",
			// Faults come with CPU time; the steps say faults are worth
			// less than their CPU time, which only a negative fault rate
			// could fit.
			cal: calib([]string{cpu, faults}, []float64{1000, 100, 1100},
				[]float64{1e9, 0}, []float64{0.5e9, 1000}, []float64{1.5e9, 1000}),
			check: func(t *testing.T, m *Model) {
				for _, c := range m.Counters {
					if c.Rate < 0 {
						t.Errorf("negative rate %+v", c)
					}
				}
				if m.RMSResidual < 0.05 || !hasWarning(m, "non-negative") {
					t.Errorf("residual %v, warnings %q: the binding constraint should show", m.RMSResidual, m.Warnings)
				}
			},
		},
		{
			name: "the memory peak is never priced",
			cal: calib([]string{cpu, meter.MemoryPeak.Name()}, []float64{1000, 2000},
				[]float64{1e9, 1 << 30}, []float64{2e9, 1 << 29}),
			check: func(t *testing.T, m *Model) {
				if len(m.Counters) != 1 || !slices.Equal(m.Excluded, []string{meter.MemoryPeak.Name()}) {
					t.Errorf("counters %+v, excluded %v", m.Counters, m.Excluded)
				}
				if got := quoteFloat(t, m, Usage{cpu: 1e9, meter.MemoryPeak.Name(): 1 << 40}); !near(got, 1000, 2e-3) {
					t.Errorf("bill %v, want 1000 whatever the peak", got)
				}
			},
		},
		{
			name: "involuntary context switches are left out by default",
			cal: calib([]string{cpu, meter.CtxSwitchesInvoluntary.Name()}, []float64{1000, 2000},
				[]float64{1e9, 30}, []float64{2e9, 20}),
			check: func(t *testing.T, m *Model) {
				if len(m.Counters) != 1 || !slices.Equal(m.Excluded, []string{meter.CtxSwitchesInvoluntary.Name()}) {
					t.Errorf("counters %+v, excluded %v", m.Counters, m.Excluded)
				}
			},
		},
		{
			name: "an empty exclusion list prices them",
			cal: calib([]string{cpu, meter.CtxSwitchesInvoluntary.Name()}, []float64{1000, 2000},
				[]float64{1e9, 30}, []float64{2e9, 20}),
			opts: Options{Exclude: []string{}},
			check: func(t *testing.T, m *Model) {
				if len(m.Counters) != 2 || len(m.Excluded) != 0 {
					t.Errorf("counters %+v, excluded %v", m.Counters, m.Excluded)
				}
			},
		},
		{
			name: "fixed components",
			cal: calib([]string{cpu, faults, net}, []float64{1000, 300, 50, 1350},
				[]float64{1e9, 0, 0}, []float64{0, 1000, 0}, []float64{0, 0, 1e6}, []float64{1e9, 1000, 1e6}),
			opts: Options{Components: 1},
			check: func(t *testing.T, m *Model) {
				if len(m.Components) != 1 || m.VarianceKept >= 1 || m.VarianceKept <= 0 {
					t.Errorf("%d components, variance kept %v", len(m.Components), m.VarianceKept)
				}
			},
		},
		{
			name: "more components than the rank",
			cal: calib([]string{cpu, faults}, []float64{1000, 2000},
				[]float64{1e9, 100}, []float64{2e9, 200}),
			opts: Options{Components: 5},
			check: func(t *testing.T, m *Model) {
				if len(m.Components) != 1 || !hasWarning(m, "has rank 1") {
					t.Errorf("%d components, warnings %q", len(m.Components), m.Warnings)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Fit([]Calibration{tt.cal}, Prices{}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Encode(m); err != nil {
				t.Fatalf("the fitted model does not encode: %v", err)
			}
			tt.check(t, m)
		})
	}
}

// TestFitErrors covers inputs that are refused, with a clear error.
func TestFitErrors(t *testing.T) {
	cpu := meter.CPU.Name()
	good := func() Calibration {
		return calib([]string{cpu, "faults"}, []float64{1000, 300}, []float64{1e9, 0}, []float64{0, 1000})
	}
	with := func(f func(c *Calibration)) []Calibration {
		c := good()
		f(&c)
		return []Calibration{c}
	}
	tests := []struct {
		name   string
		cals   []Calibration
		prices Prices
		opts   Options
		err    error
		msg    string
	}{
		{"no calibration", nil, Prices{}, Options{}, ErrCalibration, "no calibration set"},
		{"no steps", []Calibration{{Hash: "h"}}, Prices{}, Options{}, ErrCalibration, "calibration h has no steps"},
		{"no counters", with(func(c *Calibration) { c.Rows[0].Rates = nil }), Prices{}, Options{}, ErrCalibration, "no counters"},
		{"NaN rate", with(func(c *Calibration) { c.Rows[1].Rates[cpu] = math.NaN() }), Prices{}, Options{}, ErrCalibration, `step "sb": counter cpu_ns: rate NaN is not a number`},
		{"infinite rate", with(func(c *Calibration) { c.Rows[0].Rates["faults"] = math.Inf(1) }), Prices{}, Options{}, ErrCalibration, "rate +Inf is not a number"},
		{"negative rate", with(func(c *Calibration) { c.Rows[0].Rates[cpu] = -1 }), Prices{}, Options{}, ErrCalibration, "rate -1 is negative"},
		{"huge rate", with(func(c *Calibration) { c.Rows[0].Rates[cpu] = 1e200 }), Prices{}, Options{}, ErrCalibration, "implausibly large"},
		{"missing counter", with(func(c *Calibration) { delete(c.Rows[1].Rates, "faults") }), Prices{}, Options{}, ErrCalibration, "counter faults missing"},
		{"extra counter", with(func(c *Calibration) { c.Rows[1].Rates["x"] = 1 }), Prices{}, Options{}, ErrCalibration, "counter x is not in the first step"},
		{"negative seconds", with(func(c *Calibration) { c.Rows[0].Seconds = -1 }), Prices{}, Options{}, ErrCalibration, "seconds -1"},
		{"missing value", with(func(c *Calibration) { c.Rows[1].Value = 0 }), Prices{}, Options{}, ErrCalibration, "every step needs a positive value"},
		{"negative value", with(func(c *Calibration) { c.Rows[1].Value = -5 }), Prices{}, Options{}, ErrCalibration, "value -5"},
		{"NaN value", with(func(c *Calibration) { c.Rows[1].Value = math.NaN() }), Prices{}, Options{}, ErrCalibration, "value NaN"},
		{"infinite value", with(func(c *Calibration) { c.Rows[1].Value = math.Inf(1) }), Prices{}, Options{}, ErrCalibration, "value +Inf"},
		{"both prices", []Calibration{good()}, Prices{PerSecond: 1, PerScore: 1}, Options{}, ErrCalibration, "not both"},
		{"negative price", []Calibration{good()}, Prices{PerSecond: -1}, Options{}, ErrCalibration, "price per second -1"},
		{"NaN price", []Calibration{good()}, Prices{PerScore: math.NaN()}, Options{}, ErrCalibration, "price per score NaN"},
		{"per score without scores", []Calibration{good()}, Prices{PerScore: 2}, Options{}, ErrCalibration, "needs a positive score"},
		{"reference without per score", []Calibration{good()}, Prices{PerSecond: 2}, Options{Reference: &Calibration{}}, ErrCalibration, "only makes sense with a price per score"},
		{"reference lacks a step", with(func(c *Calibration) { c.Rows[0].Score, c.Rows[1].Score = 1, 1 }), Prices{PerScore: 2},
			Options{Reference: &Calibration{Hash: "ref", Rows: []Row{{Step: "sa", Score: 1}}}}, ErrCalibration, `step "sb": the reference ref has no such step`},
		{"bad minimum variance", []Calibration{good()}, Prices{}, Options{MinVariance: 1.5}, ErrCalibration, "minimum variance 1.5"},
		{"bad ridge", []Calibration{good()}, Prices{}, Options{Ridge: -1}, ErrCalibration, "ridge -1"},
		{"bad components", []Calibration{good()}, Prices{}, Options{Components: -2}, ErrCalibration, "-2 components"},
		{"all zero", with(func(c *Calibration) {
			for _, r := range c.Rows {
				clear(r.Rates)
				r.Rates[cpu], r.Rates["faults"] = 0, 0
			}
		}), Prices{}, Options{}, ErrNoSignal, "no step moved any counter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Fit(tt.cals, tt.prices, tt.opts)
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Fit = %v, %v; want %v containing %q", m, err, tt.err, tt.msg)
			}
		})
	}
}

// TestFitPrices checks the three ways of valuing steps.
func TestFitPrices(t *testing.T) {
	cpu, faults := meter.CPU.Name(), meter.PageFaultsMinor.Name()
	c := calib([]string{cpu, faults}, []float64{1000, 1000}, []float64{1e9, 0}, []float64{0.5e9, 4000})
	c.Rows[0].Score, c.Rows[1].Score = 100, 60 // ops per second
	ref := Calibration{Hash: "ref", Rows: []Row{{Step: "sa", Score: 50}, {Step: "sb", Score: 60}}}
	refCPU := Calibration{Hash: "ref", Rows: []Row{
		{Step: "sa", Score: 50, Rates: map[string]float64{cpu: 2e9}},
		{Step: "sb", Score: 60, Rates: map[string]float64{cpu: 2.5e9}},
	}}
	tests := []struct {
		name   string
		prices Prices
		opts   Options
		want   []float64 // fitted value of each step, msat/s
	}{
		{"per step", Prices{}, Options{}, []float64{1000, 1000}},
		{"per second", Prices{PerSecond: 700}, Options{}, []float64{700, 700}},
		{"per score", Prices{PerScore: 3}, Options{}, []float64{300, 180}},
		{"per score relative to a reference", Prices{PerScore: 1000}, Options{Reference: &ref}, []float64{2000, 1000}},
		// 1000 × 100/50 × 2 CPUs, 1000 × 60/60 × 2.5 CPUs.
		{"per reference CPU-second", Prices{PerReferenceCPUSecond: 1000}, Options{Reference: &refCPU}, []float64{4000, 2500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Fit([]Calibration{c}, tt.prices, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range m.Residuals {
				if !near(r.Value, tt.want[i], 1e-12) || !near(r.Fitted, tt.want[i], 2e-3) {
					t.Errorf("step %s: value %v fitted %v, want %v", r.Step, r.Value, r.Fitted, tt.want[i])
				}
			}
			if m.Prices != tt.prices {
				t.Errorf("prices recorded %+v", m.Prices)
			}
			if tt.opts.Reference != nil && m.Reference != "ref" {
				t.Errorf("reference recorded %q", m.Reference)
			}
			if m.Calibrations[0] != c.ID() {
				t.Errorf("calibrations %v, want %s", m.Calibrations, c.ID())
			}
		})
	}
}

// TestFitPerReferenceCPUSecond checks the valuation by the reference's CPU
// time: against itself a calibration gives CPU-second billing, whatever
// else its steps do and however many CPUs they leave idle; a provider that
// needs twice the CPU time for the same work is billed the same per job;
// and the mode needs a reference with CPU time on every step.
func TestFitPerReferenceCPUSecond(t *testing.T) {
	cpu, user, faults, reads := meter.CPU.Name(), meter.CPUUser.Name(), meter.PageFaultsMinor.Name(), meter.ReadSyscalls.Name()
	rng := rand.New(rand.NewPCG(3, 3))
	ref := Calibration{Hash: "ref"}
	slow := Calibration{Hash: "slow"}
	for i := range 12 {
		cpus := 0.5 + 1.5*rng.Float64() // some steps leave CPUs idle
		rates := map[string]float64{cpu: cpus * 1e9, user: 0.8 * cpus * 1e9, faults: 1e4 * rng.Float64(), reads: 1e5 * rng.Float64()}
		step := fmt.Sprintf("w/%d", i)
		score := 1e6 * (1 + rng.Float64())
		ref.Rows = append(ref.Rows, Row{Step: step, Rates: rates, Score: score})
		// The slow provider spends twice the CPU time on the same work.
		slowRates := maps.Clone(rates)
		slowRates[cpu], slowRates[user] = 2*rates[cpu], 2*rates[user]
		slow.Rows = append(slow.Rows, Row{Step: step, Rates: slowRates, Score: score})
	}
	prices := Prices{PerReferenceCPUSecond: 1000}
	job := Usage{cpu: 3e9, user: 2.4e9, faults: 5000, reads: 20000}
	slowJob := Usage{cpu: 6e9, user: 4.8e9, faults: 5000, reads: 20000}
	for _, tt := range []struct {
		name string
		cal  Calibration
		u    Usage
	}{{"reference", ref, job}, {"slow", slow, slowJob}} {
		m, err := Fit([]Calibration{tt.cal}, prices, Options{Reference: &ref})
		if err != nil {
			t.Fatal(err)
		}
		if m.RMSResidual > 2e-3 {
			t.Errorf("%s: residual %v", tt.name, m.RMSResidual)
		}
		if got := quoteFloat(t, m, tt.u); !near(got, 3000, 5e-3) {
			t.Errorf("%s: a job of 3 reference CPU-seconds billed %v msat, want 3000", tt.name, got)
		}
	}
	if _, err := Fit([]Calibration{slow}, prices, Options{}); !errors.Is(err, ErrCalibration) || !strings.Contains(err.Error(), "needs the reference") {
		t.Errorf("no reference: %v", err)
	}
	noCPU := Calibration{Hash: "nocpu", Rows: slices.Clone(ref.Rows)}
	noCPU.Rows[3] = Row{Step: noCPU.Rows[3].Step, Score: 1, Rates: map[string]float64{faults: 1}}
	if _, err := Fit([]Calibration{slow}, prices, Options{Reference: &noCPU}); !errors.Is(err, ErrCalibration) || !strings.Contains(err.Error(), "cpu_ns rate 0") {
		t.Errorf("reference without CPU time: %v", err)
	}
	if _, err := Fit([]Calibration{slow}, Prices{PerScore: 1, PerReferenceCPUSecond: 1}, Options{Reference: &ref}); !errors.Is(err, ErrCalibration) {
		t.Errorf("two prices: %v", err)
	}
}

// TestFitSeveralCalibrations fits from two sets of the same provider.
func TestFitSeveralCalibrations(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	a, b := synthCalibration(rng, 8, 0.005), synthCalibration(rng, 8, 0.005)
	a.Hash = "a"
	m, err := Fit([]Calibration{a, b}, Prices{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Residuals) != 16 || !slices.Equal(m.Calibrations, []string{"a", b.ID()}) || !strings.HasPrefix(b.ID(), "sha256:") {
		t.Fatalf("%d residuals, calibrations %v", len(m.Residuals), m.Calibrations)
	}
	if m.Residuals[8].Calibration != b.ID() {
		t.Errorf("residual 8 from %s", m.Residuals[8].Calibration)
	}
}

// TestCalibrationID checks that the content hash ignores map order and
// sees every change.
func TestCalibrationID(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	c := synthCalibration(rng, 3, 0)
	d := Calibration{Rows: slices.Clone(c.Rows)}
	d.Rows[0].Rates = maps.Clone(c.Rows[0].Rates)
	if c.ID() != d.ID() {
		t.Fatal("same rows, different IDs")
	}
	d.Rows[0].Rates[meter.CPU.Name()]++
	if c.ID() == d.ID() {
		t.Fatal("different rows, same ID")
	}
}

func TestRowFromVector(t *testing.T) {
	var d meter.Vector
	d[meter.CPU] = 2e9
	d[meter.NetInBytes] = 1000
	r := RowFromVector("int/7", d, 2, 5e6)
	if r.Rates["cpu_ns"] != 1e9 || r.Rates["net_in_bytes"] != 500 || len(r.Rates) != int(meter.NumCounters) || r.Score != 5e6 || r.Seconds != 2 {
		t.Fatalf("%+v", r)
	}
}

// TestFitManySteps: beyond 100 steps the held-out estimate is 100-fold
// cross-validation, still one figure per step.
func TestFitManySteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	m, err := Fit([]Calibration{synthCalibration(rng, 250, 0.005)}, Prices{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m.Residuals {
		if r.HeldOut == nil || math.Abs(*r.HeldOut) > 0.05 {
			t.Fatalf("step %s: held out %v", r.Step, r.HeldOut)
		}
	}
	if *m.RMSHeldOut > 0.01 || len(m.Components) != numRes {
		t.Fatalf("held out %v RMS, %d components", *m.RMSHeldOut, len(m.Components))
	}
}
