package cli

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/session"
)

type releaseOptions struct {
	IO      IOStreams
	G       *globalOptions
	JSON    bool
	Timeout time.Duration
}

func newCmdRelease(io IOStreams, g *globalOptions) *cobra.Command {
	o := &releaseOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "release [SESSION...]",
		Short: "End the leases of running zennet sessions (all of them by default)",
		Long: `release asks each running 'zennet -n' session (all, or the ones named) to end
its leases, as Ctrl-C would, and waits until each has settled and exited.`,
		RunE: func(cmd *cobra.Command, args []string) error { return runRelease(o, args) },
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the released sessions as JSON")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", time.Minute, "how long to wait for the sessions to end")
	return cmd
}

func runRelease(o *releaseOptions, ids []string) error {
	live, err := session.Live(o.G.ConfigDir)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var targets []session.Record
	for _, r := range live {
		if len(ids) == 0 || want[r.ID] {
			targets = append(targets, r)
			delete(want, r.ID)
		}
	}
	for id := range want {
		return usagef("no running session %q; 'zennet release' with no arguments ends them all", id)
	}
	for _, r := range targets {
		if err := syscall.Kill(r.Pid, syscall.SIGTERM); err != nil {
			return fmt.Errorf("signal session %s (pid %d): %w", r.ID, r.Pid, err)
		}
	}
	deadline := time.Now().Add(o.Timeout)
	out := []releasedSession{}
	for _, r := range targets {
		for {
			if _, err := os.Stat(session.Dir(o.G.ConfigDir, r.ID)); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("session %s (pid %d) did not end within %s", r.ID, r.Pid, o.Timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
		out = append(out, releasedSession{Session: r.ID, Pid: r.Pid, Hosts: len(r.Hosts)})
	}
	if o.JSON {
		return writeJSON(o.IO.Out, KindReleased, out)
	}
	for _, r := range out {
		fmt.Fprintf(o.IO.ErrOut, "zennet: released session %s (%s)\n", r.Session, plural(r.Hosts, "host"))
	}
	if len(out) == 0 {
		fmt.Fprintln(o.IO.ErrOut, "zennet: no running sessions")
	}
	return nil
}
