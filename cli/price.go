package cli

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/internal/atomicfile"
	"github.com/zennet/zennet/pricing"
)

// maxPriceInput bounds the calibration, usage and fairness files the price
// commands read.
const maxPriceInput = 64 << 20

func newCmdPrice(io IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "price",
		Short: "Fit price models to calibration runs and bill usage with them",
		Long: `price fits a price model to benchmark calibration runs (a non-negative rate per
meter counter, from principal components of the scaled counter rates), shows a
model, bills a counter delta with it, and measures how fairly it bills the same
jobs across providers. docs/pricing.md describes the method.`,
		Args: noArgs,
	}
	cmd.AddCommand(newCmdPriceFit(io), newCmdPriceShow(io), newCmdPriceQuote(io), newCmdPriceFairness(io))
	return cmd
}

// priceArgs accepts between lo and hi arguments (hi < 0: no limit), with
// a usage error naming what is expected.
func priceArgs(lo, hi int, want string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || (hi >= 0 && len(args) > hi) {
			return usagef("%s takes %s; see '%s --help'", cmd.CommandPath(), want, cmd.CommandPath())
		}
		return nil
	}
}

// priceFitFlags are the fitting flags fit and fairness share.
type priceFitFlags struct {
	PerSecond   float64
	PerScore    float64
	PerRefCPU   float64
	Reference   string
	MinVariance float64
	Components  int
	Ridge       float64
	Exclude     []string

	reference *pricing.Calibration
}

// register registers the fit flags; exclude is --exclude's default.
func (f *priceFitFlags) register(cmd *cobra.Command, exclude []string) {
	fl := cmd.Flags()
	fl.Float64Var(&f.PerSecond, "price-per-second", 0, "one full-load price for every step, msat per second")
	fl.Float64Var(&f.PerScore, "price-per-score", 0, "msat per unit of each step's score (with --reference: per reference-second of work)")
	fl.Float64Var(&f.PerRefCPU, "price-per-reference-cpu-second", 0, "msat per CPU-second the reference machine spends on the same work (needs --reference)")
	fl.StringVar(&f.Reference, "reference", "", "calibration of the reference machine: scores are divided by its steps' scores")
	fl.Float64Var(&f.MinVariance, "min-variance", pricing.DefaultMinVariance, "fraction of the scaled variance the kept components must carry")
	fl.IntVar(&f.Components, "components", 0, "keep exactly this many components (default: by --min-variance)")
	fl.Float64Var(&f.Ridge, "ridge", pricing.DefaultRidge, "ridge, relative to the smallest kept squared singular value")
	fl.StringSliceVar(&f.Exclude, "exclude", exclude, "counters not to price (repeatable; '' for none), besides memory_peak_bytes")
}

// validate checks the flags and reads the reference calibration.
func (f *priceFitFlags) validate() error {
	if (f.PerSecond != 0 && f.PerScore != 0) || (f.PerSecond != 0 && f.PerRefCPU != 0) || (f.PerScore != 0 && f.PerRefCPU != 0) {
		return usagef("--price-per-second, --price-per-score and --price-per-reference-cpu-second: give one, not more")
	}
	if f.PerSecond < 0 || f.PerScore < 0 || f.PerRefCPU < 0 {
		return usagef("a price must be a positive number of msat")
	}
	if !(f.MinVariance > 0 && f.MinVariance <= 1) {
		return usagef("--min-variance %v: must be more than 0 and at most 1 (e.g. 0.999)", f.MinVariance)
	}
	if f.Components < 0 {
		return usagef("--components %d: must be 0 (choose by variance) or more", f.Components)
	}
	if !(f.Ridge > 0) {
		return usagef("--ridge %v: must be more than 0 (e.g. 0.001)", f.Ridge)
	}
	if f.Reference != "" {
		if f.PerScore == 0 && f.PerRefCPU == 0 {
			return usagef("--reference needs --price-per-score or --price-per-reference-cpu-second: it makes scores relative")
		}
		c, err := readCalibration(f.Reference)
		if err != nil {
			return err
		}
		f.reference = &c
	}
	return nil
}

func (f *priceFitFlags) prices() pricing.Prices {
	return pricing.Prices{PerSecond: f.PerSecond, PerScore: f.PerScore, PerReferenceCPUSecond: f.PerRefCPU}
}

func (f *priceFitFlags) options() pricing.Options {
	exclude := []string{} // not nil: exactly what the flag says
	for _, name := range f.Exclude {
		if name != "" {
			exclude = append(exclude, name)
		}
	}
	return pricing.Options{MinVariance: f.MinVariance, Components: f.Components, Ridge: f.Ridge, Exclude: exclude, Reference: f.reference}
}

// readPriceInput reads a file the price commands take, "-" being stdin.
func readPriceInput(in io.Reader, path string) ([]byte, error) {
	var r io.Reader = in
	if path == "-" && in == nil {
		return nil, usagef("'-' (stdin) is not accepted here; name a file")
	}
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPriceInput+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxPriceInput {
		return nil, fmt.Errorf("read %s: larger than %d MiB", path, maxPriceInput>>20)
	}
	return b, nil
}

func readCalibration(path string) (pricing.Calibration, error) {
	b, err := readPriceInput(nil, path)
	if err != nil {
		return pricing.Calibration{}, err
	}
	c, err := pricing.DecodeCalibration(b)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func readModel(path string) (*pricing.Model, string, error) {
	b, err := readPriceInput(nil, path)
	if err != nil {
		return nil, "", err
	}
	m, err := pricing.Decode(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	h, err := m.Hash()
	return m, h, err
}

func warnModel(w io.Writer, m *pricing.Model) {
	for _, s := range m.Warnings {
		fmt.Fprintf(w, "zennet: warning: %s\n", s)
	}
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 2, 64) + "%" }

func heldOutPct(p *float64) string {
	if p == nil {
		return "-"
	}
	return pct(*p)
}

// fit

type priceFitOptions struct {
	IO           IOStreams
	Calibrations []string
	Output       string
	JSON         bool
	Fit          priceFitFlags
}

func newCmdPriceFit(io IOStreams) *cobra.Command {
	o := &priceFitOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "fit CALIB... -o MODEL",
		Short: "Fit a price model to calibration runs",
		Long: `fit reads calibration runs (JSON: {"hash": ..., "rows": [{"step": ..., "rates":
{COUNTER: units per second, ...}, "seconds": ..., "score": ..., "value": ...}]}),
values each step (--price-per-second, --price-per-score, or each row's "value" in
msat per second), fits non-negative rates per counter and writes the model to
MODEL. Warnings about the fit go to stderr.`,
		Example: `  zennet price fit testdata/pricing/calibration.json -o model.json
  zennet price fit calib.json --price-per-score 1000 --reference ref.json -o model.json`,
		Args: priceArgs(1, -1, "CALIB..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Calibrations = args
			if err := o.Validate(); err != nil {
				return err
			}
			return runPriceFit(o)
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "where to write the model (required)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the fit's summary as JSON")
	o.Fit.register(cmd, pricing.DefaultExclude)
	return cmd
}

// Validate checks the options.
func (o *priceFitOptions) Validate() error {
	if o.Output == "" {
		return usagef("-o MODEL: say where to write the model")
	}
	return o.Fit.validate()
}

type priceFitJSON struct {
	Model        string   `json:"model"`
	Hash         string   `json:"hash"`
	Calibrations []string `json:"calibrations"`
	Steps        int      `json:"steps"`
	Components   int      `json:"components"`
	Counters     int      `json:"counters"`
	VarianceKept float64  `json:"variance_kept"`
	RMSResidual  float64  `json:"rms_residual"`
	RMSHeldOut   *float64 `json:"rms_held_out,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
}

func runPriceFit(o *priceFitOptions) error {
	var cals []pricing.Calibration
	for _, path := range o.Calibrations {
		c, err := readCalibration(path)
		if err != nil {
			return err
		}
		cals = append(cals, c)
	}
	m, err := pricing.Fit(cals, o.Fit.prices(), o.Fit.options())
	if err != nil {
		return err
	}
	b, err := pricing.Encode(m)
	if err != nil {
		return err
	}
	h, err := m.Hash()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(o.Output, b); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	doc := priceFitJSON{
		Model: o.Output, Hash: h, Calibrations: m.Calibrations, Steps: len(m.Residuals), Components: len(m.Components),
		Counters: len(m.Counters), VarianceKept: m.VarianceKept, RMSResidual: m.RMSResidual, RMSHeldOut: m.RMSHeldOut, Warnings: m.Warnings,
	}
	if o.JSON {
		return writeJSON(o.IO.Out, "price-fit", doc)
	}
	warnModel(o.IO.ErrOut, m)
	table(o.IO.Out, []string{"FIELD", "VALUE"}, [][]string{
		{"model", doc.Model},
		{"hash", doc.Hash},
		{"steps", strconv.Itoa(doc.Steps)},
		{"components", fmt.Sprintf("%d of %d", doc.Components, len(m.SingularValues))},
		{"variance kept", strconv.FormatFloat(100*doc.VarianceKept, 'f', 4, 64) + "%"},
		{"residual (RMS)", pct(doc.RMSResidual)},
		{"held out (RMS)", heldOutPct(doc.RMSHeldOut)},
	})
	return nil
}

// writeFileAtomic writes b to path atomically, mode 0644.
func writeFileAtomic(path string, b []byte) error { return atomicfile.WriteFile(path, b, 0o644) }

// show

type priceShowOptions struct {
	IO    IOStreams
	Model string
	JSON  bool
}

func newCmdPriceShow(io IOStreams) *cobra.Command {
	o := &priceShowOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "show MODEL",
		Short: "Show a price model: its rates, components and fit",
		Long: `show prints a price model. On a terminal: what it was fitted from, the rate of
every counter, and how well it fits each calibration step. Elsewhere: one line
per counter (name, unit, rate in msat per unit, scale in units per second).`,
		Args: priceArgs(1, 1, "MODEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Model = args[0]
			return runPriceShow(o)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the model and its hash as JSON")
	return cmd
}

type priceModelJSON struct {
	Hash  string         `json:"hash"`
	Model *pricing.Model `json:"model"`
}

func runPriceShow(o *priceShowOptions) error {
	m, h, err := readModel(o.Model)
	if err != nil {
		return err
	}
	if o.JSON {
		return writeJSON(o.IO.Out, "price-model", priceModelJSON{Hash: h, Model: m})
	}
	counters := make([][]string, 0, len(m.Counters))
	for _, c := range m.Counters {
		counters = append(counters, []string{c.Name, c.Unit, strconv.FormatFloat(c.Rate, 'g', 6, 64),
			strconv.FormatFloat(c.Scale, 'g', 6, 64), strconv.FormatFloat(c.Rate*c.Scale, 'f', 3, 64)})
	}
	if !isTerminal(o.IO.Out) {
		table(o.IO.Out, nil, counters)
		return nil
	}
	prices := m.Prices.Mode()
	switch prices {
	case "per_second":
		prices = fmt.Sprintf("%g msat per second of any step", m.Prices.PerSecond)
	case "per_score":
		prices = fmt.Sprintf("%g msat per unit of score", m.Prices.PerScore)
		if m.Reference != "" {
			prices = fmt.Sprintf("%g msat per reference-second (scores relative to %s)", m.Prices.PerScore, m.Reference)
		}
	case "per_reference_cpu_second":
		prices = fmt.Sprintf("%g msat per CPU-second of work on the reference %s", m.Prices.PerReferenceCPUSecond, m.Reference)
	default:
		prices = "each step's own value"
	}
	table(o.IO.Out, []string{"MODEL", o.Model}, [][]string{
		{"hash", h},
		{"calibrations", strings.Join(m.Calibrations, ", ")},
		{"prices", prices},
		{"components", fmt.Sprintf("%d of %d, %.4f%% of the variance", len(m.Components), len(m.SingularValues), 100*m.VarianceKept)},
		{"residual (RMS)", pct(m.RMSResidual)},
		{"held out (RMS)", heldOutPct(m.RMSHeldOut)},
	})
	fmt.Fprintln(o.IO.Out)
	table(o.IO.Out, []string{"COUNTER", "UNIT", "RATE (msat/unit)", "SCALE (unit/s)", "AT SCALE (msat/s)"}, counters)
	fmt.Fprintln(o.IO.Out)
	steps := make([][]string, 0, len(m.Residuals))
	for _, r := range m.Residuals {
		steps = append(steps, []string{r.Step, strconv.FormatFloat(r.Value, 'f', 3, 64), strconv.FormatFloat(r.Fitted, 'f', 3, 64),
			pct(r.Relative), heldOutPct(r.HeldOut)})
	}
	table(o.IO.Out, []string{"STEP", "VALUE (msat/s)", "FITTED", "ERROR", "HELD OUT"}, steps)
	warnModel(o.IO.Out, m)
	return nil
}

// quote

type priceQuoteOptions struct {
	IO    IOStreams
	Model string
	Usage string
	JSON  bool
}

func newCmdPriceQuote(io IOStreams) *cobra.Command {
	o := &priceQuoteOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "quote MODEL USAGE",
		Short: "Bill a counter delta with a price model",
		Long: `quote bills USAGE, a JSON object of counter name to delta (a meter counter vector
is one; '-' reads it from stdin), with the model: the sum of rate × delta over
the counters, exact, rounded down to the nanomsat. Off a terminal it prints
the bill in msat alone.`,
		Example: `  zennet price quote testdata/pricing/model.json testdata/pricing/usage.json`,
		Args:    priceArgs(2, 2, "MODEL USAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Model, o.Usage = args[0], args[1]
			return runPriceQuote(o)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the itemised bill as JSON")
	return cmd
}

type priceQuoteJSON struct {
	Model       string         `json:"model"`
	Hash        string         `json:"hash"`
	Msat        string         `json:"msat"`
	Nanomsat    uint64         `json:"nanomsat"`
	Coverage    float64        `json:"coverage"`
	Lines       []pricing.Line `json:"lines"`
	Unexercised []string       `json:"unexercised,omitempty"`
}

// formatNanomsat writes n nanomsat as msat with nine decimals.
func formatNanomsat(n uint64) string {
	return new(big.Rat).SetFrac(new(big.Int).SetUint64(n), big.NewInt(1e9)).FloatString(9)
}

func runPriceQuote(o *priceQuoteOptions) error {
	m, h, err := readModel(o.Model)
	if err != nil {
		return err
	}
	b, err := readPriceInput(o.IO.In, o.Usage)
	if err != nil {
		return err
	}
	u, err := pricing.DecodeUsage(b)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Usage, err)
	}
	e, err := m.Explain(u)
	if err != nil {
		return err
	}
	n, err := pricing.Nanomsat(e.Msat)
	if err != nil {
		return err
	}
	if o.JSON {
		lines := e.Lines
		if lines == nil {
			lines = []pricing.Line{}
		}
		return writeJSON(o.IO.Out, "price-quote", priceQuoteJSON{Model: o.Model, Hash: h, Msat: formatNanomsat(n), Nanomsat: n,
			Coverage: e.Coverage, Lines: lines, Unexercised: e.Unexercised})
	}
	if !isTerminal(o.IO.Out) {
		fmt.Fprintln(o.IO.Out, formatNanomsat(n))
		return nil
	}
	rows := make([][]string, 0, len(e.Lines))
	for _, l := range e.Lines {
		rows = append(rows, []string{l.Counter, strconv.FormatUint(l.Delta, 10), l.Unit,
			strconv.FormatFloat(l.Rate, 'g', 6, 64), strconv.FormatFloat(l.Msat, 'f', 3, 64)})
	}
	table(o.IO.Out, []string{"COUNTER", "DELTA", "UNIT", "RATE", "MSAT"}, rows)
	fmt.Fprintf(o.IO.Out, "\nTotal: %s msat\n", formatNanomsat(n))
	if e.Coverage < 0.99 {
		fmt.Fprintf(o.IO.Out, "Only %.1f%% of this usage looks like the calibration's steps; its price rests on the rest of the model's choices.\n", 100*e.Coverage)
	}
	if len(e.Unexercised) > 0 {
		fmt.Fprintf(o.IO.Out, "No calibration step moved %s: billed at 0.\n", strings.Join(e.Unexercised, ", "))
	}
	return nil
}

// fairness

type priceFairnessOptions struct {
	IO    IOStreams
	Input string
	JSON  bool
	Check bool
	Fit   priceFitFlags
}

func newCmdPriceFairness(io IOStreams) *cobra.Command {
	o := &priceFairnessOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "fairness RUNS",
		Short: "Compare how fairly the model, CPU-seconds and wall-seconds bill the same jobs across providers",
		Long: `fairness reads RUNS (JSON: {"prices": {"per_score": MSAT}, "reference":
CALIBRATION, "providers": [{"name": ..., "calibrations": [CALIBRATION...],
"jobs": [{"name": ..., "seconds": WALL, "usage": {COUNTER: delta...}}]}]}), fits
each provider's model from its own calibration, bills every job on every
provider, and prints each job's coefficient of variation across providers under
the model, under CPU-second and under wall-second billing. The goal: model CV at
most 5% and at most a third of CPU-second billing's. Off a terminal it prints one
line per job (name, model CV, CPU-second CV, wall-second CV, coverage), then the
means.`,
		Example: `  zennet price fairness testdata/pricing/fairness.json`,
		Args:    priceArgs(1, 1, "RUNS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Input = args[0]
			if err := o.Fit.validate(); err != nil {
				return err
			}
			return runPriceFairness(o)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&o.Check, "check", false, "exit non-zero when the goal is not met")
	o.Fit.register(cmd, pricing.NegotiationExclude())
	return cmd
}

func runPriceFairness(o *priceFairnessOptions) error {
	b, err := readPriceInput(o.IO.In, o.Input)
	if err != nil {
		return err
	}
	in, err := pricing.DecodeFairnessInput(b)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Input, err)
	}
	if p := o.Fit.prices(); p != (pricing.Prices{}) {
		in.Prices = p
	}
	rep, err := pricing.Fairness(in, o.Fit.options())
	if err != nil {
		return err
	}
	var notMet error
	if o.Check && !rep.Summary.Met {
		notMet = fmt.Errorf("fairness goal not met: model CV %s mean, %s max; CPU-second CV %s mean",
			pct(rep.Summary.MeanModelCV), pct(rep.Summary.MaxModelCV), pct(rep.Summary.MeanCPUCV))
	}
	if o.JSON {
		return errors.Join(writeJSON(o.IO.Out, "price-fairness", rep), notMet)
	}
	rows := make([][]string, 0, len(rep.Jobs)+2)
	for _, j := range rep.Jobs {
		rows = append(rows, []string{j.Name, pct(j.ModelCV), pct(j.CPUCV), pct(j.WallCV), pct(j.Coverage)})
	}
	s := rep.Summary
	rows = append(rows, []string{"mean", pct(s.MeanModelCV), pct(s.MeanCPUCV), pct(s.MeanWallCV), ""})
	if isTerminal(o.IO.Out) {
		prov := make([][]string, 0, len(rep.Providers))
		for _, p := range rep.Providers {
			prov = append(prov, []string{p.Name, strconv.Itoa(p.Components), strconv.FormatFloat(100*p.VarianceKept, 'f', 4, 64) + "%",
				pct(p.RMSResidual), heldOutPct(p.RMSHeldOut)})
		}
		table(o.IO.Out, []string{"PROVIDER", "COMPONENTS", "VARIANCE KEPT", "RESIDUAL", "HELD OUT"}, prov)
		fmt.Fprintln(o.IO.Out)
	}
	table(o.IO.Out, []string{"JOB", "MODEL CV", "CPU-S CV", "WALL-S CV", "COVERAGE"}, rows)
	if isTerminal(o.IO.Out) {
		verdict := "met"
		if !s.Met {
			verdict = "NOT met"
		}
		fmt.Fprintf(o.IO.Out, "\nGoal (model CV ≤ %s, and ≤ 1/3 of CPU-second CV): %s; largest model CV %s.\n", pct(pricing.GoalCV), verdict, pct(s.MaxModelCV))
	}
	for _, p := range rep.Providers {
		for _, w := range p.Warnings {
			fmt.Fprintf(o.IO.ErrOut, "zennet: warning: provider %s: %s\n", p.Name, w)
		}
	}
	return notMet
}
