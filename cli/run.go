package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/provider"
	"github.com/zennet/zennet/renter"
	"github.com/zennet/zennet/taskrun"
)

type runOptions struct {
	rent              rentOptions
	Tasks             int
	Replicas          int
	Results           string
	AllowDisagreement bool
	Command           []string
}

const runExample = `  zennet run -n 4 --provider a.example:2222 -- sh -c 'echo task $ZENNET_TASK of $ZENNET_TASKS; hostname > out.txt'
  zennet run -n 2 --replicas 2 --provider a.example:2222 --provider b.example:2222 -- sh -c 'seq 1000000 | sha256sum'
  zennet run -n 8 -m 1G --results ./out --json -- ./simulate.sh`

func newCmdRun(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &runOptions{rent: rentOptions{IO: io, G: g}}
	cmd := &cobra.Command{
		Use:   "run -n K [rent flags] [--replicas R] [--results DIR] -- CMD [ARGS...]",
		Short: "Run a command on K rented hosts, collect its output and files, release them",
		Long: `run rents K hosts (K*R with --replicas R) exactly as 'zennet -n' does, runs
CMD on every host over ssh, streams each host's output prefixed with its name,
copies back what the command leaves in its working directory
` + taskrun.RemoteResultsDir + `, releases the hosts and prints a summary.

The command runs with ZENNET_TASK (1..K), ZENNET_TASKS (K), ZENNET_REPLICA
(1..R) and ZENNET_REPLICAS (R) in its environment. CMD and ARGS are quoted for
the remote shell: to run a pipeline, pass sh -c '...'.

Results go to --results DIR (default ./zennet-results-SESSION): DIR/TASK/ holds
the task's files (DIR/TASK-rREPLICA/ with --replicas), DIR/TASK.stdout,
DIR/TASK.stderr and DIR/TASK.exit its output and exit code, DIR/run.json the
run document.

With --replicas R each task runs on R hosts, of different providers where
possible; replicas whose stdout or files differ are reported, and the task
counts as failed unless --allow-disagreement.

The exit code is 0 when every task exited 0 (and its replicas agree), 1
otherwise; Ctrl-C stops the commands, releases the hosts and exits 1.`,
		Example: runExample,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmdutil.Usagef("no command given: put it after --, e.g.\n%s", runExample)
			}
			if cmd.ArgsLenAtDash() != 0 {
				return cmdutil.Usagef("the command must follow --, e.g. zennet run -n 2 --provider HOST:PORT -- %s", strings.Join(args, " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Command = args
			if err := o.Validate(); err != nil {
				return err
			}
			return runRun(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	// Everything after CMD belongs to CMD, even without --.
	f.SetInterspersed(false)
	registerRentFlags(f, &o.rent)
	f.Lookup("count").Usage = "number of tasks (each on its own host; K*R hosts with --replicas R)"
	f.Lookup("json").Usage = "print a JSON Lines stream: events, the run, the receipts, a document a line (the commands' output goes to stderr)"
	f.IntVar(&o.Replicas, "replicas", 1, "run each task on this many hosts, of different providers where possible, and compare their output")
	f.StringVar(&o.Results, "results", "", "directory for the tasks' output and files (default ./zennet-results-SESSION)")
	f.BoolVar(&o.AllowDisagreement, "allow-disagreement", false, "report replicas that disagree without failing the run")
	return cmd
}

// registerRentFlags registers the flags of renting hosts, shared by renting
// and zennet run (which has no --min: a run needs all its hosts).
func registerRentFlags(f *pflag.FlagSet, o *rentOptions) {
	f.IntVarP(&o.Count, "count", "n", 1, "number of hosts")
	f.StringVarP(&o.Memory, "memory", "m", "512M", "memory per host (K, M, G, T: powers of 1024)")
	f.Float64Var(&o.CPUs, "cpus", 1, "CPU quota per host, in cores")
	f.StringVar(&o.Disk, "disk", "", "disk per host (default: the provider's, typically 4G)")
	f.DurationVar(&o.Interval, "interval", proto.DefaultInterval*time.Second, "how often providers report usage (1s to 60s)")
	f.StringSliceVar(&o.Providers, "provider", splitList(os.Getenv("ZENNET_PROVIDERS")), "provider address HOST:PORT (repeatable; env ZENNET_PROVIDERS)")
	f.StringSliceVar(&o.ProviderKeys, "provider-key", nil, "the host key a provider must present: its fingerprint (SHA256:..., as 'zennet provider status' prints it) or public key (repeatable; default: trust on first use, said and pinned in known_providers)")
	f.StringVarP(&o.Identity, "identity", "i", "", "SSH private key (default ~/.ssh/id_ed25519, else one zennet creates)")
	f.BoolVar(&o.JSON, "json", false, "print a JSON Lines stream: the hosts, then events, then the receipts, a document a line")
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "give up leasing after this long")
	f.StringSliceVar(&o.Pay, "pay", []string{pay.DefaultMethod}, "payment methods, preferred first: embedded (no setup), lightning (your lnd: see --lnddir)")
	o.LND.register(f)
	// The market's flags, but --min: a run needs all its hosts.
	f.StringSliceVar(&o.Seeds, "seed", splitList(os.Getenv("ZENNET_SEEDS")), "where to learn the market's providers: HOST:PORT of a provider's SSH gateway, or a market node's multiaddr /ip4/…/tcp/…/p2p/ID (repeatable; env ZENNET_SEEDS); without --provider, hosts come from the market")
	f.BoolVar(&o.Explain, "explain", false, "say, per provider of the market, why it was chosen or not")
	f.Float64Var(&o.MaxPrice, "max-price", 0, "most msat to pay for the work the reference machine does in a CPU-second (0: any)")
	f.Float64Var(&o.Bid, "bid", 0, "counter-offer: propose this many msat for the reference machine's CPU-second of work to providers that ask more (default: --max-price)")
	f.Float64Var(&o.MinScore, "min-score", 0, "least benchmark score relative to the reference machine (0: any, uncalibrated providers too)")
	f.Float64Var(&o.MinReputation, "min-reputation", 0, "least reputation, 0 to 1, in your own record of providers (a provider never met is 0.5)")
	f.UintVar(&o.PowBits, "pow-bits", provider.DefaultPowBits, "proof of work to ask of providers' announcements, in bits")
	f.StringVar(&o.Subnet, "subnet", cmdutil.EnvOr(renter.SubnetEnv, ""), "the session network's subnet, a /16 to /29 of 10.0.0.0/8 (default: a random /16 of "+cluster.DefaultPool.String()+")")
	f.IntVar(&o.Probe, "probe", 0, "rent this many hosts more, run a short benchmark step on each and keep the -n most efficient (work per second over price per work)")
	f.BoolVar(&o.NoSpotCheck, "no-spot-check", false, "do not spot-check providers' calibrations (by default, while the hosts are held, one host of each provider replays a step of each workload class of its calibration in turn; a provider whose hosts do less work per msat billed than it claims is marked, recorded in your reputation book and dropped)")
	f.StringSliceVar(&o.TrustCalibration, "trust-calibration", nil, "take a provider's calibration only when signed by its own host key or by this benchmarker's key: fingerprint (SHA256:...) or public key; 'self' alone takes only the provider's own (repeatable; default: any signer, which --explain shows)")
}

// Validate checks the options; the rent is for Tasks*Replicas hosts.
func (o *runOptions) Validate() error {
	o.Tasks = o.rent.Count
	if o.Tasks < 1 {
		return cmdutil.Usagef("-n %d: the number of tasks must be at least 1", o.Tasks)
	}
	if o.Replicas < 1 {
		return cmdutil.Usagef("--replicas %d: must be at least 1", o.Replicas)
	}
	if o.Tasks > proto.MaxHostsPerDemand/o.Replicas {
		return cmdutil.Usagef("-n %d --replicas %d: %d hosts in all, more than %d", o.Tasks, o.Replicas, o.Tasks*o.Replicas, proto.MaxHostsPerDemand)
	}
	o.rent.Count = o.Tasks * o.Replicas
	if err := o.rent.Validate(); err != nil {
		return err
	}
	if o.Results != "" {
		if err := taskrun.PrepareResultsDir(o.Results); err != nil {
			return cmdutil.UsageError{Err: err}
		}
	}
	return nil
}

func runRun(ctx context.Context, o *runOptions) error {
	cfg, err := o.rent.config()
	if err != nil {
		return err
	}
	out := o.rent.IO.Out
	if o.rent.JSON {
		out = o.rent.IO.ErrOut // stdout carries the JSON documents only
	}
	if o.rent.JSON {
		// zennet run has no hosts document: its stream starts with the
		// events, and the run and the receipts follow.
		o.rent.startStream("", nil)
	}
	run, err := taskrun.Rent(ctx, taskrun.Config{Rent: cfg, Tasks: o.Tasks, Replicas: o.Replicas, Command: o.Command,
		ResultsDir: o.Results, AllowDisagreement: o.AllowDisagreement, Stdout: out, Stderr: o.rent.IO.ErrOut})
	if err != nil {
		if ctx.Err() != nil {
			return cmdutil.ErrInterrupted
		}
		if errors.Is(err, taskrun.ErrResultsDir) {
			return cmdutil.UsageError{Err: err}
		}
		return err
	}
	sessions, dir := run.Sessions(), run.Dir()
	if run.Shared > 0 {
		fmt.Fprintf(o.rent.IO.ErrOut, "zennet: the replicas of %s share a provider: too few providers had hosts\n", cmdutil.Plural(run.Shared, "task"))
	}
	if !o.rent.JSON {
		word := "session"
		if len(sessions) > 1 {
			word = "sessions"
		}
		fmt.Fprintf(o.rent.IO.ErrOut, "zennet: running %s on %s (%s %s); results in %s\n",
			cmdutil.Plural(o.Tasks, "task"), cmdutil.Plural(run.Hosts(), "host"), word, strings.Join(sessions, ", "), dir)
	}
	doc := run.Execute(ctx)
	for _, tr := range doc.Tasks {
		if tr.Error != "" && !doc.Interrupted {
			fmt.Fprintf(o.rent.IO.ErrOut, "zennet: task %s on %s: %s\n", tr.Label(), tr.Host, tr.Error)
		}
	}
	for _, d := range doc.Disagreements {
		fmt.Fprintf(o.rent.IO.ErrOut, "zennet: %s\n", d.Message)
	}
	werr := cmdutil.WriteFileJSON(filepath.Join(dir, "run.json"), "run", doc)
	if o.rent.JSON {
		werr = errors.Join(werr, o.rent.writeDoc(cmdutil.KindRun, doc))
	} else {
		printRunTable(out, doc.Tasks)
	}
	receipts, rerr := run.Release(ctx)
	if rerr != nil {
		fmt.Fprintf(o.rent.IO.ErrOut, "zennet: release: %v\n", rerr)
	} else if !o.rent.JSON {
		fmt.Fprintf(o.rent.IO.ErrOut, "zennet: released %s\n", cmdutil.Plural(run.Hosts(), "host"))
	}
	rerr = errors.Join(rerr, printReceipts(&o.rent, receipts))

	var runErr error
	failed := doc.Failed(o.AllowDisagreement)
	switch {
	case doc.Interrupted:
		runErr = fmt.Errorf("interrupted: the tasks were stopped and the hosts released; output so far is in %s", dir)
	case len(failed) > 0:
		var parts []string
		for _, t := range failed {
			parts = append(parts, strconv.Itoa(t))
		}
		runErr = fmt.Errorf("%d of %s failed (%s); output in %s", len(failed), cmdutil.Plural(o.Tasks, "task"), "task "+strings.Join(parts, ", "), dir)
	}
	return errors.Join(runErr, werr, rerr)
}

func printRunTable(w io.Writer, runs []taskrun.Task) {
	rows := make([][]string, 0, len(runs))
	for _, tr := range runs {
		code := strconv.Itoa(tr.ExitCode)
		if tr.ExitCode < 0 {
			code = "-"
		}
		rows = append(rows, []string{tr.Label(), tr.Host, tr.Provider, code, strconv.FormatFloat(tr.Seconds, 'f', 1, 64),
			cmp.Or(tr.StdoutSHA256[:min(len(tr.StdoutSHA256), 12)], "-")})
	}
	cmdutil.Table(w, []string{"TASK", "HOST", "PROVIDER", "EXIT", "SECONDS", "STDOUT SHA256"}, rows)
}
