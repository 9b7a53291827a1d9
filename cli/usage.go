package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/session"
)

type usageOptions struct {
	IO       cmdutil.IOStreams
	G        *cmdutil.GlobalOptions
	JSON     bool
	Watch    bool
	Interval time.Duration
}

func newCmdUsage(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &usageOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show the metered usage of the running sessions' hosts",
		Long: `usage prints, for every host of every running session, the latest usage report
its provider signed and this machine checked: CPU time, memory integrated over
time, peak memory, network and I/O bytes, what the host has billed and been
paid so far (msat), and how many reports were accepted or rejected.

--watch prints it again every --interval until Ctrl-C: on a terminal in place,
elsewhere one table after another (with --json, a stream: one document a
line).`,
		Example: "  zennet usage\n  zennet usage --watch\n  zennet usage --json --jq '.data[] | [.name, .billed_msat] | @tsv'",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !o.Watch {
				return runUsage(o)
			}
			if o.Interval < 100*time.Millisecond {
				return cmdutil.Usagef("--interval must be at least 100ms")
			}
			return watchUsage(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the usage as JSON, with every counter")
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "print it again every --interval until Ctrl-C")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "with --watch, how often")
	return cmd
}

// watchUsage prints the usage every o.Interval until ctx ends (Ctrl-C),
// which is a clean end.
func watchUsage(ctx context.Context, o *usageOptions) error {
	redraw := !o.JSON && cmdutil.IsTerminal(o.IO.Out)
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		if redraw {
			// Home and clear, then the table: it stays in place.
			fmt.Fprint(o.IO.Out, "\x1b[H\x1b[2J")
			fmt.Fprintf(o.IO.Out, "zennet usage, every %s (Ctrl-C stops): %s\n\n", o.Interval, time.Now().Format(time.TimeOnly))
		}
		if err := printUsage(o, true); err != nil {
			return err
		}
		if !redraw && !o.JSON {
			fmt.Fprintln(o.IO.Out)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func runUsage(o *usageOptions) error { return printUsage(o, false) }

// printUsage prints the usage once; with --json one document, a line of
// the stream of documents when watching.
func printUsage(o *usageOptions, watching bool) error {
	live, err := session.Live(o.G.ConfigDir)
	if err != nil {
		return err
	}
	var all []session.Usage
	for _, r := range live {
		u, err := session.ReadUsage(o.G.ConfigDir, r.ID)
		if err != nil {
			return fmt.Errorf("read usage of session %s: %w", r.ID, err)
		}
		all = append(all, u...)
	}
	if o.JSON {
		if all == nil {
			all = []session.Usage{}
		}
		if watching {
			return cmdutil.WriteJSONLine(o.IO.Out, cmdutil.KindUsage, all)
		}
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindUsage, all)
	}
	rows := make([][]string, 0, len(all))
	for _, u := range all {
		c := u.Counters
		status := "ok"
		if u.Rejected > 0 {
			status = fmt.Sprintf("%d rejected: %s", u.Rejected, u.LastRejection)
		}
		rows = append(rows, []string{u.Name, strconv.Itoa(u.Accepted),
			strconv.FormatFloat(float64(c["cpu_ns"])/1e9, 'f', 2, 64),
			strconv.FormatFloat(float64(c["memory_mib_ms"])/1e3, 'f', 1, 64),
			cmdutil.FormatSize(int64(c["memory_peak_bytes"])),
			cmdutil.FormatSize(int64(c["net_in_bytes"])), cmdutil.FormatSize(int64(c["net_out_bytes"])),
			cmdutil.FormatSize(int64(c["io_read_bytes"])), cmdutil.FormatSize(int64(c["io_write_bytes"])),
			pay.FormatMsat(u.BilledMsat), pay.FormatMsat(u.PaidMsat), status})
	}
	cmdutil.Table(o.IO.Out, []string{"HOST", "REPORTS", "CPU s", "MEM MiB·s", "PEAK", "NET IN", "NET OUT", "READ", "WRITE", "BILLED msat", "PAID msat", "STATUS"}, rows)
	if len(all) == 0 && cmdutil.IsTerminal(o.IO.ErrOut) {
		fmt.Fprintln(o.IO.ErrOut, "zennet: no running sessions")
	}
	return nil
}
