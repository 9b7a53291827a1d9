package cli

// Spend control for 'zennet -n': --dry-run (negotiate, print what would be
// rented and what it would cost an hour, rent nothing), the estimate and
// confirmation before renting on a terminal, and --for / --max-spend,
// which release the hosts after a time or once their bills reach a sum.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/renter"
	"github.com/zennet/zennet/session"
)

type spendOptions struct {
	DryRun bool
	For    time.Duration
	// MaxSpend is the most msat the session's hosts may be billed.
	MaxSpend uint64
	Yes      bool
	// ConfirmAbove is the estimate, msat an hour, above which renting on
	// a terminal asks first.
	ConfirmAbove float64
	// terminal says whether the estimate is printed and the prompt asked
	// (stdin and stderr are terminals); set by rentWithSpend.
	terminal bool
}

// DefaultConfirmAbove: 1,000,000 msat (1,000 sat) an hour.
const DefaultConfirmAbove = 1_000_000

func addSpendFlags(cmd *cobra.Command, o *rentOptions) {
	f := cmd.Flags()
	f.BoolVar(&o.Spend.DryRun, "dry-run", false, "ask the providers, print what would be rented at what price and its cost an hour, and rent nothing")
	f.DurationVar(&o.Spend.For, "for", 0, "release the hosts after this long (e.g. 2h; 0: hold until Ctrl-C or 'zennet release')")
	f.Uint64Var(&o.Spend.MaxSpend, "max-spend", 0, "release the hosts once their bills reach this many msat (0: no limit)")
	f.BoolVarP(&o.Spend.Yes, "yes", "y", false, "rent without asking, whatever the estimate")
	f.Float64Var(&o.Spend.ConfirmAbove, "confirm-above", DefaultConfirmAbove, "on a terminal, ask before renting when the estimate is above this many msat an hour")
}

func (s *spendOptions) validate() error {
	if s.For < 0 {
		return cmdutil.Usagef("--for %s: must not be negative (e.g. --for 2h)", s.For)
	}
	if !(s.ConfirmAbove >= 0) {
		return cmdutil.Usagef("--confirm-above must not be negative")
	}
	return nil
}

// rentWithSpend is 'zennet -n': a dry run, or renting after the estimate
// (and the question, on a terminal above --confirm-above).
func rentWithSpend(ctx context.Context, o *rentOptions) error {
	if err := o.Spend.validate(); err != nil {
		return err
	}
	if o.Spend.DryRun {
		return runDryRun(ctx, o)
	}
	o.Spend.terminal = cmdutil.IsTerminal(o.IO.ErrOut) && isTerminalReader(o.IO.In) && !o.JSON
	if o.Spend.terminal {
		est, err := estimate(ctx, o)
		if err != nil {
			if ctx.Err() != nil {
				return cmdutil.ErrInterrupted
			}
			return err
		}
		fmt.Fprintf(o.IO.ErrOut, "zennet: estimate: %s\n", estimateLine(est))
		if err := confirm(o, est); err != nil {
			return err
		}
	}
	if o.Detach && o.holder == nil {
		return runDetached(ctx, o, o.holderArgs)
	}
	return runRent(ctx, o)
}

func estimate(ctx context.Context, o *rentOptions) (renter.Estimate, error) {
	cfg, err := o.config()
	if err != nil {
		return renter.Estimate{}, err
	}
	cfg.Explain = false
	return renter.EstimateRent(ctx, cfg)
}

// estimateLine says an estimate in one sentence.
func estimateLine(e renter.Estimate) string {
	var provs []string
	for _, p := range e.Providers {
		if p.Hosts > 0 {
			provs = append(provs, fmt.Sprintf("%d from %s", p.Hosts, p.Address))
		}
	}
	s := fmt.Sprintf("%s of %d (%s): about %s msat an hour (%s sat) with every CPU busy", cmdutil.Plural(e.Hosts, "host"), e.Count,
		strings.Join(provs, ", "), pay.FormatMsat(uint64(e.MsatPerHour+0.5)), pay.FormatMsat(uint64(e.MsatPerHour/1000+0.5)))
	if len(provs) == 0 {
		s = fmt.Sprintf("no host of %d would be rented", e.Count)
	}
	return s
}

// confirm asks on the terminal before renting above the threshold; --yes
// or an estimate below it rents without asking.
func confirm(o *rentOptions, e renter.Estimate) error {
	if o.Spend.Yes || e.MsatPerHour <= o.Spend.ConfirmAbove || !o.Spend.terminal {
		return nil
	}
	fmt.Fprintf(o.IO.ErrOut, "zennet: that is above --confirm-above %s msat an hour. Rent? [y/N] ", pay.FormatMsat(uint64(o.Spend.ConfirmAbove)))
	line, _ := bufio.NewReader(o.IO.In).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return cmdutil.CauseError{Msg: "not rented (answer y to rent, or pass --yes)", Cause: cmdutil.ErrInterrupted}
}

func runDryRun(ctx context.Context, o *rentOptions) error {
	e, err := estimate(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return cmdutil.ErrInterrupted
		}
		return err
	}
	if o.JSON {
		if err := cmdutil.WriteJSON(o.IO.Out, cmdutil.KindEstimate, e); err != nil {
			return err
		}
	} else {
		rows := make([][]string, 0, len(e.Providers))
		for _, p := range e.Providers {
			price := "flat"
			if p.PricePerWorkMsat > 0 {
				price = strconv.FormatFloat(p.PricePerWorkMsat, 'g', 4, 64)
			}
			rows = append(rows, []string{p.Address, strconv.Itoa(p.Offered), strconv.Itoa(p.Hosts), price, strconv.FormatFloat(p.Score, 'f', 2, 64),
				p.Method, pay.FormatMsat(uint64(p.HostMsatPerHour + 0.5)), p.Note})
		}
		cmdutil.Table(o.IO.Out, []string{"PROVIDER", "OFFERED", "HOSTS", "PRICE msat/work-s", "SCORE", "PAY", "msat/h PER HOST", "NOTE"}, rows)
		fmt.Fprintf(o.IO.ErrOut, "zennet: dry run: %s; nothing rented\n", estimateLine(e))
	}
	need := o.Count
	if o.Min > 0 {
		need = o.Min // --min: the market may give fewer
	}
	if e.Hosts < need {
		return cmdutil.CauseError{Msg: fmt.Sprintf("the offers cover %d of %d hosts: renting would fail", e.Hosts, o.Count), Cause: proto.ErrCapacity}
	}
	return nil
}

// holdContext is ctx, ended after --for or once the session's bills reach
// --max-spend (read from its usage file, which the rental rewrites every
// second). stop ends its watch.
func (s *spendOptions) holdContext(ctx context.Context, o *rentOptions, r *renter.Rental) (context.Context, func()) {
	if s.For <= 0 && s.MaxSpend == 0 {
		return ctx, func() {}
	}
	hctx, cancel := context.WithCancel(ctx)
	say := func(format string, a ...any) {
		if !o.JSON {
			fmt.Fprintf(o.IO.ErrOut, "zennet: "+format+"\n", a...)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var deadline <-chan time.Time
		if s.For > 0 {
			t := time.NewTimer(s.For)
			defer t.Stop()
			deadline = t.C
		}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-deadline:
				say("--for %s is up: releasing the hosts", s.For)
				cancel()
				return
			case <-tick.C:
				if s.MaxSpend == 0 {
					continue
				}
				billed, err := sessionBilled(o.G.ConfigDir, r.SessionID())
				if err != nil {
					continue // being rewritten, or ending: the next tick reads it
				}
				if billed >= s.MaxSpend {
					say("--max-spend %s msat reached (billed %s msat): releasing the hosts", pay.FormatMsat(s.MaxSpend), pay.FormatMsat(billed))
					cancel()
					return
				}
			}
		}
	}()
	return hctx, func() { cancel(); <-done }
}

// sessionBilled is what the session's hosts were billed so far.
func sessionBilled(configDir, id string) (uint64, error) {
	u, err := session.ReadUsage(configDir, id)
	if err != nil {
		return 0, err
	}
	if u == nil {
		return 0, errors.New("no usage yet")
	}
	var sum uint64
	for _, h := range u {
		sum += h.BilledMsat
	}
	return sum, nil
}
