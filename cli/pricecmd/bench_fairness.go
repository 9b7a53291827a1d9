package pricecmd

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/cli/benchcmd"
	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/pricing"
	"github.com/zennet/zennet/provider"
	"github.com/zennet/zennet/terms"
)

// benchFairnessOptions are 'zennet bench fairness' (hidden): the paired
// fairness measurement behind 'make bench-pricing'.
type benchFairnessOptions struct {
	IO          cmdutil.IOStreams
	G           *cmdutil.GlobalOptions
	Output      string
	Steps       int
	Seconds     float64
	Seed        uint64
	Replicates  int
	Pairs       int
	Comparisons []string
	Price       float64
	Sandboxes   cmdutil.Sandboxes
	Memory      string
	Check       bool
	CPU         int
	From        string
	Fit         priceFitFlags

	memoryBytes int64
	arms        []bench.FairArm
	comparisons []bench.FairComparison
	jobs        []bench.FairJob
}

func NewCmdBenchFairness(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &benchFairnessOptions{IO: io, G: g}
	var names []string
	for _, c := range bench.DefaultFairComparisons {
		names = append(names, c.Name)
	}
	cmd := &cobra.Command{
		Use:    "fairness -o DIR [--pairs N] [--replicates R] [--steps N] [--seconds T]",
		Hidden: true,
		Short:  "Measure how fairly the tariff and the price model bill the same jobs on several sandboxes, in pairs",
		Long: `fairness measures on this machine, in one run, how fairly the negotiated tariff
(one rate on cpu_ns) and the principal component model of 'zennet price' bill
the same jobs on sandboxes that differ (docs/pricing.md, "Measured fairness").
Every arm's sandbox lives through the run: the reference (systrap, 1 CPU), a
second one like it, a 0.5-CPU quota, the same with a CPU-hungry neighbour, and
ptrace. Each calibration step runs on every arm in turn, the suite --replicates
times; then each comparison (` + strings.Join(names, ", ") + `) runs each of its jobs on the
reference and on its arm seconds apart, --pairs times, the side that goes first
alternating. Bills are priced at --price-per-work msat per reference CPU-second
of work, each arm from its own calibration (the median of each step's
replicates) relative to the reference's, and compared as ratios test/reference.

The goals: the reference against itself is the noise floor; the no-bias
controls (quota, quota-neighbour: compute-only jobs) bill within 5% of the
reference and inside the noise band; on ptrace the system-call-heavy jobs'
bias is at most a third of CPU-seconds' and at most 15%, for the tariff and,
separately, for the model; and the second reference arm, its CPU counters
reported 1.5 times over in its calibration and its usage reports, is paid
1.000 ± 0.5% of its honest bill after the renter's checks (the offer's refit,
meter.Check on every report). --check exits non-zero when one is not met.

DIR receives fairness-report.json, runs.json (every pair, the meter's trace,
the load) and the calibration sets (sets/ARM-N.json and the medians
sets/ARM.json, unsigned).`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return runBenchFairness(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", "", "directory to write the report, runs and sets to")
	f.IntVar(&o.Steps, "steps", 16, "calibration steps")
	f.Float64Var(&o.Seconds, "seconds", 2.5, "seconds of each calibration step")
	f.Uint64Var(&o.Seed, "seed", 20261121, "seed of the calibration steps (the same for every arm)")
	f.IntVar(&o.Replicates, "replicates", bench.DefaultFairReplicates, "runs of each calibration step on each arm")
	f.IntVar(&o.Pairs, "pairs", bench.DefaultFairPairs, "pairs of runs of each job in each comparison")
	f.StringSliceVar(&o.Comparisons, "comparisons", names, "comparisons to make (self, the noise floor, is always made)")
	f.Float64Var(&o.Price, "price-per-work", 100, "msat per reference CPU-second of work")
	o.Sandboxes.Register(f, "static zennet binary bound into the sandboxes and run as the neighbour (default: this binary)")
	f.StringVarP(&o.Memory, "memory", "m", "1G", "memory of each sandbox")
	f.BoolVar(&o.Check, "check", false, "exit non-zero when a goal is not met")
	f.StringVar(&o.From, "from", "", "price the run measured into DIR again instead of measuring (DIR may be -o's)")
	f.IntVar(&o.CPU, "cpu", runtime.NumCPU()-1, "the CPU every sandbox is placed on (-1: spread them as a provider does)")
	// The model's own flags; its price is the tariff's.
	f.Float64Var(&o.Fit.MinVariance, "min-variance", pricing.DefaultMinVariance, "the model: fraction of the scaled variance the kept components must carry")
	f.IntVar(&o.Fit.Components, "components", 0, "the model: keep exactly this many components (default: by --min-variance)")
	f.Float64Var(&o.Fit.Ridge, "ridge", pricing.DefaultRidge, "the model: ridge, relative to the smallest kept squared singular value")
	f.StringSliceVar(&o.Fit.Exclude, "exclude", pricing.NegotiationExclude(), "the model: counters not to price ('' for none)")
	return cmd
}

// Validate checks the options and resolves arms, comparisons and jobs.
func (o *benchFairnessOptions) Validate() error {
	if o.Output == "" && o.From == "" {
		return cmdutil.Usagef("-o DIR: say where to write the results")
	}
	if o.Output == "" {
		o.Output = o.From
	}
	if err := benchcmd.CheckSuiteFlags(o.Steps, o.Seconds); err != nil {
		return err
	}
	if o.Seed == 0 {
		return cmdutil.Usagef("--seed 0: give a fixed seed, the same for every arm")
	}
	if o.Replicates < 1 || o.Replicates > 9 {
		return cmdutil.Usagef("--replicates %d: must be between 1 and 9", o.Replicates)
	}
	if o.Pairs < 2 || o.Pairs > 99 {
		return cmdutil.Usagef("--pairs %d: must be between 2 and 99", o.Pairs)
	}
	if o.CPU < -1 || o.CPU >= runtime.NumCPU() {
		return cmdutil.Usagef("--cpu %d: must be -1 or a CPU from 0 to %d", o.CPU, runtime.NumCPU()-1)
	}
	if !(o.Price > 0) {
		return cmdutil.Usagef("--price-per-work %v: must be a positive number of msat", o.Price)
	}
	o.comparisons = []bench.FairComparison{bench.DefaultFairComparisons[0]}
	for _, name := range o.Comparisons {
		c, ok := bench.LookupFairComparison(name)
		if !ok {
			return cmdutil.Usagef("--comparisons: no comparison %q", name)
		}
		if c.Name != o.comparisons[0].Name {
			o.comparisons = append(o.comparisons, c)
		}
	}
	// The reference, and the arms the comparisons need, in order.
	need := map[string]bool{bench.DefaultFairArms[0].Name: true}
	jobs := map[string]bool{}
	for _, c := range o.comparisons {
		need[c.Arm] = true
		for _, j := range c.Jobs {
			jobs[j] = true
		}
	}
	o.arms, o.jobs = nil, nil
	for _, a := range bench.DefaultFairArms {
		if need[a.Name] {
			o.arms = append(o.arms, a)
		}
	}
	for _, j := range bench.DefaultFairJobs {
		if jobs[j.Name] {
			o.jobs = append(o.jobs, j)
		}
	}
	m, err := cmdutil.ParseSize(o.Memory)
	if err != nil {
		return cmdutil.Usagef("-m: %v", err)
	}
	if m < 512<<20 {
		return cmdutil.Usagef("-m %s: the steps and jobs need at least 512M", o.Memory)
	}
	o.memoryBytes = m
	return o.Fit.validate()
}

// offer is the renter's check of an offer priced per work, against the
// run's reference.
func offer(set, ref *bench.Set, price float64) (pay.Rates, error) {
	rates, _, err := terms.RatesAgainst(set, ref, price)
	return rates, err
}

func runBenchFairness(ctx context.Context, o *benchFairnessOptions) error {
	log, err := o.G.Logger(o.IO.ErrOut)
	if err != nil {
		return err
	}
	start := time.Now()
	if o.From != "" {
		run, err := bench.ReadFairnessRun(o.From)
		if err != nil {
			return err
		}
		return reportFairness(o, run, run.Finished.Sub(run.Started))
	}
	runsc, agent, err := o.Sandboxes.Resolve()
	if err != nil {
		return err
	}
	fmt.Fprintf(o.IO.ErrOut, "fairness: %d arms × %d steps of %gs × %d replicates; %d comparisons × %d pairs; load before: %s\n",
		len(o.arms), o.Steps, o.Seconds, o.Replicates, len(o.comparisons), o.Pairs, bench.LoadAverage())
	run, err := bench.MeasureFairness(ctx, bench.FairnessConfig{
		Runsc: runsc, Image: o.Sandboxes.Image, AgentBinary: agent, MemoryBytes: o.memoryBytes,
		Arms: o.arms, Comparisons: o.comparisons, Jobs: o.jobs,
		Options:    bench.Options{Steps: o.Steps, Seconds: o.Seconds, Seed: o.Seed},
		Replicates: o.Replicates, Pairs: o.Pairs, CPU: o.CPU, Log: log,
		Progress: func(s string) { fmt.Fprintf(o.IO.ErrOut, "%s  [%s]\n", s, time.Since(start).Round(time.Second)) },
	}, o.Output)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", cmdutil.ErrInterrupted, err)
		}
		return err
	}
	fmt.Fprintf(o.IO.ErrOut, "fairness: measured in %s; load after: %s\n", time.Since(start).Round(time.Second), bench.LoadAverage())
	return reportFairness(o, run, time.Since(start))
}

// reportFairness prices run, writes the report and prints it.
func reportFairness(o *benchFairnessOptions, run *bench.FairnessRun, took time.Duration) error {
	// A provider whose set a renter refuses offers its flat rates
	// (terms.OfferRates): the default ones here.
	rep, err := bench.AnalyseFairness(run, bench.FairnessAnalysis{Price: o.Price, Options: o.Fit.options(), Offer: offer, Flat: provider.DefaultConfig().Rates})
	if err != nil {
		return err
	}
	if err := bench.WriteReport(o.Output, rep); err != nil {
		return err
	}
	printFairness(o.IO, run, rep, took)
	if o.Check {
		return rep.Check()
	}
	return nil
}

// printFairness prints the arms' fits, each comparison's ratios, the
// inflated provider and the goals.
func printFairness(io cmdutil.IOStreams, run *bench.FairnessRun, rep *bench.FairnessReport, took time.Duration) {
	w := io.Out
	fmt.Fprintf(w, "Measured %s to %s (%s), load %s → %s; %d replicates, %d pairs; %g msat per reference CPU-second.\n\n",
		run.Started.Format(time.RFC3339), run.Finished.Format(time.RFC3339), took.Round(time.Second), run.LoadBefore, run.LoadAfter, run.Replicates, run.Pairs, rep.Price)
	var rows [][]string
	for _, a := range rep.Arms {
		negotiated := "offered"
		if a.Refused != "" {
			negotiated = "refused: " + a.Refused
		}
		model := pricing.Percent(a.ModelResidual)
		if a.ModelError != "" {
			model = "no fit: " + a.ModelError
		}
		rows = append(rows, []string{a.Name, fmt.Sprintf("%.2f", a.TariffMsatPerCPUSecond), pricing.Percent(a.TariffResidual), pricing.Percent(a.TariffHeldOut),
			model, pricing.Percent(a.ReplicateSpread) + " (" + pricing.Percent(a.ReplicateSpreadMax) + ")", negotiated})
	}
	cmdutil.Table(w, []string{"ARM", "TARIFF MSAT/CPU-S", "RESIDUAL", "HELD OUT", "MODEL RESIDUAL", "REPLICATE SPREAD (MAX)", "NEGOTIATION"}, rows)
	fmt.Fprintln(w)
	rows = nil
	ratio := func(r pricing.PairedRatio) string {
		if r.N == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f ±%.1f%%", r.Ratio, 100*(r.High-r.Ratio)/r.Ratio)
	}
	for _, c := range rep.Comparisons {
		for _, j := range c.Jobs {
			band := "(noise floor)"
			if j.Band != nil {
				band = fmt.Sprintf("%.3f–%.3f", j.Band.Low, j.Band.High)
			}
			negotiated := ratio(j.Negotiated)
			if len(j.Flat) > 0 {
				negotiated += " (flat: " + strings.Join(j.Flat, ", ") + ")"
			}
			rows = append(rows, []string{c.Name, j.Job, fmt.Sprintf("%.2f", j.RefCPUSeconds), ratio(j.CPU), ratio(j.Tariff), ratio(j.Model), negotiated, ratio(j.Wall),
				fmt.Sprintf("%.1f%%", 100*j.Tariff.LogSD), band})
		}
	}
	cmdutil.Table(w, []string{"COMPARISON", "JOB", "REF CPU-S", "CPU-S RATIO", "TARIFF RATIO", "MODEL RATIO", "NEGOTIATED RATIO", "WALL RATIO", "PAIR SPREAD", "NOISE BAND"}, rows)
	if inf := rep.Inflated; inf != nil {
		fmt.Fprintf(w, "\nInflated (%s, CPU counters ×%g): ", inf.Arm, inf.Scale)
		if inf.Refused != "" {
			fmt.Fprintf(w, "%s\n", inf.Refused)
		} else {
			fmt.Fprintf(w, "its agreed rate is ×%.4f the honest one.\n", inf.RateRatio)
		}
	}
	fmt.Fprintln(w)
	rows = nil
	for _, g := range rep.Goals {
		v := "met"
		if !g.Met {
			v = "NOT met"
		}
		rows = append(rows, []string{g.Comparison, g.Job, g.Goal, v, g.Detail})
	}
	cmdutil.Table(w, []string{"COMPARISON", "JOB", "GOAL", "", "MEASURED"}, rows)
	if rep.Met {
		fmt.Fprintln(w, "\nEvery goal is met.")
	} else {
		fmt.Fprintln(w, "\nNot every goal is met.")
	}
}
