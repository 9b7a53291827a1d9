package pricecmd

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/pricing"
)

type priceFairnessOptions struct {
	IO    cmdutil.IOStreams
	Input string
	JSON  bool
	Check bool
	Fit   priceFitFlags
}

func newCmdPriceFairness(io cmdutil.IOStreams) *cobra.Command {
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
	if o.Check {
		notMet = rep.Summary.Check()
	}
	if o.JSON {
		return errors.Join(cmdutil.WriteJSON(o.IO.Out, cmdutil.KindPriceFairness, rep), notMet)
	}
	if cmdutil.IsTerminal(o.IO.Out) {
		cmdutil.Table(o.IO.Out, fairnessProviderHeader, fairnessProviderRows(rep, nil))
		fmt.Fprintln(o.IO.Out)
	}
	cmdutil.Table(o.IO.Out, fairnessJobHeader, fairnessJobRows(rep, nil))
	if cmdutil.IsTerminal(o.IO.Out) {
		fmt.Fprintf(o.IO.Out, "\nGoal (model CV ≤ %s, and ≤ 1/3 of CPU-second CV): %s; largest model CV %s.\n",
			pricing.Percent(pricing.GoalCV), verdict(rep.Summary), pricing.Percent(rep.Summary.MaxModelCV))
	}
	warnFairness(o.IO.ErrOut, rep)
	return notMet
}

// The columns of a fairness report's tables, to which a command may add.
var (
	fairnessProviderHeader = []string{"PROVIDER", "COMPONENTS", "VARIANCE KEPT", "RESIDUAL", "HELD OUT"}
	fairnessJobHeader      = []string{"JOB", "MODEL CV", "CPU-S CV", "WALL-S CV", "COVERAGE"}
)

// fairnessProviderRows is a row per provider's fit; more, if not nil,
// adds cells to provider i's.
func fairnessProviderRows(rep *pricing.FairnessReport, more func(i int) []string) [][]string {
	rows := make([][]string, 0, len(rep.Providers))
	for i, p := range rep.Providers {
		row := []string{p.Name, strconv.Itoa(p.Components), strconv.FormatFloat(100*p.VarianceKept, 'f', 4, 64) + "%",
			pricing.Percent(p.RMSResidual), heldOutPct(p.RMSHeldOut)}
		if more != nil {
			row = append(row, more(i)...)
		}
		rows = append(rows, row)
	}
	return rows
}

// fairnessJobRows is a row per job, then the means; more, if not nil,
// adds cells to each job's.
func fairnessJobRows(rep *pricing.FairnessReport, more func(j pricing.JobFairness) []string) [][]string {
	rows := make([][]string, 0, len(rep.Jobs)+1)
	for _, j := range rep.Jobs {
		row := []string{j.Name, pricing.Percent(j.ModelCV), pricing.Percent(j.CPUCV), pricing.Percent(j.WallCV), pricing.Percent(j.Coverage)}
		if more != nil {
			row = append(row, more(j)...)
		}
		rows = append(rows, row)
	}
	s := rep.Summary
	return append(rows, []string{"mean", pricing.Percent(s.MeanModelCV), pricing.Percent(s.MeanCPUCV), pricing.Percent(s.MeanWallCV), ""})
}

func verdict(s pricing.FairnessSummary) string {
	if s.Met {
		return "met"
	}
	return "NOT met"
}

func warnFairness(w io.Writer, rep *pricing.FairnessReport) {
	for _, p := range rep.Providers {
		for _, msg := range p.Warnings {
			fmt.Fprintf(w, "zennet: warning: provider %s: %s\n", p.Name, msg)
		}
	}
}
