package cli

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/control"
)

type dashboardOptions struct {
	IO       cmdutil.IOStreams
	G        *cmdutil.GlobalOptions
	DataDir  string
	Interval time.Duration
}

func newCmdDashboard(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &dashboardOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Watch and control the provider running on this machine, in the terminal",
		Long: `dashboard shows the provider running on a data dir live: its identity, capacity
in use, earnings, leases (CPU, memory, network, state, earnings), the latest
payments and log lines. Keys select a lease and pause, resume or end it, or
drain the provider (each asks to confirm); ? shows them all, q quits. The
provider keeps running when the dashboard quits. NO_COLOR turns colours off.`,
		Example: "  zennet dashboard\n  zennet dashboard --data-dir /srv/zennet",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Interval < 100*time.Millisecond {
				return cmdutil.Usagef("--interval must be at least 100ms")
			}
			if !cmdutil.IsTerminal(o.IO.Out) || !isTerminalReader(o.IO.In) {
				return cmdutil.Usagef("zennet dashboard needs a terminal; in scripts use 'zennet provider status --json'")
			}
			// The provider must be there (and its errors are this
			// command's); the dashboard's own binary then shows it.
			c, err := control.Dial(o.DataDir)
			if err != nil {
				return controlError(err)
			}
			c.Close()
			// Main catches SIGINT and SIGTERM; a hang-up (the terminal
			// closed) would kill this process outright, so it ends the
			// dashboard cleanly instead, as q does.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGHUP)
			defer stop()
			return runDashboard(ctx, o.IO, o.DataDir, o.Interval)
		},
	}
	cmd.Flags().StringVar(&o.DataDir, "data-dir", cmdutil.DefaultProviderDataDir(), "the provider's data dir (as given to 'zennet provide'; env ZENNET_DATA_DIR)")
	cmd.Flags().DurationVar(&o.Interval, "interval", time.Second, "how often to ask the provider for its status")
	return cmd
}

func isTerminalReader(r any) bool {
	f, ok := r.(*os.File)
	return ok && cmdutil.IsTerminal(f)
}
