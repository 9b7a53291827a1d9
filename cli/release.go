package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/renter"
)

type releaseOptions struct {
	IO      cmdutil.IOStreams
	G       *cmdutil.GlobalOptions
	JSON    bool
	Timeout time.Duration
}

func newCmdRelease(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &releaseOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "release [SESSION...]",
		Short: "End the leases of running zennet sessions (all of them by default)",
		Long: `release asks each running 'zennet -n' session (all, or the ones named) to end
its leases, as Ctrl-C would, and waits until each has settled and exited.
A session detached with -d whose holder died ('zennet status' says so) is
forgotten: its providers ended its leases when the holder vanished, and its
ledger keeps what was paid.`,
		Example: `  zennet release
  zennet release 0123456789ab`,
		RunE: func(cmd *cobra.Command, args []string) error { return runRelease(cmd.Context(), o, args) },
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the released sessions as JSON")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", time.Minute, "how long to wait for the sessions to end")
	return cmd
}

func runRelease(ctx context.Context, o *releaseOptions, ids []string) error {
	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("it did not end within --timeout %s", o.Timeout))
	defer cancel()
	released, err := renter.ReleaseSessions(ctx, o.G.ConfigDir, ids)
	if errors.Is(err, renter.ErrNoSession) {
		return cmdutil.Usagef("%v; 'zennet release' with no arguments ends them all", err)
	}
	if err != nil {
		return err
	}
	out := []cmdutil.ReleasedSession{}
	for _, r := range released {
		out = append(out, cmdutil.ReleasedSession{Session: r.ID, Pid: r.Pid, Hosts: len(r.Hosts), HolderDied: r.HolderDied})
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindReleased, out)
	}
	for _, r := range out {
		if r.HolderDied {
			fmt.Fprintf(o.IO.ErrOut, "zennet: forgot session %s: its holder (pid %d) had died, and its providers ended its %s (renter gone)\n",
				r.Session, r.Pid, cmdutil.Plural(r.Hosts, "host"))
			continue
		}
		fmt.Fprintf(o.IO.ErrOut, "zennet: released session %s (%s)\n", r.Session, cmdutil.Plural(r.Hosts, "host"))
	}
	if len(out) == 0 {
		fmt.Fprintln(o.IO.ErrOut, "zennet: no running sessions")
	}
	return nil
}
