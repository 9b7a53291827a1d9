// Package benchcmd is 'zennet bench': run the canonical suite in a sandbox
// and write a calibration set, sign it, verify and import others'. The
// suite and the sets are package bench's; this is their command line.
package benchcmd

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/cli/cmdutil"
)

// NewCmdBench is the 'zennet bench' group: run the canonical suite,
// publish, verify and import calibration sets.
func NewCmdBench(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark this machine's sandboxes; sign, verify and import calibration sets",
		Long: `bench measures what this machine's gVisor sandboxes deliver: it runs the built-in
canonical suite (or the Phoronix Test Suite) inside a sandbox, records the
meter's counter rates and the score of each step, and writes them as a
calibration set, which renters use to price providers per unit of work.
The file format is in docs/calibration.md.`,
		Args: cmdutil.NoArgs,
	}
	cmd.AddCommand(
		newCmdBenchRun(io, g),
		newCmdBenchPublish(io, g),
		newCmdBenchVerify(io, g),
		newCmdBenchImport(io, g),
	)
	return cmd
}

type benchRunOptions struct {
	IO        cmdutil.IOStreams
	G         *cmdutil.GlobalOptions
	Output    string
	Steps     int
	Seconds   float64
	Seed      uint64
	Workloads []string
	PTS       []string
	Platform  string
	Sandboxes cmdutil.Sandboxes
	CPUs      float64
	Memory    string
	Note      string
	Sign      bool
	Identity  string
	JSON      bool

	memoryBytes int64
}

func newCmdBenchRun(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &benchRunOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "run -o FILE [--steps N] [--seconds T] [--platform P] [--pts TEST]...",
		Short: "Run the benchmark suite in a sandbox and write a calibration set",
		Long: `run creates a gVisor sandbox, runs N steps of T seconds in it (each a workload of
the canonical suite at full load with random parameters: ` + strings.Join(bench.WorkloadNames(), ", ") + `),
samples the sandbox's counters around each step, destroys the sandbox and writes
the calibration set to FILE, signed with --sign.

With --pts it runs those Phoronix Test Suite tests in batch mode instead, one
step each; phoronix-test-suite and the tests must be installed in the image.`,
		Example: `  zennet bench run -o calibration.json
  zennet bench run -o ptrace.json --platform ptrace --steps 12 --seconds 2
  zennet bench run -o pts.json --pts pts/compress-gzip --pts pts/stream`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return runBenchRun(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", "", "write the calibration set to FILE")
	f.IntVar(&o.Steps, "steps", bench.DefaultSteps, "number of steps")
	f.Float64Var(&o.Seconds, "seconds", bench.DefaultSeconds, "seconds of each step")
	f.Uint64Var(&o.Seed, "seed", 0, "seed of the steps' workloads and parameters (default: random)")
	f.StringSliceVar(&o.Workloads, "workloads", nil, "run only these workloads (comma-separated)")
	f.StringArrayVar(&o.PTS, "pts", nil, "run this Phoronix Test Suite test instead of the suite (repeatable)")
	f.StringVar(&o.Platform, "platform", cmdutil.EnvOr("ZENNET_PLATFORM", ""), "runsc platform: systrap (default), ptrace or kvm")
	o.Sandboxes.Register(f, "static zennet binary bound into the sandbox (default: this binary)")
	f.Float64Var(&o.CPUs, "cpus", 0, "CPU quota of the sandbox in cores (default: none)")
	f.StringVarP(&o.Memory, "memory", "m", "1G", "memory of the sandbox")
	f.StringVar(&o.Note, "note", "", "describe the conditions of the run (stored in the set)")
	f.BoolVar(&o.Sign, "sign", false, "sign the set with your key (see -i)")
	f.StringVarP(&o.Identity, "identity", "i", "", "SSH private key to sign with (default ~/.ssh/id_ed25519, else one zennet creates)")
	f.BoolVar(&o.JSON, "json", false, "print a summary of the set as JSON")
	return cmd
}

// CheckSuiteFlags checks --steps and --seconds of a suite run.
func CheckSuiteFlags(steps int, seconds float64) error {
	if steps < 1 || steps > bench.MaxSteps {
		return cmdutil.Usagef("--steps %d: must be between 1 and %d", steps, bench.MaxSteps)
	}
	if !(seconds > 0 && seconds <= bench.MaxSeconds) {
		return cmdutil.Usagef("--seconds %v: must be more than 0 and at most %d", seconds, bench.MaxSeconds)
	}
	return nil
}

// Validate checks the options and fills the derived fields.
func (o *benchRunOptions) Validate() error {
	if o.Output == "" {
		return cmdutil.Usagef("-o FILE: say where to write the calibration set")
	}
	if err := CheckSuiteFlags(o.Steps, o.Seconds); err != nil {
		return err
	}
	for _, w := range o.Workloads {
		if _, ok := bench.LookupWorkload(w); !ok {
			return cmdutil.Usagef("--workloads: no workload %q; the suite has %s", w, strings.Join(bench.WorkloadNames(), ", "))
		}
	}
	if len(o.PTS) > 0 && len(o.Workloads) > 0 {
		return cmdutil.Usagef("--pts and --workloads do not mix: --pts replaces the suite")
	}
	switch o.Platform {
	case "", "systrap", "ptrace", "kvm":
	default:
		return cmdutil.Usagef("--platform %q is not one of systrap, ptrace, kvm", o.Platform)
	}
	if !(o.CPUs >= 0 && o.CPUs <= 4096) {
		return cmdutil.Usagef("--cpus %v: must be 0 (no quota) or more", o.CPUs)
	}
	m, err := cmdutil.ParseSize(o.Memory)
	if err != nil {
		return cmdutil.Usagef("-m: %v", err)
	}
	if m < 256<<20 {
		return cmdutil.Usagef("-m %s: the benchmark sandbox needs at least 256M", o.Memory)
	}
	o.memoryBytes = m
	if len(o.Note) > 1024 {
		return cmdutil.Usagef("--note: at most 1024 bytes")
	}
	if o.Identity != "" {
		o.Sign = true
	}
	if o.Seed == 0 {
		o.Seed = bench.RandomSeed()
	}
	return nil
}

// benchIdentity loads the benchmarker's key: path, or as for the renter
// ~/.ssh/id_ed25519, else the config dir's id_ed25519 (created once).
func benchIdentity(path, configDir string) (gossh.Signer, error) {
	s, _, err := cmdutil.Identity(path, configDir, "zennet benchmarker")
	return s, err
}

func benchProgress(o *benchRunOptions) func(bench.Progress) {
	if o.JSON || !cmdutil.IsTerminal(o.IO.ErrOut) {
		return nil
	}
	start := time.Now()
	return func(p bench.Progress) {
		if p.Done == nil {
			fmt.Fprintf(o.IO.ErrOut, "\r\033[Kstep %d/%d: %s ... (%s)", p.Step, p.Steps, p.Workload, time.Since(start).Round(time.Second))
			return
		}
		fmt.Fprintf(o.IO.ErrOut, "\r\033[Kstep %d/%d: %s %s: %s, %.2f CPUs\n", p.Step, p.Steps, p.Workload,
			paramString(p.Done.Params), formatScore(p.Done.Score, p.Done.Unit), p.Done.Rates["cpu_ns"]/1e9)
	}
}

func runBenchRun(ctx context.Context, o *benchRunOptions) error {
	log, err := o.G.Logger(o.IO.ErrOut)
	if err != nil {
		return err
	}
	runsc, agent, err := o.Sandboxes.Resolve()
	if err != nil {
		return err
	}
	if len(o.PTS) > 0 && !bench.PTSInImage(o.Sandboxes.Image) {
		return fmt.Errorf("%w in the sandbox image %s; %s", bench.ErrNoPTS, o.Sandboxes.Image, bench.PTSInstallHint)
	}
	var signer gossh.Signer
	if o.Sign {
		// Load the key first: better to fail before minutes of benchmarks.
		if signer, err = benchIdentity(o.Identity, o.G.ConfigDir); err != nil {
			return err
		}
	}
	set, err := bench.Calibrate(ctx, bench.CalibrateConfig{
		Runsc: runsc, Platform: o.Platform, Image: o.Sandboxes.Image,
		Sandbox: bench.SandboxConfig{AgentBinary: agent, MemoryBytes: o.memoryBytes, CPUs: o.CPUs},
		Options: bench.Options{Steps: o.Steps, Seconds: o.Seconds, Seed: o.Seed, Workloads: o.Workloads, Progress: benchProgress(o)},
		PTS:     o.PTS,
		Note:    o.Note,
		Signer:  signer,
		Log:     log,
	})
	if cmdutil.IsTerminal(o.IO.ErrOut) && !o.JSON {
		fmt.Fprint(o.IO.ErrOut, "\r\033[K")
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", cmdutil.ErrInterrupted, err)
		}
		return err
	}
	if err := set.WriteFile(o.Output); err != nil {
		return fmt.Errorf("write %s: %w", o.Output, err)
	}
	return printSet(o.IO, o.JSON, o.Output, set, true)
}

type benchPublishOptions struct {
	IO       cmdutil.IOStreams
	G        *cmdutil.GlobalOptions
	File     string
	Output   string
	Identity string
	JSON     bool
}

func newCmdBenchPublish(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &benchPublishOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "publish FILE [-i KEY] [-o OUT]",
		Short: "Sign a calibration set with your key, so others can check who measured it",
		Long: `publish signs the calibration set FILE with your SSH key (the set then names
the key), replacing any earlier signature, and writes it back (or to -o). A
provider attaches the signed set to its offers; renters check it with
'zennet bench verify' and keep it with 'zennet bench import'.`,
		Example: "  zennet bench publish calibration.json\n  zennet bench publish calibration.json -i ~/.ssh/bench_ed25519 -o signed.json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.Usagef("want one FILE; see 'zennet bench publish --help'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			if o.Output == "" {
				o.Output = o.File
			}
			return runBenchPublish(o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Identity, "identity", "i", "", "SSH private key to sign with (default ~/.ssh/id_ed25519, else one zennet creates)")
	f.StringVarP(&o.Output, "output", "o", "", "write the signed set here (default: FILE itself)")
	f.BoolVar(&o.JSON, "json", false, "print a summary of the signed set as JSON")
	return cmd
}

func runBenchPublish(o *benchPublishOptions) error {
	set, err := bench.ReadFile(o.File)
	if err != nil {
		return err
	}
	signer, err := benchIdentity(o.Identity, o.G.ConfigDir)
	if err != nil {
		return err
	}
	if err := set.Sign(signer); err != nil {
		return err
	}
	if err := set.WriteFile(o.Output); err != nil {
		return fmt.Errorf("write %s: %w", o.Output, err)
	}
	return printSet(o.IO, o.JSON, o.Output, set, false)
}

func printSet(io cmdutil.IOStreams, asJSON bool, file string, set *bench.Set, steps bool) error {
	sum, err := set.Summary(file)
	if err != nil {
		return err
	}
	if asJSON {
		return cmdutil.WriteJSON(io.Out, cmdutil.KindCalibration, sum)
	}
	if steps {
		var rows [][]string
		for i, st := range set.Steps {
			rows = append(rows, []string{strconv.Itoa(i + 1), st.Workload, paramString(st.Params),
				strconv.FormatFloat(st.Score, 'g', 6, 64), st.Unit, strconv.FormatFloat(st.Rates["cpu_ns"]/1e9, 'f', 2, 64)})
		}
		cmdutil.Table(io.Out, []string{"STEP", "WORKLOAD", "PARAMS", "SCORE", "UNIT/s", "CPUs"}, rows)
	}
	signed := "unsigned"
	if sum.Signer != "" {
		signed = "signed by " + sum.Signer
	}
	fmt.Fprintf(io.ErrOut, "zennet: wrote %s: %s, %s, %s (digest %s)\n", file, cmdutil.Plural(len(set.Steps), "step"), set.Machine, signed, sum.Digest[:16])
	return nil
}

func paramString(p bench.Params) string {
	var parts []string
	for _, k := range sortedKeys(p) {
		parts = append(parts, k+"="+p[k])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func sortedKeys(p bench.Params) []string { return slices.Sorted(maps.Keys(p)) }

// formatScore prints a score with an SI prefix: "1.23 G bytes/s".
func formatScore(v float64, unit string) string {
	prefixes := []string{"", "k", "M", "G", "T"}
	i := 0
	for v >= 1000 && i < len(prefixes)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.3g %s%s/s", v, prefixes[i], unit)
}
