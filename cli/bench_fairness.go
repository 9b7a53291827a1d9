package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/pricing"
	"github.com/zennet/zennet/sandbox"
)

// benchFairnessOptions are 'zennet bench fairness' (hidden): the fairness
// measurement of the price model behind 'make bench-pricing'.
type benchFairnessOptions struct {
	IO          IOStreams
	G           *globalOptions
	Output      string
	Steps       int
	Seconds     float64
	Seed        uint64
	Repeats     int
	Providers   []string
	Jobs        []string
	Runsc       string
	Image       string
	AgentBinary string
	Memory      string
	Check       bool
	Sets        string
	Fit         priceFitFlags

	memoryBytes int64
	providers   []bench.FairProvider
	jobs        []bench.FairJob
}

func newCmdBenchFairness(io IOStreams, g *globalOptions) *cobra.Command {
	o := &benchFairnessOptions{IO: io, G: g}
	var providerNames, jobNames []string
	for _, p := range bench.DefaultFairProviders {
		providerNames = append(providerNames, p.Name)
	}
	for _, j := range bench.DefaultFairJobs {
		jobNames = append(jobNames, j.Name)
	}
	cmd := &cobra.Command{
		Use:    "fairness -o DIR [--steps N] [--seconds T] [--repeats R]",
		Hidden: true,
		Short:  "Measure how fairly the price model bills the same jobs on several sandbox configurations",
		Long: `fairness measures the price model's fairness on this machine (docs/pricing.md,
"Measured fairness"). For each provider configuration (` + strings.Join(providerNames, ", ") + `)
it calibrates a sandbox with the canonical suite (the same seed and steps for
all), then runs the held-out jobs (` + strings.Join(jobNames, ", ") + `) --repeats
times each in a fresh sandbox of that configuration, metering each run. It fits
each provider's model from its own calibration, priced per unit of benchmark
work relative to the first configuration, the reference (by default 1000 msat
per CPU-second the reference spends on it; --price-per-score 1000 prices a
second of the reference's work instead), bills the median run
of every job and prints each job's coefficient of variation across providers
under the model, under CPU-seconds and under wall-seconds.

DIR receives fairness-input.json (re-run it with 'zennet price fairness'),
fairness-report.json, runs.json (every repeat, the load) and the calibration
sets (sets/NAME.json, unsigned).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBenchFairness(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", "", "directory to write the input, report and sets to")
	f.IntVar(&o.Steps, "steps", 16, "calibration steps per provider")
	f.Float64Var(&o.Seconds, "seconds", 2.5, "seconds of each calibration step")
	f.Uint64Var(&o.Seed, "seed", 20261121, "seed of the calibration steps (the same for every provider)")
	f.IntVar(&o.Repeats, "repeats", 3, "runs of each job per provider (the median is billed)")
	f.StringSliceVar(&o.Providers, "providers", providerNames, "provider configurations, the reference first")
	f.StringSliceVar(&o.Jobs, "jobs", jobNames, "held-out jobs to run")
	f.StringVar(&o.Runsc, "runsc", envOr("ZENNET_RUNSC", ""), "runsc binary (default: the pinned build in the cache, then PATH)")
	f.StringVar(&o.Image, "image", envOr("ZENNET_IMAGE", filepath.Join(defaultCacheDir(), "images", "bookworm")), "root filesystem of the sandboxes")
	f.StringVar(&o.AgentBinary, "agent-binary", envOr("ZENNET_AGENT_BINARY", ""), "static zennet binary bound into the sandboxes and run as the neighbour (default: this binary)")
	f.StringVarP(&o.Memory, "memory", "m", "1G", "memory of each sandbox")
	f.BoolVar(&o.Check, "check", false, "exit non-zero when the fairness goal is not met")
	f.StringVar(&o.Sets, "sets", "", "use DIR/NAME.json as provider NAME's calibration instead of running the suite (analysis only: the measurement calibrates in the same run)")
	// What negotiation prices, by default: the fairness it measures is
	// the bills' (pricing.WorkCounters).
	o.Fit.register(cmd, pricing.NegotiationExclude())
	return cmd
}

// Validate checks the options and resolves providers and jobs.
func (o *benchFairnessOptions) Validate() error {
	if o.Output == "" {
		return usagef("-o DIR: say where to write the results")
	}
	if err := checkSuiteFlags(o.Steps, o.Seconds); err != nil {
		return err
	}
	if o.Seed == 0 {
		return usagef("--seed 0: give a fixed seed, the same for every provider")
	}
	if o.Repeats < 1 || o.Repeats > 99 {
		return usagef("--repeats %d: must be between 1 and 99", o.Repeats)
	}
	o.providers = nil
	for _, name := range o.Providers {
		i := slices.IndexFunc(bench.DefaultFairProviders, func(p bench.FairProvider) bool { return p.Name == name })
		if i < 0 {
			return usagef("--providers: no configuration %q", name)
		}
		o.providers = append(o.providers, bench.DefaultFairProviders[i])
	}
	if len(o.providers) < 2 {
		return usagef("--providers: give two configurations or more")
	}
	o.jobs = nil
	for _, name := range o.Jobs {
		i := slices.IndexFunc(bench.DefaultFairJobs, func(j bench.FairJob) bool { return j.Name == name })
		if i < 0 {
			return usagef("--jobs: no job %q", name)
		}
		o.jobs = append(o.jobs, bench.DefaultFairJobs[i])
	}
	if len(o.jobs) == 0 {
		return usagef("--jobs: give one job or more")
	}
	if o.Fit.PerSecond != 0 {
		return usagef("--price-per-second: fairness prices per unit of benchmark work (--price-per-reference-cpu-second, the default, or --price-per-score)")
	}
	m, err := ParseSize(o.Memory)
	if err != nil {
		return usagef("-m: %v", err)
	}
	if m < 512<<20 {
		return usagef("-m %s: the jobs need at least 512M", o.Memory)
	}
	o.memoryBytes = m
	return o.Fit.validate()
}

func runBenchFairness(ctx context.Context, o *benchFairnessOptions) error {
	log, err := o.G.logger(o.IO.ErrOut)
	if err != nil {
		return err
	}
	runsc, err := sandbox.FindRunsc(o.Runsc, defaultCacheDir())
	if err != nil {
		return err
	}
	if err := sandbox.CheckImage(o.Image); err != nil {
		return fmt.Errorf("%w (or build it with 'zennet image build')", err)
	}
	agent, err := agentBinary(o.AgentBinary)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(o.Output, "sets"), 0o755); err != nil {
		return err
	}
	sets := map[string]*bench.Set{}
	if o.Sets != "" {
		for _, p := range o.providers {
			set, err := bench.ReadFile(filepath.Join(o.Sets, p.Name+".json"))
			if err != nil {
				return err
			}
			sets[p.Name] = set
		}
	}
	prices := o.Fit.prices()
	if prices == (pricing.Prices{}) {
		prices = pricing.Prices{PerReferenceCPUSecond: 1000}
	}
	start := time.Now()
	load := bench.LoadAverage()
	fmt.Fprintf(o.IO.ErrOut, "fairness: %d providers × (%d steps of %gs + %d jobs × %d); load before: %s\n",
		len(o.providers), o.Steps, o.Seconds, len(o.jobs), o.Repeats, load)
	run, err := bench.RunFairness(ctx, bench.FairnessConfig{
		Runsc: runsc, Image: o.Image, AgentBinary: agent, MemoryBytes: o.memoryBytes,
		Providers: o.providers, Options: bench.Options{Steps: o.Steps, Seconds: o.Seconds, Seed: o.Seed},
		Jobs: o.jobs, Repeats: o.Repeats, Sets: sets, Prices: prices, Log: log,
		Progress: func(s string) { fmt.Fprintf(o.IO.ErrOut, "%s  [%s]\n", s, time.Since(start).Round(time.Second)) },
	})
	if run != nil {
		// Whatever was measured is kept, even when a later provider failed.
		if werr := writeFairnessRun(o.Output, run); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", errInterrupted, err)
		}
		return err
	}
	fmt.Fprintf(o.IO.ErrOut, "fairness: measured in %s; load after: %s\n", time.Since(start).Round(time.Second), bench.LoadAverage())
	if o.Fit.reference != nil {
		run.Input.Reference = o.Fit.reference
	}
	inputPath := filepath.Join(o.Output, "fairness-input.json")
	if err := writeIndentedJSON(inputPath, run.Input); err != nil {
		return err
	}
	opts := o.Fit.options()
	rep, err := pricing.Fairness(run.Input, opts)
	if err != nil {
		return err
	}
	if err := writeIndentedJSON(filepath.Join(o.Output, "fairness-report.json"), rep); err != nil {
		return err
	}
	printFairness(o.IO, run, rep)
	fmt.Fprintf(o.IO.Out, "\nWrote %s (re-run: zennet price fairness %s) and the report, runs and sets in %s.\n", inputPath, inputPath, o.Output)
	if o.Check && !rep.Summary.Met {
		return fmt.Errorf("fairness goal not met: model CV %s mean, %s max; CPU-second CV %s mean",
			pct(rep.Summary.MeanModelCV), pct(rep.Summary.MaxModelCV), pct(rep.Summary.MeanCPUCV))
	}
	return nil
}

// writeFairnessRun writes the raw measurements and the calibration sets.
func writeFairnessRun(dir string, run *bench.FairnessRun) error {
	for _, m := range run.Providers {
		if m.Set != nil {
			if err := m.Set.WriteFile(filepath.Join(dir, "sets", m.Provider.Name+".json")); err != nil {
				return err
			}
		}
	}
	return writeIndentedJSON(filepath.Join(dir, "runs.json"), run)
}

func writeIndentedJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// printFairness prints the providers' fits, each job's bills and CVs, and
// the summary.
func printFairness(io IOStreams, run *bench.FairnessRun, rep *pricing.FairnessReport) {
	w := io.Out
	prov := make([][]string, 0, len(rep.Providers))
	for i, p := range rep.Providers {
		var load string
		if i < len(run.Providers) {
			load = run.Providers[i].LoadBefore + " → " + run.Providers[i].LoadAfter
		}
		prov = append(prov, []string{p.Name, strconv.Itoa(p.Components), strconv.FormatFloat(100*p.VarianceKept, 'f', 4, 64) + "%",
			pct(p.RMSResidual), heldOutPct(p.RMSHeldOut), load})
	}
	table(w, []string{"PROVIDER", "COMPONENTS", "VARIANCE KEPT", "RESIDUAL", "HELD OUT", "LOAD BEFORE → AFTER"}, prov)
	fmt.Fprintln(w)
	header := []string{"JOB", "MODEL CV", "CPU-S CV", "WALL-S CV", "COVERAGE"}
	for _, p := range rep.Providers {
		header = append(header, p.Name+" msat/CPU-s/wall-s")
	}
	rows := make([][]string, 0, len(rep.Jobs)+1)
	for _, j := range rep.Jobs {
		row := []string{j.Name, pct(j.ModelCV), pct(j.CPUCV), pct(j.WallCV), pct(j.Coverage)}
		for i := range j.Msat {
			row = append(row, fmt.Sprintf("%.0f/%.2f/%.2f", j.Msat[i], j.CPUSeconds[i], j.WallSeconds[i]))
		}
		rows = append(rows, row)
	}
	s := rep.Summary
	rows = append(rows, []string{"mean", pct(s.MeanModelCV), pct(s.MeanCPUCV), pct(s.MeanWallCV), ""})
	table(w, header, rows)
	verdict := "met"
	if !s.Met {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "\nModel CV: mean %s, max %s. CPU-second CV: mean %s. Wall-second CV: mean %s.\n",
		pct(s.MeanModelCV), pct(s.MaxModelCV), pct(s.MeanCPUCV), pct(s.MeanWallCV))
	fmt.Fprintf(w, "Goal (model CV ≤ %s, and ≤ 1/3 of CPU-second CV): %s.\n", pct(pricing.GoalCV), verdict)
	for _, p := range rep.Providers {
		for _, msg := range p.Warnings {
			fmt.Fprintf(io.ErrOut, "zennet: warning: provider %s: %s\n", p.Name, msg)
		}
	}
}
