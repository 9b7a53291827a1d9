package cli

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/session"
)

// remoteResultsDir is the directory, inside each host, that a task runs in
// and whose contents are copied back as the task's results.
const remoteResultsDir = "/root/zennet-results"

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

func newCmdRun(io IOStreams, g *globalOptions) *cobra.Command {
	o := &runOptions{rent: rentOptions{IO: io, G: g}}
	cmd := &cobra.Command{
		Use:   "run -n K [rent flags] [--replicas R] [--results DIR] -- CMD [ARGS...]",
		Short: "Run a command on K rented hosts, collect its output and files, release them",
		Long: `run rents K hosts (K*R with --replicas R) exactly as 'zennet -n' does, runs
CMD on every host over ssh, streams each host's output prefixed with its name,
copies back what the command leaves in its working directory
` + remoteResultsDir + `, releases the hosts and prints a summary.

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
				return usagef("no command given: put it after --, e.g.\n%s", runExample)
			}
			if cmd.ArgsLenAtDash() != 0 {
				return usagef("the command must follow --, e.g. zennet run -n 2 --provider HOST:PORT -- %s", strings.Join(args, " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Command = args
			if err := o.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runRun(ctx, o)
		},
	}
	f := cmd.Flags()
	// Everything after CMD belongs to CMD, even without --.
	f.SetInterspersed(false)
	registerRentFlags(f, &o.rent)
	f.Lookup("count").Usage = "number of tasks (each on its own host; K*R hosts with --replicas R)"
	f.Lookup("json").Usage = "print the run and the receipts as JSON documents (the commands' output goes to stderr)"
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
	f.StringVarP(&o.Identity, "identity", "i", "", "SSH private key (default ~/.ssh/id_ed25519, else one zennet creates)")
	f.BoolVar(&o.JSON, "json", false, "print the hosts as one JSON document")
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "give up leasing after this long")
	f.StringSliceVar(&o.Pay, "pay", []string{pay.DefaultMethod}, "payment methods, preferred first: embedded (no setup), lightning (your lnd: see --lnddir)")
	o.LND.register(f)
	// The market's flags, but --min: a run needs all its hosts.
	f.StringSliceVar(&o.Seeds, "seed", splitList(os.Getenv("ZENNET_SEEDS")), "a provider to learn the market's providers from, HOST:PORT (repeatable; env ZENNET_SEEDS); without --provider, hosts come from the market")
	f.BoolVar(&o.Explain, "explain", false, "say, per provider of the market, why it was chosen or not")
	f.Float64Var(&o.MaxPrice, "max-price", 0, "most msat to pay for the work the reference machine does in a CPU-second (0: any)")
	f.Float64Var(&o.Bid, "bid", 0, "counter-offer: propose this many msat for the reference machine's CPU-second of work to providers that ask more (default: --max-price)")
	f.Float64Var(&o.MinScore, "min-score", 0, "least benchmark score relative to the reference machine (0: any, uncalibrated providers too)")
	f.Float64Var(&o.MinReputation, "min-reputation", 0, "least reputation, 0 to 1, in your own record of providers (a provider never met is 0.5)")
	f.UintVar(&o.PowBits, "pow-bits", defaultPowBits, "proof of work to ask of providers' announcements, in bits")
	f.IntVar(&o.Probe, "probe", 0, "rent this many hosts more, run a short benchmark step on each and keep the -n most efficient (work per second over price per work)")
	f.BoolVar(&o.SpotCheck, "spot-check", false, "replay a random step of each provider's calibration on one of its hosts and mark providers whose claim does not hold (a few seconds)")
}

// Validate checks the options; the rent is for Tasks*Replicas hosts.
func (o *runOptions) Validate() error {
	o.Tasks = o.rent.Count
	if o.Tasks < 1 {
		return usagef("-n %d: the number of tasks must be at least 1", o.Tasks)
	}
	if o.Replicas < 1 {
		return usagef("--replicas %d: must be at least 1", o.Replicas)
	}
	if o.Tasks > proto.MaxHostsPerDemand/o.Replicas {
		return usagef("-n %d --replicas %d: %d hosts in all, more than %d", o.Tasks, o.Replicas, o.Tasks*o.Replicas, proto.MaxHostsPerDemand)
	}
	o.rent.Count = o.Tasks * o.Replicas
	if err := o.rent.Validate(); err != nil {
		return err
	}
	if o.Results != "" {
		if err := prepareResultsDir(o.Results); err != nil {
			return err
		}
	}
	return nil
}

func taskLabel(task, replica, replicas int) string {
	if replicas == 1 {
		return strconv.Itoa(task)
	}
	return fmt.Sprintf("%d-r%d", task, replica)
}

// prepareResultsDir creates dir, refusing one that holds files: a run
// never overwrites another's results.
func prepareResultsDir(dir string) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return usagef("--results %s already holds files (%s, ...): choose another directory or remove it", dir, ents[0].Name())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return usagef("--results: %v", err)
	}
	return nil
}

// assignReplicas places replica r of task t on a host: slots[t][r] is an
// index into providers, which names each host's provider. The replicas of a
// task go to different providers whenever the hosts allow it: task by
// task, each replica takes a host of the provider, not yet used by the
// task, with the most hosts left (the first such provider on a tie), and
// the provider's first host left. len(providers) must be tasks*replicas.
func assignReplicas(providers []string, tasks, replicas int) [][]int {
	var order []string
	left := map[string][]int{}
	for i, p := range providers {
		if _, ok := left[p]; !ok {
			order = append(order, p)
		}
		left[p] = append(left[p], i)
	}
	slots := make([][]int, tasks)
	for t := range slots {
		used := map[string]bool{}
		for range replicas {
			best := ""
			for _, p := range order {
				if len(left[p]) == 0 {
					continue
				}
				if best == "" || used[best] && !used[p] || used[best] == used[p] && len(left[p]) > len(left[best]) {
					best = p
				}
			}
			if best == "" {
				return slots // fewer hosts than tasks*replicas
			}
			used[best] = true
			slots[t] = append(slots[t], left[best][0])
			left[best] = left[best][1:]
		}
	}
	return slots
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote quotes s as one word for a POSIX shell.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// remoteScript is the command line a host's shell runs for one task: args
// run as given (each quoted), in the results dir, with the task's
// environment.
func remoteScript(args []string, env [][2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mkdir -p %s && cd %s && export", remoteResultsDir, remoteResultsDir)
	for _, kv := range env {
		fmt.Fprintf(&b, " %s=%s", kv[0], shellQuote(kv[1]))
	}
	b.WriteString(" && exec")
	for _, a := range args {
		b.WriteString(" " + shellQuote(a))
	}
	return b.String()
}

// maxPrefixedLine is the longest line a linePrefixer holds back; a longer
// one is broken.
const maxPrefixedLine = 64 << 10

// linePrefixer writes every line written to it to w, prefixed, as one
// Write under mu: lines of several prefixers sharing mu never interleave.
// A last line without a newline is written, with one, by Flush.
type linePrefixer struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *linePrefixer) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		end := len(b)
		if i >= 0 {
			end = i
		}
		if room := maxPrefixedLine - len(p.buf); end > room {
			p.buf = append(p.buf, b[:room]...)
			b = b[room:]
			p.emit()
			continue
		}
		p.buf = append(p.buf, b[:end]...)
		if i < 0 {
			break
		}
		b = b[i+1:]
		p.emit()
	}
	return n, nil
}

// emit writes the buffered line and a newline. Errors writing to the
// terminal are ignored: the output is also kept in files.
func (p *linePrefixer) emit() {
	line := make([]byte, 0, len(p.prefix)+len(p.buf)+1)
	line = append(append(append(line, p.prefix...), p.buf...), '\n')
	p.mu.Lock()
	p.w.Write(line)
	p.mu.Unlock()
	p.buf = p.buf[:0]
}

// Flush writes a last line that has no newline.
func (p *linePrefixer) Flush() {
	if len(p.buf) > 0 {
		p.emit()
	}
}

// taskRun is one replica of one task, as the run document shows it.
type taskRun struct {
	Task     int    `json:"task"`
	Replica  int    `json:"replica"`
	Host     string `json:"host"`
	Provider string `json:"provider"`
	LeaseID  string `json:"lease_id"`
	// ExitCode is the command's exit code (255 also when ssh failed), or
	// -1 when it has none: interrupted, or ssh did not start.
	ExitCode      int     `json:"exit_code"`
	Seconds       float64 `json:"seconds"`
	StdoutSHA256  string  `json:"stdout_sha256"`
	ResultsSHA256 string  `json:"results_sha256"`
	Results       string  `json:"results"`
	Stdout        string  `json:"stdout"`
	Stderr        string  `json:"stderr"`
	Error         string  `json:"error,omitempty"`

	label string
}

type disagreement struct {
	Task    int    `json:"task"`
	Message string `json:"message"`
}

type runDoc struct {
	Session       string         `json:"session"`
	Sessions      []string       `json:"sessions"`
	Command       []string       `json:"command"`
	Count         int            `json:"count"`
	Replicas      int            `json:"replicas"`
	ResultsDir    string         `json:"results_dir"`
	OK            bool           `json:"ok"`
	Interrupted   bool           `json:"interrupted"`
	Tasks         []taskRun      `json:"tasks"`
	Disagreements []disagreement `json:"disagreements"`
}

// rentForRun rents the run's hosts. With replicas and several --provider
// each provider is asked for its share of the hosts in turn (the others
// standing in for what it cannot give), so that a task's replicas can be
// on different providers: one rental per provider.
func rentForRun(ctx context.Context, o *runOptions) ([]*rental, error) {
	ps := o.rent.Providers
	if o.Replicas == 1 || len(ps) < 2 {
		r, err := rent(ctx, &o.rent)
		if err != nil {
			return nil, err
		}
		return []*rental{r}, nil
	}
	var rs []*rental
	n := o.rent.Count
	for i, p := range ps {
		share := n / len(ps)
		if i < n%len(ps) {
			share++
		}
		if share == 0 {
			continue
		}
		ro := o.rent
		ro.Count = share
		ro.Providers = append([]string{p}, slices.Delete(slices.Clone(ps), i, i+1)...)
		r, err := rent(ctx, &ro)
		if err != nil {
			for _, r := range rs {
				r.release(context.WithoutCancel(ctx), 30*time.Second)
			}
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// sessionID is the id of the session a rental's files belong to.
func sessionID(r *rental) string { return filepath.Base(filepath.Dir(r.files.SessionConfig)) }

func runRun(ctx context.Context, o *runOptions) error {
	rentals, err := rentForRun(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	var hosts []session.Host
	sshConfig := map[string]string{} // by host name
	var sessions []string
	for _, r := range rentals {
		hosts = append(hosts, r.hosts...)
		for _, h := range r.hosts {
			sshConfig[h.Name] = r.files.SSHConfig
		}
		sessions = append(sessions, sessionID(r))
	}
	release := func() error {
		var errs []error
		var receipts []hostReceipt
		for _, r := range rentals {
			if err := r.release(context.WithoutCancel(ctx), 30*time.Second); err != nil {
				errs = append(errs, err)
			}
			receipts = append(receipts, r.receipts...)
		}
		rerr := errors.Join(errs...)
		if rerr != nil {
			fmt.Fprintf(o.rent.IO.ErrOut, "zennet: release: %v\n", rerr)
		} else if !o.rent.JSON {
			fmt.Fprintf(o.rent.IO.ErrOut, "zennet: released %s\n", plural(len(hosts), "host"))
		}
		return errors.Join(rerr, printReceipts(&o.rent, receipts))
	}
	dir := o.Results
	if dir == "" {
		dir = "zennet-results-" + sessions[0]
		if err := prepareResultsDir(dir); err != nil {
			return errors.Join(err, release())
		}
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}

	providers := make([]string, len(hosts))
	for i, h := range hosts {
		providers[i] = h.Provider
	}
	slots := assignReplicas(providers, o.Tasks, o.Replicas)
	runs := make([]*taskRun, 0, len(hosts))
	shared := 0
	for t, s := range slots {
		seen := map[string]bool{}
		for ri, hi := range s {
			h := hosts[hi]
			seen[h.Provider] = true
			label := taskLabel(t+1, ri+1, o.Replicas)
			runs = append(runs, &taskRun{Task: t + 1, Replica: ri + 1, Host: h.Name, Provider: h.Provider, LeaseID: h.LeaseID, ExitCode: -1,
				Results: filepath.Join(dir, label), Stdout: filepath.Join(dir, label+".stdout"), Stderr: filepath.Join(dir, label+".stderr"), label: label})
		}
		if len(seen) < len(s) {
			shared++
		}
	}
	if shared > 0 {
		fmt.Fprintf(o.rent.IO.ErrOut, "zennet: the replicas of %s share a provider: too few providers had hosts\n", plural(shared, "task"))
	}
	if !o.rent.JSON {
		word := "session"
		if len(sessions) > 1 {
			word = "sessions"
		}
		fmt.Fprintf(o.rent.IO.ErrOut, "zennet: running %s on %s (%s %s); results in %s\n",
			plural(o.Tasks, "task"), plural(len(runs), "host"), word, strings.Join(sessions, ", "), dir)
	}

	var mu sync.Mutex
	out := o.rent.IO.Out
	if o.rent.JSON {
		out = o.rent.IO.ErrOut // stdout carries the JSON documents only
	}
	var wg sync.WaitGroup
	for _, tr := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := [][2]string{{"ZENNET_TASK", strconv.Itoa(tr.Task)}, {"ZENNET_TASKS", strconv.Itoa(o.Tasks)},
				{"ZENNET_REPLICA", strconv.Itoa(tr.Replica)}, {"ZENNET_REPLICAS", strconv.Itoa(o.Replicas)},
				{"ZENNET_RESULTS", remoteResultsDir}}
			runTask(ctx, tr, sshConfig[tr.Host], remoteScript(o.Command, env),
				&linePrefixer{mu: &mu, w: out, prefix: "[" + tr.Host + "] "},
				&linePrefixer{mu: &mu, w: o.rent.IO.ErrOut, prefix: "[" + tr.Host + "] "})
		}()
	}
	wg.Wait()
	interrupted := ctx.Err() != nil

	doc := runDoc{Session: sessions[0], Sessions: sessions, Command: o.Command, Count: o.Tasks, Replicas: o.Replicas, ResultsDir: dir,
		Interrupted: interrupted, Tasks: make([]taskRun, len(runs)), Disagreements: []disagreement{}}
	for i, tr := range runs {
		doc.Tasks[i] = *tr
		if tr.Error != "" && !interrupted {
			fmt.Fprintf(o.rent.IO.ErrOut, "zennet: task %s on %s: %s\n", tr.label, tr.Host, tr.Error)
		}
	}
	if !interrupted {
		doc.Disagreements = compareReplicas(doc.Tasks)
	}
	failed := map[int]bool{}
	for _, tr := range doc.Tasks {
		if tr.ExitCode != 0 || tr.Error != "" {
			failed[tr.Task] = true
		}
	}
	for _, d := range doc.Disagreements {
		fmt.Fprintf(o.rent.IO.ErrOut, "zennet: %s\n", d.Message)
		if !o.AllowDisagreement {
			failed[d.Task] = true
		}
	}
	doc.OK = !interrupted && len(failed) == 0
	werr := writeFileJSON(filepath.Join(dir, "run.json"), "run", doc)
	if o.rent.JSON {
		werr = errors.Join(werr, writeJSON(o.rent.IO.Out, "run", doc))
	} else {
		printRunTable(out, doc.Tasks)
	}
	rerr := release()

	var runErr error
	switch {
	case interrupted:
		runErr = fmt.Errorf("interrupted: the tasks were stopped and the hosts released; output so far is in %s", dir)
	case len(failed) > 0:
		var parts []string
		for _, t := range slices.Sorted(maps.Keys(failed)) {
			parts = append(parts, strconv.Itoa(t))
		}
		runErr = fmt.Errorf("%d of %s failed (%s); output in %s", len(failed), plural(o.Tasks, "task"), "task "+strings.Join(parts, ", "), dir)
	}
	return errors.Join(runErr, werr, rerr)
}

// runTask runs one task over ssh, keeping its output and exit code in the
// results dir and copying back its files.
func runTask(ctx context.Context, tr *taskRun, sshConfig, script string, stdout, stderr *linePrefixer) {
	outF, err := os.Create(tr.Stdout)
	if err != nil {
		tr.Error = err.Error()
		return
	}
	defer outF.Close()
	errF, err := os.Create(tr.Stderr)
	if err != nil {
		tr.Error = err.Error()
		return
	}
	defer errF.Close()
	h := sha256.New()
	c := exec.CommandContext(ctx, "ssh", "-F", sshConfig, "-T", "-o", "BatchMode=yes", tr.Host, "--", script)
	c.Stdout = io.MultiWriter(outF, h, stdout)
	c.Stderr = io.MultiWriter(errF, stderr)
	// Its own process group: a Ctrl-C on the terminal reaches zennet,
	// which stops ssh itself.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.WaitDelay = 5 * time.Second
	start := time.Now()
	err = c.Run()
	tr.Seconds = time.Since(start).Round(time.Millisecond).Seconds()
	stdout.Flush()
	stderr.Flush()
	tr.StdoutSHA256 = hex.EncodeToString(h.Sum(nil))
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		tr.Error = "interrupted"
		return
	case err == nil:
		tr.ExitCode = 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		tr.ExitCode = ee.ExitCode()
	default:
		tr.Error = fmt.Sprintf("ssh: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(tr.Stdout), tr.label+".exit"), []byte(strconv.Itoa(tr.ExitCode)+"\n"), 0o644); err != nil {
		tr.Error = err.Error()
		return
	}
	if err := fetchResults(ctx, sshConfig, tr.Host, tr.Results); err != nil {
		tr.Error = fmt.Sprintf("copy its results: %v", err)
		return
	}
	d, err := treeDigest(tr.Results)
	if err != nil {
		tr.Error = fmt.Sprintf("digest its results: %v", err)
		return
	}
	tr.ResultsSHA256 = d
}

// fetchResults copies the host's results dir into dir, through tar.
func fetchResults(ctx context.Context, sshConfig, host, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c := exec.CommandContext(ctx, "ssh", "-F", sshConfig, "-T", "-o", "BatchMode=yes", host, "--",
		"tar -C "+remoteResultsDir+" -cf - .")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	pipe, err := c.StdoutPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	xerr := extractTar(pipe, dir)
	if xerr != nil {
		io.Copy(io.Discard, pipe)
	}
	werr := c.Wait()
	if werr != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			werr = fmt.Errorf("%w: %s", werr, msg)
		}
	}
	return errors.Join(xerr, werr)
}

// extractTar writes a tar stream's directories, regular files and
// symbolic links under dir; nothing it writes can land outside dir.
// Symbolic links are made last, so no file is written through one.
func extractTar(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	type link struct{ name, target string }
	var links []link
	var skipped []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if name == "." {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("the archive names a path outside the results: %q", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if d := filepath.Dir(name); d != "." {
				if err := root.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			f, err := root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, fs.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			root.Chtimes(name, h.ModTime, h.ModTime)
		case tar.TypeSymlink:
			links = append(links, link{name, h.Linkname})
		default:
			skipped = append(skipped, h.Name)
		}
	}
	for _, l := range links {
		if err := root.Symlink(l.target, l.name); err != nil {
			return err
		}
	}
	if len(skipped) > 0 {
		return fmt.Errorf("left out %s that are neither files, directories nor symbolic links: %s", plural(len(skipped), "entry"), strings.Join(skipped, ", "))
	}
	return nil
}

// treeDigest is a SHA-256 over a directory tree: every entry's path, type
// and content (a link's target), in lexical order.
func treeDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "d %q\n", rel)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %q %q\n", rel, t)
		case d.Type().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %q %x\n", rel, fh.Sum(nil))
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// compareReplicas reports every task whose replicas that ran to the end
// differ in stdout or in their results' files.
func compareReplicas(runs []taskRun) []disagreement {
	byTask := map[int][]taskRun{}
	var order []int
	for _, tr := range runs {
		if tr.Error != "" {
			continue
		}
		if _, ok := byTask[tr.Task]; !ok {
			order = append(order, tr.Task)
		}
		byTask[tr.Task] = append(byTask[tr.Task], tr)
	}
	ds := []disagreement{}
	for _, t := range order {
		rs := byTask[t]
		stdout, results := false, false
		for _, tr := range rs[1:] {
			stdout = stdout || tr.StdoutSHA256 != rs[0].StdoutSHA256
			results = results || tr.ResultsSHA256 != rs[0].ResultsSHA256
		}
		if !stdout && !results {
			continue
		}
		what, digest := "", func(tr taskRun) string { return tr.StdoutSHA256 }
		switch {
		case stdout && results:
			what = " (stdout and files)"
		case results:
			what, digest = " (files)", func(tr taskRun) string { return tr.ResultsSHA256 }
		}
		// One replica per distinct digest, in order.
		var parts []string
		seen := map[string]bool{}
		for _, tr := range rs {
			k := tr.StdoutSHA256 + tr.ResultsSHA256
			if seen[k] {
				continue
			}
			seen[k] = true
			parts = append(parts, fmt.Sprintf("%s (provider %s) %s…", tr.Host, tr.Provider, shortDigest(digest(tr))))
		}
		ds = append(ds, disagreement{Task: t, Message: fmt.Sprintf("task %d: replicas disagree%s: %s", t, what, strings.Join(parts, " vs "))})
	}
	return ds
}

func shortDigest(d string) string { return d[:min(len(d), 12)] }

func printRunTable(w io.Writer, runs []taskRun) {
	rows := make([][]string, 0, len(runs))
	for _, tr := range runs {
		code := strconv.Itoa(tr.ExitCode)
		if tr.ExitCode < 0 {
			code = "-"
		}
		rows = append(rows, []string{tr.label, tr.Host, tr.Provider, code, strconv.FormatFloat(tr.Seconds, 'f', 1, 64),
			cmp.Or(shortDigest(tr.StdoutSHA256), "-")})
	}
	table(w, []string{"TASK", "HOST", "PROVIDER", "EXIT", "SECONDS", "STDOUT SHA256"}, rows)
}
