package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/renter"
)

type statusOptions struct {
	IO   cmdutil.IOStreams
	G    *cmdutil.GlobalOptions
	JSON bool
}

func newCmdStatus(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &statusOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running sessions: hosts, providers, age, spend and rate",
		Long: `status prints a line per running 'zennet -n' (or 'zennet run') session of this
config dir: its id, its hosts and their providers, how long it has run, what
its hosts were billed and paid so far (msat), and what the hosts still running
cost an hour (each host's bill over the time its reports cover, summed).
A session held in the background ('zennet -n -d') says so after its hosts
("(detached)"); one whose holder died is listed too, with its log: its providers ended
its leases when the holder vanished, and its ledger keeps what was paid;
'zennet release ID' forgets it.`,
		Example: `  zennet status
  zennet status --json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runStatus(o) },
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the sessions as JSON")
	return cmd
}

func runStatus(o *statusOptions) error {
	st, err := renter.Status(o.G.ConfigDir, time.Now())
	if err != nil {
		return err
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindStatus, st)
	}
	rows := make([][]string, 0, len(st))
	for _, s := range st {
		hosts := strings.Join(s.Hosts, ",")
		switch {
		case s.HolderDied:
			hosts += " (holder died)"
		case !s.Ready:
			hosts += " (starting)"
		case s.Detached:
			hosts += " (detached)"
		}
		rows = append(rows, []string{s.ID, strconv.Itoa(s.Pid), hosts, strings.Join(s.Providers, ","),
			(time.Duration(s.AgeSeconds) * time.Second).String(), pay.FormatMsat(s.BilledMsat), pay.FormatMsat(s.PaidMsat),
			strconv.FormatFloat(s.RateMsatPerHour, 'f', 0, 64)})
	}
	cmdutil.Table(o.IO.Out, []string{"SESSION", "PID", "HOSTS", "PROVIDERS", "AGE", "BILLED msat", "PAID msat", "RATE msat/h"}, rows)
	if len(st) == 0 && cmdutil.IsTerminal(o.IO.ErrOut) {
		fmt.Fprintln(o.IO.ErrOut, "zennet: no running sessions")
	}
	for _, s := range st {
		if s.HolderDied {
			fmt.Fprintf(o.IO.ErrOut, "zennet: the holder of session %s (pid %d) died: its providers end its leases (renter gone) and its ledger keeps what was paid; its log: %s ('zennet release %s' forgets it)\n",
				s.ID, s.Pid, s.Log, s.ID)
		}
	}
	return nil
}
