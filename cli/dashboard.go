package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/tui"
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
			c, err := control.Dial(o.DataDir)
			if err != nil {
				return controlError(err)
			}
			defer c.Close()
			// Main catches SIGINT and SIGTERM; a hang-up (the terminal
			// closed) would kill the dashboard outright, so it ends it
			// cleanly instead, as q does.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGHUP)
			defer stop()
			return runDashboard(ctx, o.IO, c, o.Interval)
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

// runDashboard runs the dashboard of src on the terminal until the user
// quits or ctx ends. 'zennet provide --tui' runs it on the provider
// in-process.
func runDashboard(ctx context.Context, io cmdutil.IOStreams, src tui.Source, interval time.Duration) error {
	m := tui.New(src, tui.Options{Interval: interval, Renderer: lipgloss.NewRenderer(io.Out), NoColor: tui.NoColorEnv()})
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx), tea.WithInput(io.In), tea.WithOutput(io.Out))
	_, err := p.Run()
	switch {
	case errors.Is(err, tea.ErrInterrupted):
		return nil // SIGINT: as q
	case errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil:
		return nil // SIGTERM, SIGHUP, or the end of the provider that runs it
	}
	return err
}
