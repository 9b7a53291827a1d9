package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pricing"
	"github.com/zennet/zennet/sandbox"
)

// This file is the fairness measurement of the price model (issue 7,
// 'make bench-pricing'): the same held-out jobs run on several provider
// configurations of this machine, each calibrated honestly in the same
// run, and pricing.Fairness compares how much each job's bill varies across
// them under the model, under CPU-seconds and under wall-seconds.

// CalibrationOf converts a calibration set into the pricing package's
// input: one row per step named "workload/seed" (the same name in every
// set made with the same seed, which is what pricing's reference scores
// match on), identified by the set's content hash.
func CalibrationOf(s *Set) (pricing.Calibration, error) {
	b, err := s.CanonicalBytes()
	if err != nil {
		return pricing.Calibration{}, err
	}
	sum := sha256.Sum256(b)
	c := pricing.Calibration{Hash: "sha256:" + hex.EncodeToString(sum[:])}
	seen := map[string]bool{}
	for _, st := range s.Steps {
		name := fmt.Sprintf("%s/%d", st.Workload, st.Seed)
		if seen[name] {
			return pricing.Calibration{}, fmt.Errorf("%w: step %s appears twice", ErrInvalidSet, name)
		}
		seen[name] = true
		c.Rows = append(c.Rows, pricing.Row{Step: name, Rates: st.Rates, Seconds: st.Seconds, Score: st.Score})
	}
	return c, nil
}

// FairProvider is one provider configuration of the fairness measurement.
type FairProvider struct {
	// Name names it in the report ("systrap-neighbour").
	Name string `json:"name"`
	// Platform is runsc's platform; empty means runsc's default.
	Platform string `json:"platform,omitempty"`
	// CPUs is the sandboxes' CPU quota in cores; 0 means none.
	CPUs float64 `json:"cpus,omitempty"`
	// Neighbour runs a CPU-hungry host process (the int workload on every
	// CPU, as testdata/calibration/generate.sh does) through both the
	// calibration and the jobs.
	Neighbour bool `json:"neighbour,omitempty"`
}

// DefaultFairProviders are the configurations of testdata/calibration:
// both platforms that start here, each with and without a neighbour, and
// a 1-core quota. The first is the reference.
var DefaultFairProviders = []FairProvider{
	{Name: "systrap", Platform: "systrap"},
	{Name: "systrap-neighbour", Platform: "systrap", Neighbour: true},
	{Name: "ptrace", Platform: "ptrace"},
	{Name: "ptrace-neighbour", Platform: "ptrace", Neighbour: true},
	{Name: "systrap-cpus1", Platform: "systrap", CPUs: 1},
}

// FairJob is a held-out job: everyday work the canonical suite does not
// contain, a shell script run in the sandbox in FairDir after FairSetup.
type FairJob struct {
	Name   string `json:"name"`
	Script string `json:"script"`
}

// FairDir is where the jobs run and FairSetup leaves their input.
const FairDir = "/root/fair"

// FairSetup makes the jobs' input files in FairDir, deterministically
// (seeded), before any job is metered: text.txt, 1.4 million lines of
// Zipf-distributed words (56 MB); data.bin, 320 MB of random bytes.
const FairSetup = `set -e
mkdir -p ` + FairDir + ` && cd ` + FairDir + `
python3 - <<'EOF'
import itertools, random
r = random.Random(20261121)
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 11))) for _ in range(20000)]
cum = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(words))))
with open("text.txt", "w") as f:
    for _ in range(1400):
        f.write("\n".join(" ".join(r.choices(words, cum_weights=cum, k=r.randint(2, 8))) for _ in range(1000)))
        f.write("\n")
with open("data.bin", "wb") as f:
    for _ in range(320):
        f.write(r.randbytes(1 << 20))
EOF
sync
`

// DefaultFairJobs are the held-out jobs, each a few seconds on the
// reference configuration, mixing compute, memory, file I/O, system calls
// and process creation in proportions unlike any step of the suite.
var DefaultFairJobs = []FairJob{
	{Name: "gzip", Script: `gzip -6 -c text.txt > text.gz && rm text.gz`},
	{Name: "sort", Script: `sort -k2,2 -k1,1 -o sorted.txt text.txt && rm sorted.txt`},
	{Name: "python", Script: `python3 -c '
d = {}
for i in range(14000000):
    k = (i * 7919) % 100003
    d[k] = d.get(k, 0) + i
print(len(d))'`},
	{Name: "sha256sum", Script: `sha256sum data.bin data.bin`},
	{Name: "tar", Script: `for r in 1 2; do
	rm -rf tree && mkdir tree && tar -cf tree.tar -C /usr lib/python3.11 share/perl && tar -xf tree.tar -C tree && rm -rf tree tree.tar
done`},
	{Name: "compile", Script: `rm -rf pyc && python3 -c '
import os, py_compile
root = "/usr/lib/python3.11"
for r in range(2):
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                src = os.path.join(d, f)
                py_compile.compile(src, cfile=os.path.join("pyc", str(r), os.path.relpath(src, root) + "c"), doraise=True)' && rm -rf pyc`},
	{Name: "pipeline", Script: `find /usr/share /usr/lib -type f | sort | head -n 1500 | xargs cat | gzip -1 | sha256sum
for i in $(seq 100); do echo "$i" | md5sum; done | sort | uniq -c | wc -l
grep -rhc def /usr/lib/python3.11 | awk '{s += $1} END {print s}'`},
}

// FairnessConfig says how to measure fairness.
type FairnessConfig struct {
	// Runsc is the runsc binary and Image the sandboxes' root filesystem.
	Runsc string
	Image string
	// AgentBinary is the static zennet binary: bound into the sandboxes,
	// and the neighbour process on the host.
	AgentBinary string
	// StateDir holds the runtimes' state; empty means a temporary
	// directory, removed at the end.
	StateDir string
	// MemoryBytes is every sandbox's memory; 0 means
	// DefaultSandboxMemory.
	MemoryBytes int64
	// Providers are the configurations; the first is the reference whose
	// scores make the others' relative. At least two.
	Providers []FairProvider
	// Options are the calibration suite's steps, the same for every
	// provider (a fixed Seed makes them comparable with testdata's sets).
	Options Options
	// Jobs are the held-out jobs, run Repeats times each (round-robin) on
	// every provider; the median of the repeats is what is billed.
	Jobs    []FairJob
	Repeats int
	// Sets, if it has a set for a provider (by name), is used as that
	// provider's calibration instead of running the suite: for analysing
	// the jobs against sets measured before (testdata/calibration). The
	// measurement proper calibrates every provider in the same run.
	Sets map[string]*Set
	// Prices value the calibration steps, the same for every provider,
	// relative to the first provider's calibration; zero means 1000 msat
	// per reference CPU-second.
	Prices pricing.Prices
	// Log receives the sandboxes' and meters' events; nil discards.
	Log *slog.Logger
	// Progress, if not nil, receives one line per stage.
	Progress func(string)
}

// JobSample is one run of a held-out job: its wall time between the
// meter's samples around it, and the sandbox's counter delta.
type JobSample struct {
	Seconds float64           `json:"seconds"`
	Usage   map[string]uint64 `json:"usage"`
}

// ProviderMeasurement is everything measured on one provider.
type ProviderMeasurement struct {
	Provider FairProvider `json:"provider"`
	// LoadBefore and LoadAfter are the host's load averages (1, 5, 15
	// minutes) around this provider's measurement.
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
	// Set is the calibration set, unsigned.
	Set *Set `json:"-"`
	// Jobs holds every repeat of every job, by job name.
	Jobs map[string][]JobSample `json:"jobs"`
}

// FairnessRun is a complete measurement: the raw samples, and the input
// for pricing.Fairness.
type FairnessRun struct {
	Started   time.Time             `json:"started"`
	Finished  time.Time             `json:"finished"`
	Options   Options               `json:"-"`
	Repeats   int                   `json:"repeats"`
	Jobs      []FairJob             `json:"job_scripts"`
	Providers []ProviderMeasurement `json:"providers"`
	Input     pricing.FairnessInput `json:"-"`
}

// RunFairness measures every provider configuration of cfg, one after the
// other: with its neighbour started (if any), it calibrates a sandbox of
// that configuration with the suite (bench.Calibrate), then in a fresh
// sandbox makes the jobs' input and runs each job cfg.Repeats times,
// metering each run. It builds the FairnessInput: each provider's own
// calibration, its jobs' median usage and wall time, cfg.Prices, the first
// provider's calibration as the reference.
func RunFairness(ctx context.Context, cfg FairnessConfig) (*FairnessRun, error) {
	if len(cfg.Providers) < 2 {
		return nil, fmt.Errorf("fairness needs two provider configurations or more, got %d", len(cfg.Providers))
	}
	names := map[string]bool{}
	for _, p := range cfg.Providers {
		if !safeWord(p.Name) || names[p.Name] {
			return nil, fmt.Errorf("provider name %q: empty, repeated or not a plain word", p.Name)
		}
		names[p.Name] = true
	}
	if len(cfg.Jobs) == 0 {
		return nil, errors.New("no jobs to run")
	}
	for _, j := range cfg.Jobs {
		if !safeWord(j.Name) || strings.Contains(j.Name, "/") {
			return nil, fmt.Errorf("job name %q: not a plain word", j.Name)
		}
	}
	if cfg.Repeats < 1 {
		cfg.Repeats = 1
	}
	if cfg.Prices == (pricing.Prices{}) {
		cfg.Prices = pricing.Prices{PerReferenceCPUSecond: 1000}
	}
	if _, err := Plan(cfg.Options); err != nil {
		return nil, err
	}
	if cfg.StateDir == "" {
		dir, err := os.MkdirTemp("", "zennet-fairness-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.StateDir = dir
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			cfg.Progress(fmt.Sprintf(format, args...))
		}
	}
	run := &FairnessRun{Started: time.Now().UTC(), Options: cfg.Options, Repeats: cfg.Repeats, Jobs: cfg.Jobs}
	for i, p := range cfg.Providers {
		progress("provider %d/%d: %s (load %s)", i+1, len(cfg.Providers), p.Name, LoadAverage())
		m, err := measureProvider(ctx, cfg, p, filepath.Join(cfg.StateDir, p.Name), progress)
		if err != nil {
			return run, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		run.Providers = append(run.Providers, *m)
	}
	run.Finished = time.Now().UTC()
	in, err := run.fairnessInput(cfg.Prices)
	if err != nil {
		return run, err
	}
	run.Input = in
	return run, nil
}

// fairnessInput builds pricing's input from the measurements.
func (r *FairnessRun) fairnessInput(prices pricing.Prices) (pricing.FairnessInput, error) {
	in := pricing.FairnessInput{Prices: prices}
	for i, m := range r.Providers {
		cal, err := CalibrationOf(m.Set)
		if err != nil {
			return in, fmt.Errorf("provider %s: %w", m.Provider.Name, err)
		}
		if i == 0 {
			ref := cal
			in.Reference = &ref
		}
		pr := pricing.ProviderRun{Name: m.Provider.Name, Calibrations: []pricing.Calibration{cal}}
		for _, j := range r.Jobs {
			s, err := MedianSample(m.Jobs[j.Name])
			if err != nil {
				return in, fmt.Errorf("provider %s job %s: %w", m.Provider.Name, j.Name, err)
			}
			pr.Jobs = append(pr.Jobs, pricing.Job{Name: j.Name, Seconds: s.Seconds, Usage: pricing.Usage(s.Usage)})
		}
		in.Providers = append(in.Providers, pr)
	}
	return in, nil
}

// MedianSample is the element-wise median of samples: of the wall seconds
// and of each counter separately (the lower middle value for an even
// count). With an odd count every figure is one that was measured. Every
// sample must have the same counters.
func MedianSample(samples []JobSample) (JobSample, error) {
	if len(samples) == 0 {
		return JobSample{}, errors.New("no samples")
	}
	med := func(xs []float64) float64 {
		slices.Sort(xs)
		return xs[(len(xs)-1)/2]
	}
	out := JobSample{Usage: make(map[string]uint64, len(samples[0].Usage))}
	secs := make([]float64, len(samples))
	for i, s := range samples {
		if len(s.Usage) != len(samples[0].Usage) {
			return JobSample{}, fmt.Errorf("sample %d has %d counters, sample 0 %d", i, len(s.Usage), len(samples[0].Usage))
		}
		secs[i] = s.Seconds
	}
	out.Seconds = med(secs)
	for name := range samples[0].Usage {
		vals := make([]uint64, len(samples))
		for i, s := range samples {
			v, ok := s.Usage[name]
			if !ok {
				return JobSample{}, fmt.Errorf("sample %d lacks counter %s", i, name)
			}
			vals[i] = v
		}
		slices.Sort(vals)
		out.Usage[name] = vals[(len(vals)-1)/2]
	}
	return out, nil
}

// LoadAverage returns the host's 1, 5 and 15 minute load averages, or "?".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// measureProvider calibrates and runs the jobs on one configuration.
func measureProvider(ctx context.Context, cfg FairnessConfig, p FairProvider, state string, progress func(string, ...any)) (*ProviderMeasurement, error) {
	m := &ProviderMeasurement{Provider: p, LoadBefore: LoadAverage(), Jobs: map[string][]JobSample{}}
	if p.Neighbour {
		stop, err := startNeighbour(ctx, cfg.AgentBinary)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	rt, err := sandbox.New(sandbox.Config{Runsc: cfg.Runsc, Image: cfg.Image, StateDir: state, Platform: p.Platform, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	sb := SandboxConfig{AgentBinary: cfg.AgentBinary, MemoryBytes: cfg.MemoryBytes, CPUs: p.CPUs}
	opts := cfg.Options
	opts.Progress = func(pr Progress) {
		if pr.Done != nil {
			progress("  %s: calibration step %d/%d %s %s: %.2f CPUs", p.Name, pr.Step, pr.Steps, pr.Workload,
				describeParams(pr.Done.Params), pr.Done.Rates["cpu_ns"]/1e9)
		}
	}
	if set := cfg.Sets[p.Name]; set != nil {
		progress("  %s: calibration given (%d steps, %s)", p.Name, len(set.Steps), set.Run.Note)
		m.Set = set
	} else {
		note := fmt.Sprintf("fairness run: platform %s, CPU quota %v, neighbour %v; host load before: %s", platformName(p.Platform), p.CPUs, p.Neighbour, m.LoadBefore)
		set, err := Calibrate(ctx, CalibrateConfig{Runtime: rt, Runsc: cfg.Runsc, Platform: p.Platform, Sandbox: sb, Options: opts, Note: note, Log: cfg.Log})
		if err != nil {
			return nil, fmt.Errorf("calibrate: %w", err)
		}
		m.Set = set
	}
	if err := runJobs(ctx, cfg, rt, sb, p, m, progress); err != nil {
		return nil, err
	}
	m.LoadAfter = LoadAverage()
	return m, nil
}

func platformName(p string) string {
	if p == "" {
		return "systrap (default)"
	}
	return p
}

// runJobs makes a fresh sandbox, sets the jobs' input up and runs the jobs,
// round-robin: once unrecorded (warming the sandbox's and the host's file
// caches, which would otherwise make the first run of a file-heavy job an
// outlier of the configuration's history, not of its speed), then
// cfg.Repeats times.
func runJobs(ctx context.Context, cfg FairnessConfig, rt *sandbox.Runtime, sb SandboxConfig, p FairProvider, m *ProviderMeasurement, progress func(string, ...any)) error {
	id, err := StartSandbox(ctx, rt, sb)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		rt.Destroy(dctx, id)
	}()
	env, closeEnv, err := SandboxEnv(rt, id, cfg.Log)
	if err != nil {
		return err
	}
	defer closeEnv()
	progress("  %s: making the jobs' input", p.Name)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	out, err := env.Command(sctx, "/bin/sh", "-c", FairSetup).CombinedOutput()
	cancel()
	if err != nil {
		return fmt.Errorf("set the jobs up: %w: %s", err, lastLines(out))
	}
	// A fresh sandbox runs slow for about a second (see Options.WarmUp):
	// warm it up as the calibration does, unrecorded.
	if err := warmUp(ctx, env, 0, StepSpec{Workload: "int", Seed: 1}); err != nil {
		return err
	}
	for r := 0; r <= cfg.Repeats; r++ {
		for _, j := range cfg.Jobs {
			s, err := RunJob(ctx, env, j.Script)
			if err != nil {
				return fmt.Errorf("job %s: %w", j.Name, err)
			}
			what := "warm-up"
			if r > 0 {
				m.Jobs[j.Name] = append(m.Jobs[j.Name], s)
				what = fmt.Sprintf("%d/%d", r, cfg.Repeats)
			}
			progress("  %s: job %s %s: %.2f s wall, %.2f CPU-s", p.Name, j.Name, what, s.Seconds, float64(s.Usage["cpu_ns"])/1e9)
		}
	}
	return nil
}

func lastLines(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 1024 {
		s = "…" + s[len(s)-1024:]
	}
	return s
}

// jobTimeout bounds one held-out job.
const jobTimeout = 10 * time.Minute

// RunJob runs script with /bin/sh in env's sandbox, in FairDir, and
// returns its wall time and counter delta. The shell starts, says it is
// ready and waits; the counters are sampled, the script runs (its output
// discarded inside the sandbox), and they are sampled again as it reports
// done, so that neither runsc exec's start nor its exit is metered.
// Counters are read every env.SampleInterval meanwhile, as in a step.
func RunJob(ctx context.Context, env Env, script string) (JobSample, error) {
	if env.Counters == nil {
		return JobSample{}, errors.New("the job's environment has no meter")
	}
	interval := env.SampleInterval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, jobTimeout)
	defer cancel()
	wrapper := "cd " + FairDir + " || exit 1\necho ready\nread go || exit 1\n(\n" + script + "\n) >/dev/null || exit $?\necho done\n"
	cmd := env.Command(ctx, "/bin/sh", "-c", wrapper)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return JobSample{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return JobSample{}, err
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return JobSample{}, fmt.Errorf("start: %w", err)
	}
	br := bufio.NewReader(stdout)
	fail := func(what string, err error) (JobSample, error) {
		cancel()
		werr := cmd.Wait()
		msg := strings.TrimSpace(stderr.String())
		if msg == "" && werr != nil {
			msg = werr.Error()
		}
		return JobSample{}, fmt.Errorf("%s: %w: %s", what, err, msg)
	}
	if err := expectLine(br, "ready"); err != nil {
		return fail("start", err)
	}
	s0, err := env.Counters()
	if err != nil {
		return fail("sample counters", err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		return fail("start", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				env.Counters()
			case <-stop:
				return
			}
		}
	}()
	err = expectLine(br, "done")
	close(stop)
	wg.Wait()
	if err != nil {
		return fail("run", err)
	}
	s1, err := env.Counters()
	if err != nil {
		return fail("sample counters", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return JobSample{}, fmt.Errorf("exit: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return jobSample(s0, s1)
}

// jobSample is the sample between two meter samples.
func jobSample(s0, s1 meter.Sample) (JobSample, error) {
	secs := s1.Time.Sub(s0.Time).Seconds()
	if !(secs > 0) {
		return JobSample{}, errors.New("the meter's clock did not advance over the job")
	}
	d := s1.Counters.Sub(s0.Counters)
	u := make(map[string]uint64, meter.NumCounters)
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		u[c.Name()] = d[c]
	}
	return JobSample{Seconds: secs, Usage: u}, nil
}

// expectLine reads lines from br until one equal to want; EOF first is an
// error.
func expectLine(br *bufio.Reader, want string) error {
	for {
		line, err := br.ReadBytes('\n')
		if string(bytes.TrimSpace(line)) == want {
			return nil
		}
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("exited before saying %q", want)
			}
			return err
		}
	}
}

// startNeighbour starts the CPU-hungry neighbour: a host process running
// the int workload (kernel=mix) on every CPU, as
// testdata/calibration/generate.sh does. The returned function stops it.
func startNeighbour(ctx context.Context, agent string) (func(), error) {
	cmd := exec.CommandContext(ctx, agent, "agent", "bench", "int", "--param", "kernel=mix", "--seconds", fmt.Sprint(MaxSeconds))
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the neighbour: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	// Let it set up and load the CPUs before anything is measured.
	select {
	case <-time.After(time.Second):
	case <-done:
		return nil, errors.New("the neighbour exited at once")
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return nil, ctx.Err()
	}
	return func() {
		cmd.Process.Kill()
		<-done
	}, nil
}
