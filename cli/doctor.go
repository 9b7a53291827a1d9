package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/internal/doctor"
)

type doctorOptions struct {
	IO        cmdutil.IOStreams
	Sandboxes cmdutil.Sandboxes
	LND       lndFlags
	JSON      bool
}

func newCmdDoctor(io cmdutil.IOStreams) *cobra.Command {
	o := &doctorOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this machine can provide hosts, and say how to fix what it lacks",
		Long: `doctor checks what 'zennet provide' needs of this machine, a line each: root,
runsc (found and runnable), the image, the static zennet bound into sandboxes,
cgroup v1 controllers, network namespaces and /dev/net/tun, and, when an lnd
node is configured (--lnddir, --rpcserver or their ZENNET_LND* variables),
that it answers. Each failure comes with its fix. It changes nothing, and
exits 1 when a check fails.`,
		Example: `  sudo zennet doctor
  zennet doctor --lnddir ~/.lnd --network testnet
  zennet doctor --json --jq '.data[] | select(.ok | not) | .fix'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runDoctor(cmd.Context(), o) },
	}
	o.Sandboxes.Register(cmd.Flags(), "static zennet binary bound into sandboxes (default: this one)")
	o.LND.register(cmd.Flags())
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the checks as JSON")
	return cmd
}

func runDoctor(ctx context.Context, o *doctorOptions) error {
	checks := []doctor.Check{
		doctor.Root(),
		doctor.Runsc(ctx, o.Sandboxes.Runsc, cmdutil.DefaultCacheDir()),
		doctor.Image(o.Sandboxes.Image),
		agentCheck(o.Sandboxes.AgentBinary),
		doctor.Cgroups(""),
		doctor.Netns(),
		lndCheck(ctx, &o.LND),
	}
	if o.JSON {
		if err := cmdutil.WriteJSON(o.IO.Out, cmdutil.KindDoctor, checks); err != nil {
			return err
		}
	} else {
		rows := make([][]string, 0, len(checks))
		for _, c := range checks {
			status, fix := "ok", ""
			switch {
			case c.Skipped:
				status = "skip"
			case !c.OK:
				status, fix = "FAIL", "fix: "+c.Fix
			}
			rows = append(rows, []string{status, c.Name, c.Detail, fix})
		}
		cmdutil.Table(o.IO.Out, []string{"", "CHECK", "FOUND", ""}, rows)
	}
	if doctor.Failed(checks) {
		n := 0
		for _, c := range checks {
			if !c.OK && !c.Skipped {
				n++
			}
		}
		return fmt.Errorf("%s failed: this machine cannot provide hosts until %s fixed", cmdutil.Plural(n, "check"), map[bool]string{true: "it is", false: "they are"}[n == 1])
	}
	return nil
}

// agentCheck checks the static zennet bound into every sandbox.
func agentCheck(flag string) doctor.Check {
	path, err := cmdutil.AgentBinary(flag)
	if err != nil {
		return doctor.Check{Name: "agent", Detail: err.Error(), Fix: "build zennet statically ('make build'), or pass --agent-binary (env ZENNET_AGENT_BINARY)"}
	}
	return doctor.Check{Name: "agent", OK: true, Detail: path}
}

// lndCheck dials the configured lnd node, if any.
func lndCheck(ctx context.Context, l *lndFlags) doctor.Check {
	if !l.set() {
		return doctor.Check{Name: "lnd", Skipped: true, Detail: "no lnd node configured (--lnddir, --rpcserver): Lightning is optional"}
	}
	n, err := l.dial(ctx)
	if err != nil {
		var ue cmdutil.UsageError
		fix := "start lnd, or point --lnddir, --rpcserver, --tlscertpath, --macaroonpath and --network at it"
		if errors.As(err, &ue) {
			fix = "pass --network mainnet, testnet, signet, regtest or simnet"
		}
		return doctor.Check{Name: "lnd", Detail: err.Error(), Fix: fix}
	}
	defer n.Close()
	return doctor.Check{Name: "lnd", OK: true, Detail: "the lnd node " + n.Pubkey() + " answers"}
}
