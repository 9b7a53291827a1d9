// Package pricecmd is 'zennet price' (fit a model to calibration runs,
// show it, bill usage with it, measure its fairness) and the hidden
// 'zennet bench fairness' that measures that fairness for real. The
// method is package pricing's; this is its command line.
package pricecmd

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/internal/atomicfile"
	"github.com/zennet/zennet/pricing"
)

func NewCmdPrice(io cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "price",
		Short: "Fit price models to calibration runs and bill usage with them",
		Long: `price fits a price model to benchmark calibration runs (a non-negative rate per
meter counter, from principal components of the scaled counter rates), shows a
model, bills a counter delta with it, and measures how fairly it bills the same
jobs across providers. docs/pricing.md describes the method.`,
		Args: cmdutil.NoArgs,
	}
	cmd.AddCommand(newCmdPriceFit(io), newCmdPriceShow(io), newCmdPriceQuote(io), newCmdPriceFairness(io))
	return cmd
}

// priceArgs accepts between lo and hi arguments (hi < 0: no limit), with
// a usage error naming what is expected.
func priceArgs(lo, hi int, want string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || (hi >= 0 && len(args) > hi) {
			return cmdutil.Usagef("%s takes %s; see '%s --help'", cmd.CommandPath(), want, cmd.CommandPath())
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
		return cmdutil.Usagef("--price-per-second, --price-per-score and --price-per-reference-cpu-second: give one, not more")
	}
	if f.PerSecond < 0 || f.PerScore < 0 || f.PerRefCPU < 0 {
		return cmdutil.Usagef("a price must be a positive number of msat")
	}
	if !(f.MinVariance > 0 && f.MinVariance <= 1) {
		return cmdutil.Usagef("--min-variance %v: must be more than 0 and at most 1 (e.g. 0.999)", f.MinVariance)
	}
	if f.Components < 0 {
		return cmdutil.Usagef("--components %d: must be 0 (choose by variance) or more", f.Components)
	}
	if !(f.Ridge > 0) {
		return cmdutil.Usagef("--ridge %v: must be more than 0 (e.g. 0.001)", f.Ridge)
	}
	if f.Reference != "" {
		if f.PerScore == 0 && f.PerRefCPU == 0 {
			return cmdutil.Usagef("--reference needs --price-per-score or --price-per-reference-cpu-second: it makes scores relative")
		}
		if err := refuseStdin(f.Reference); err != nil {
			return err
		}
		c, err := pricing.ReadCalibrationFile(f.Reference)
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

// readPriceInput reads a file the price commands take, "-" being in.
func readPriceInput(in io.Reader, path string) ([]byte, error) {
	if path == "-" {
		return pricing.ReadInput(in, path)
	}
	return pricing.ReadFile(path)
}

// refuseStdin refuses '-' (stdin) where a file must be named.
func refuseStdin(paths ...string) error {
	if slices.Contains(paths, "-") {
		return cmdutil.Usagef("'-' (stdin) is not accepted here; name a file")
	}
	return nil
}

func warnModel(w io.Writer, m *pricing.Model) {
	for _, s := range m.Warnings {
		fmt.Fprintf(w, "zennet: warning: %s\n", s)
	}
}

func heldOutPct(p *float64) string {
	if p == nil {
		return "-"
	}
	return pricing.Percent(*p)
}

// fit

type priceFitOptions struct {
	IO           cmdutil.IOStreams
	Calibrations []string
	Output       string
	JSON         bool
	Fit          priceFitFlags
}

func newCmdPriceFit(io cmdutil.IOStreams) *cobra.Command {
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
		return cmdutil.Usagef("-o MODEL: say where to write the model")
	}
	if err := refuseStdin(o.Calibrations...); err != nil {
		return err
	}
	return o.Fit.validate()
}

func runPriceFit(o *priceFitOptions) error {
	m, err := pricing.FitFiles(o.Calibrations, o.Fit.prices(), o.Fit.options())
	if err != nil {
		return err
	}
	b, err := pricing.Encode(m)
	if err != nil {
		return err
	}
	doc, err := m.Summary(o.Output)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(o.Output, b, 0o644); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindPriceFit, doc)
	}
	warnModel(o.IO.ErrOut, m)
	cmdutil.Table(o.IO.Out, []string{"FIELD", "VALUE"}, [][]string{
		{"model", doc.Model},
		{"hash", doc.Hash},
		{"steps", strconv.Itoa(doc.Steps)},
		{"components", fmt.Sprintf("%d of %d", doc.Components, len(m.SingularValues))},
		{"variance kept", strconv.FormatFloat(100*doc.VarianceKept, 'f', 4, 64) + "%"},
		{"residual (RMS)", pricing.Percent(doc.RMSResidual)},
		{"held out (RMS)", heldOutPct(doc.RMSHeldOut)},
	})
	return nil
}

// show

type priceShowOptions struct {
	IO    cmdutil.IOStreams
	Model string
	JSON  bool
}

func newCmdPriceShow(io cmdutil.IOStreams) *cobra.Command {
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

func runPriceShow(o *priceShowOptions) error {
	if err := refuseStdin(o.Model); err != nil {
		return err
	}
	m, h, err := pricing.ReadModelFile(o.Model)
	if err != nil {
		return err
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindPriceModel, cmdutil.PriceModelDoc{Hash: h, Model: m})
	}
	counters := make([][]string, 0, len(m.Counters))
	for _, c := range m.Counters {
		counters = append(counters, []string{c.Name, c.Unit, strconv.FormatFloat(c.Rate, 'g', 6, 64),
			strconv.FormatFloat(c.Scale, 'g', 6, 64), strconv.FormatFloat(c.Rate*c.Scale, 'f', 3, 64)})
	}
	if !cmdutil.IsTerminal(o.IO.Out) {
		cmdutil.Table(o.IO.Out, nil, counters)
		return nil
	}
	cmdutil.Table(o.IO.Out, []string{"MODEL", o.Model}, [][]string{
		{"hash", h},
		{"calibrations", strings.Join(m.Calibrations, ", ")},
		{"prices", m.DescribePrices()},
		{"components", fmt.Sprintf("%d of %d, %.4f%% of the variance", len(m.Components), len(m.SingularValues), 100*m.VarianceKept)},
		{"residual (RMS)", pricing.Percent(m.RMSResidual)},
		{"held out (RMS)", heldOutPct(m.RMSHeldOut)},
	})
	fmt.Fprintln(o.IO.Out)
	cmdutil.Table(o.IO.Out, []string{"COUNTER", "UNIT", "RATE (msat/unit)", "SCALE (unit/s)", "AT SCALE (msat/s)"}, counters)
	fmt.Fprintln(o.IO.Out)
	steps := make([][]string, 0, len(m.Residuals))
	for _, r := range m.Residuals {
		steps = append(steps, []string{r.Step, strconv.FormatFloat(r.Value, 'f', 3, 64), strconv.FormatFloat(r.Fitted, 'f', 3, 64),
			pricing.Percent(r.Relative), heldOutPct(r.HeldOut)})
	}
	cmdutil.Table(o.IO.Out, []string{"STEP", "VALUE (msat/s)", "FITTED", "ERROR", "HELD OUT"}, steps)
	warnModel(o.IO.Out, m)
	return nil
}

// quote

type priceQuoteOptions struct {
	IO    cmdutil.IOStreams
	Model string
	Usage string
	JSON  bool
}

func newCmdPriceQuote(io cmdutil.IOStreams) *cobra.Command {
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

// priceQuote: the --json form of a quote.
func runPriceQuote(o *priceQuoteOptions) error {
	if err := refuseStdin(o.Model); err != nil {
		return err
	}
	m, h, err := pricing.ReadModelFile(o.Model)
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
	e, err := m.Bill(u)
	if err != nil {
		return err
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindPriceQuote, cmdutil.PriceQuoteDoc{Model: o.Model, Hash: h, Bill: e})
	}
	if !cmdutil.IsTerminal(o.IO.Out) {
		fmt.Fprintln(o.IO.Out, e.Msat)
		return nil
	}
	rows := make([][]string, 0, len(e.Lines))
	for _, l := range e.Lines {
		rows = append(rows, []string{l.Counter, strconv.FormatUint(l.Delta, 10), l.Unit,
			strconv.FormatFloat(l.Rate, 'g', 6, 64), strconv.FormatFloat(l.Msat, 'f', 3, 64)})
	}
	cmdutil.Table(o.IO.Out, []string{"COUNTER", "DELTA", "UNIT", "RATE", "MSAT"}, rows)
	fmt.Fprintf(o.IO.Out, "\nTotal: %s msat\n", e.Msat)
	if e.Coverage < 0.99 {
		fmt.Fprintf(o.IO.Out, "Only %.1f%% of this usage looks like the calibration's steps; its price rests on the rest of the model's choices.\n", 100*e.Coverage)
	}
	if len(e.Unexercised) > 0 {
		fmt.Fprintf(o.IO.Out, "No calibration step moved %s: billed at 0.\n", strings.Join(e.Unexercised, ", "))
	}
	return nil
}
