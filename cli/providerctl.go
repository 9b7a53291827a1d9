package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/sshgate"
)

// DefaultProviderDataDir is the data dir 'zennet provide' uses when not
// told otherwise (env ZENNET_DATA_DIR, then XDG_DATA_HOME, then
// ~/.local/share/zennet, each with /provider).

type providerCtlOptions struct {
	IO      cmdutil.IOStreams
	G       *cmdutil.GlobalOptions
	DataDir string
	JSON    bool
}

func newCmdProvider(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &providerCtlOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "provider",
		Short: "Show and control the provider running on this machine",
		Long: `provider talks to a running 'zennet provide' through the control socket in its
data dir (DATA_DIR/control.sock, only for the user that runs it): its status and
leases, and pausing, resuming and ending leases, and draining.`,
		Example: "  zennet provider status\n  zennet provider end zn-39648ac00882ef1e1\n  zennet provider drain --off --json",
		Args:    cmdutil.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.DataDir, "data-dir", cmdutil.DefaultProviderDataDir(), "the provider's data dir (as given to 'zennet provide'; env ZENNET_DATA_DIR)")
	pf.BoolVar(&o.JSON, "json", false, "print the result as JSON")

	cmd.AddCommand(
		&cobra.Command{
			Use:   "status",
			Short: "Show the provider's identity, capacity, leases, earnings and payments",
			Args:  cmdutil.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return o.run(cmd, func(ctx context.Context, c *control.Client) error { return o.status(ctx, c) })
			},
		},
		&cobra.Command{
			Use:   "lease ID",
			Short: "Show one lease",
			Args:  oneLeaseID,
			RunE: func(cmd *cobra.Command, args []string) error {
				return o.run(cmd, func(ctx context.Context, c *control.Client) error {
					l, err := c.Lease(ctx, args[0])
					if err != nil {
						return err
					}
					if o.JSON {
						return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindLease, l)
					}
					printLease(o.IO, l)
					return nil
				})
			},
		},
		o.actionCmd("pause", "Pause a lease's sandbox (runsc pause); the renter's hosts freeze until resumed", "paused"),
		o.actionCmd("resume", "Resume a lease paused with 'zennet provider pause'", "resumed"),
		o.actionCmd("end", "End a lease and destroy its sandbox", "ended"),
		o.drainCmd(),
	)
	return cmd
}

func oneLeaseID(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cmdutil.Usagef("%s takes one lease id (see 'zennet provider status'); got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}

// run dials the provider and runs f until it returns or Ctrl-C.
func (o *providerCtlOptions) run(cmd *cobra.Command, f func(context.Context, *control.Client) error) error {
	ctx := cmd.Context()
	c, err := control.Dial(o.DataDir)
	if err != nil {
		return controlError(err)
	}
	defer c.Close()
	return controlError(f(ctx, c))
}

// controlError maps the control socket's errors to exit codes: no provider
// 3, a malformed lease id 2, a lease in the wrong state 5.
func controlError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, control.ErrNoProvider):
		return cmdutil.CauseError{Msg: err.Error(), Cause: sshgate.ErrUnreachable}
	case errors.Is(err, control.ErrBadRequest):
		return cmdutil.UsageError{Err: err}
	case errors.Is(err, control.ErrConflict):
		return cmdutil.ConflictError{Err: err}
	}
	return err
}

func (o *providerCtlOptions) actionCmd(verb, short, done string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  oneLeaseID,
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			return o.run(cmd, func(ctx context.Context, c *control.Client) error {
				var err error
				switch verb {
				case "pause":
					err = c.Pause(ctx, id)
				case "resume":
					err = c.Resume(ctx, id)
				case "end":
					err = c.End(ctx, id)
				}
				if err != nil {
					return err
				}
				res := cmdutil.LeaseAction{Action: verb, ID: id}
				if l, err := c.Lease(ctx, id); err == nil {
					res.Lease = &l
				} else if !errors.Is(err, control.ErrNotFound) {
					return err
				}
				if o.JSON {
					return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindLeaseAction, res)
				}
				fmt.Fprintf(o.IO.Out, "%s %s\n", done, id)
				return nil
			})
		},
	}
}

func (o *providerCtlOptions) drainCmd() *cobra.Command {
	var off bool
	cmd := &cobra.Command{
		Use:   "drain",
		Short: "Take no new leases (current ones go on); --off takes new leases again",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, func(ctx context.Context, c *control.Client) error {
				if err := c.Drain(ctx, !off); err != nil {
					return err
				}
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				if o.JSON {
					return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindProviderDrain, cmdutil.DrainDoc{Draining: st.Draining, Leases: len(st.Leases)})
				}
				if st.Draining {
					fmt.Fprintf(o.IO.Out, "draining: taking no new leases; current leases go on: %d\n", len(st.Leases))
				} else {
					fmt.Fprintln(o.IO.Out, "not draining: taking new leases")
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&off, "off", false, "stop draining: take new leases again")
	return cmd
}

func (o *providerCtlOptions) status(ctx context.Context, c *control.Client) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindProviderStatus, st)
	}
	id, cp, u := st.Identity, st.Capacity, st.Used
	draining := "no"
	if st.Draining {
		draining = "yes: taking no new leases"
	}
	since := ""
	if !id.Started.IsZero() {
		since = fmt.Sprintf(" (up %s)", st.Time.Sub(id.Started).Round(time.Second))
	}
	cmdutil.Table(o.IO.Out, []string{"PROVIDER", ""}, [][]string{
		{"host key", id.Fingerprint},
		{"address", id.Address},
		{"data dir", id.DataDir},
		{"started", id.Started.Local().Format(time.DateTime) + since},
		{"version", id.Version},
		{"leases", fmt.Sprintf("%d of %d", u.Leases, cp.Leases)},
		{"memory", fmt.Sprintf("%s of %s", cmdutil.FormatSize(u.MemoryBytes), cmdutil.FormatSize(cp.MemoryBytes))},
		{"cpus", fmt.Sprintf("%g of %g", u.CPUs, cp.CPUs)},
		{"disk", fmt.Sprintf("%s of %s", cmdutil.FormatSize(u.DiskBytes), cmdutil.FormatSize(cp.DiskBytes))},
		{"draining", draining},
		{"earned", fmt.Sprintf("%d msat this session, %d msat today", st.Earnings.SessionMsat, st.Earnings.TodayMsat)},
		{"payment failures", strconv.FormatUint(st.PaymentFailures, 10)},
	})
	if m := st.Market; m != nil {
		relay := ""
		if m.Relay {
			relay = "; relaying for others"
		}
		fmt.Fprintln(o.IO.Out)
		cmdutil.Table(o.IO.Out, []string{"MARKET", ""}, [][]string{
			{"announced as", m.Announced},
			{"reachability", m.Reachability + relay},
			{"peers", fmt.Sprintf("%d connected, %d on the topic", m.Peers, m.TopicPeers)},
			{"providers known", strconv.Itoa(m.Known)},
			{"announcements", fmt.Sprintf("%d accepted, %d not new, %d throttled, %d rejected", m.Accepted, m.Ignored, m.Throttled, m.Rejected)},
		})
	}
	fmt.Fprintln(o.IO.Out)
	rows := make([][]string, 0, len(st.Leases))
	for _, l := range st.Leases {
		rows = append(rows, []string{l.ID, l.Renter, string(l.State), cmdutil.FormatSize(l.Limits.MemoryBytes),
			strconv.FormatFloat(l.Limits.CPUs, 'g', -1, 64), strconv.FormatFloat(float64(l.CPUNs)/1e9, 'f', 2, 64),
			cmdutil.FormatSize(int64(l.MemoryBytes)), cmdutil.FormatSize(int64(l.NetInBytes)), cmdutil.FormatSize(int64(l.NetOutBytes)),
			strconv.FormatUint(l.EarnedMsat, 10), strconv.FormatUint(l.DueMsat, 10)})
	}
	cmdutil.Table(o.IO.Out, []string{"LEASE", "RENTER", "STATE", "MEM", "CPUS", "CPU s", "MEM USED", "NET IN", "NET OUT", "EARNED msat", "DUE msat"}, rows)
	if len(st.Leases) == 0 && cmdutil.IsTerminal(o.IO.Out) {
		fmt.Fprintln(o.IO.Out, "no leases")
	}
	return nil
}

func printLease(io cmdutil.IOStreams, l control.LeaseStatus) {
	state := string(l.State)
	if l.StateReason != "" {
		state += ": " + l.StateReason
	}
	last := "none yet"
	if !l.LastReport.IsZero() {
		last = l.LastReport.Local().Format(time.DateTime)
	}
	limits := []string{cmdutil.FormatSize(l.Limits.MemoryBytes) + " memory", strconv.FormatFloat(l.Limits.CPUs, 'g', -1, 64) + " cpus"}
	if l.Limits.DiskBytes > 0 {
		limits = append(limits, cmdutil.FormatSize(l.Limits.DiskBytes)+" disk")
	}
	cmdutil.Table(io.Out, []string{"LEASE", ""}, [][]string{
		{"id", l.ID},
		{"renter", l.Renter},
		{"started", l.Started.Local().Format(time.DateTime)},
		{"limits", strings.Join(limits, ", ")},
		{"state", state},
		{"payment", l.Method},
		{"cpu seconds", strconv.FormatFloat(float64(l.CPUNs)/1e9, 'f', 2, 64)},
		{"memory", cmdutil.FormatSize(int64(l.MemoryBytes))},
		{"network in", cmdutil.FormatSize(int64(l.NetInBytes))},
		{"network out", cmdutil.FormatSize(int64(l.NetOutBytes))},
		{"billed msat", strconv.FormatUint(l.BilledMsat, 10)},
		{"earned msat", strconv.FormatUint(l.EarnedMsat, 10)},
		{"due msat", strconv.FormatUint(l.DueMsat, 10)},
		{"last report", last},
	})
}
