package bench

import (
	"bufio"
	"bytes"
	"cmp"
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
	"syscall"
	"time"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pricing"
	"github.com/zennet/zennet/sandbox"
)

// This file is the fairness measurement of the price (issues 7 and 19,
// 'make bench-pricing'): sandboxes of several configurations ("arms") of
// this machine, alive together, calibrated in the same run, each step on
// each arm in turn and the suite replicated; then held-out jobs run on a
// test arm and on the reference arm seconds apart, in pairs, so that the
// machine's changing load falls on both sides of every ratio. The
// reference against a sandbox of its own configuration gives the noise
// floor. fairness_analysis.go prices the pairs.

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

// FairArm is one sandbox configuration of the fairness measurement: a
// sandbox of it lives through the whole run.
type FairArm struct {
	// Name names it in the report ("half-neighbour").
	Name string `json:"name"`
	// Platform is runsc's platform; empty means runsc's default.
	Platform string `json:"platform,omitempty"`
	// CPUs is the sandbox's CPU quota in cores; 0 means none.
	CPUs float64 `json:"cpus,omitempty"`
	// Neighbour runs a CPU-hungry host process (the int workload on every
	// CPU, as testdata/calibration/generate.sh does) while this arm's
	// steps and jobs run, and only then.
	Neighbour bool `json:"neighbour,omitempty"`
}

// DefaultFairArms are the sandboxes of 'make bench-pricing'. The first is
// the reference; the second is the same configuration, for the noise
// floor.
var DefaultFairArms = []FairArm{
	{Name: "reference", Platform: "systrap", CPUs: 1},
	{Name: "reference-2", Platform: "systrap", CPUs: 1},
	{Name: "half", Platform: "systrap", CPUs: 0.5},
	{Name: "half-neighbour", Platform: "systrap", CPUs: 0.5, Neighbour: true},
	{Name: "ptrace", Platform: "ptrace", CPUs: 1},
}

// What a comparison tests (FairComparison.Kind).
const (
	// FairNoise is the reference against a sandbox of its own
	// configuration: the noise floor, and the provider whose counters
	// are inflated.
	FairNoise = "noise"
	// FairControl expects no bias: a quota or a neighbour changes how
	// fast work is done, not what it costs.
	FairControl = "control"
	// FairBias is a configuration whose CPU-seconds do unequal work.
	FairBias = "bias"
)

// FairComparison is one test arm against the reference arm on some jobs.
type FairComparison struct {
	Name string   `json:"name"`
	Arm  string   `json:"arm"`
	Kind string   `json:"kind"`
	Jobs []string `json:"jobs"`
}

// DefaultFairComparisons are the comparisons of 'make bench-pricing': the
// noise floor on every job, the controls on the compute-only jobs, ptrace
// on the system-call-heavy ones.
var DefaultFairComparisons = []FairComparison{
	{Name: "self", Arm: "reference-2", Kind: FairNoise, Jobs: []string{"python", "hash", "tar", "pipeline"}},
	{Name: "quota", Arm: "half", Kind: FairControl, Jobs: []string{"python", "hash"}},
	{Name: "quota-neighbour", Arm: "half-neighbour", Kind: FairControl, Jobs: []string{"python", "hash"}},
	{Name: "ptrace", Arm: "ptrace", Kind: FairBias, Jobs: []string{"tar", "pipeline"}},
}

// FairJob is a held-out job: everyday work the canonical suite does not
// contain, a shell script run in the sandbox in FairDir.
type FairJob struct {
	Name   string `json:"name"`
	Script string `json:"script"`
}

// FairDir is where the jobs run.
const FairDir = "/root/fair"

// DefaultFairJobs are the held-out jobs, each about a CPU-second on the
// reference: two compute-only (a Python loop over a dictionary; SHA-256
// of 1000 MiB in memory), two heavy in system calls (tar and untar of the
// Python library; a pipeline of find, xargs, cat, gzip and thirty md5sum
// processes).
var DefaultFairJobs = []FairJob{
	{Name: "python", Script: `python3 -c '
d = {}
for i in range(5000000):
    k = (i * 7919) % 100003
    d[k] = d.get(k, 0) + i
print(len(d))'`},
	{Name: "hash", Script: `python3 -c '
import hashlib
b = bytes(1 << 20)
h = hashlib.sha256()
for _ in range(1000):
    h.update(b)
print(h.hexdigest())'`},
	{Name: "tar", Script: `rm -rf tree && mkdir tree && tar -cf tree.tar -C /usr lib/python3.11 && tar -xf tree.tar -C tree && rm -rf tree tree.tar`},
	{Name: "pipeline", Script: `find /usr/lib/python3.11 -type f | sort | head -n 300 | xargs cat | gzip -1 | sha256sum
for i in $(seq 30); do echo "$i" | md5sum; done | sort | uniq -c | wc -l`},
}

// Defaults of FairnessConfig.
const (
	// DefaultFairReplicates is how many times each arm runs each
	// calibration step.
	DefaultFairReplicates = 3
	// DefaultFairPairs is how many pairs each comparison runs of each job.
	DefaultFairPairs = 10
)

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
	// Arms are the sandboxes; the first is the reference, whose
	// calibration makes the others' relative.
	Arms []FairArm
	// Comparisons pit arms against the reference on jobs. A noise
	// comparison (the first of its kind) must run every job another
	// comparison runs.
	Comparisons []FairComparison
	// Options are the calibration suite's steps, the same for every arm.
	Options Options
	// Replicates is how often every arm runs each step (0:
	// DefaultFairReplicates); each step is priced by its median run.
	Replicates int
	// Jobs are the held-out jobs the comparisons name.
	Jobs []FairJob
	// Pairs is how many pairs of runs a comparison makes of each of its
	// jobs (0: DefaultFairPairs).
	Pairs int
	// CPU, if not negative, is the one CPU every arm's sandbox is placed
	// on (sandbox.Config.CPUSet); the neighbour runs on every CPU. On two
	// CPUs of a shared virtual machine, two sandboxes of the same
	// configuration on different CPUs used 1.3 to 2 times each other's
	// CPU time for the same jobs: that is the machine, not the
	// configuration, and it would be in every ratio.
	CPU int
	// Log receives the sandboxes' and meters' events; nil discards.
	Log *slog.Logger
	// Progress, if not nil, receives one line per stage.
	Progress func(string)
}

// TracePoint is the meter read during a job: seconds since its start, and
// the counters since its start (MemoryPeak as read).
type TracePoint struct {
	At       float64      `json:"at"`
	Counters meter.Vector `json:"counters"`
}

// JobSample is one run of a held-out job: its wall time between the
// meter's samples around it, the sandbox's counter delta, and the meter
// read every sample interval meanwhile (the last point is the delta).
type JobSample struct {
	Seconds float64           `json:"seconds"`
	Usage   map[string]uint64 `json:"usage"`
	Trace   []TracePoint      `json:"trace,omitempty"`
}

// FairPair is one pair: the job on the reference arm and on the test arm,
// seconds apart.
type FairPair struct {
	Ref      JobSample `json:"ref"`
	Test     JobSample `json:"test"`
	RefFirst bool      `json:"ref_first"`
}

// ArmMeasurement is one arm's calibration.
type ArmMeasurement struct {
	Arm FairArm `json:"arm"`
	// Replicates are its runs of the suite, unsigned; Set takes each
	// step's median run of them (MedianSet).
	Replicates []*Set `json:"-"`
	Set        *Set   `json:"-"`
}

// ComparisonMeasurement is one comparison's pairs, by job.
type ComparisonMeasurement struct {
	Comparison FairComparison        `json:"comparison"`
	Pairs      map[string][]FairPair `json:"pairs"`
}

// FairnessRun is a complete measurement.
type FairnessRun struct {
	Started     time.Time               `json:"started"`
	Finished    time.Time               `json:"finished"`
	LoadBefore  string                  `json:"load_before"`
	LoadAfter   string                  `json:"load_after"`
	Options     Options                 `json:"-"`
	Replicates  int                     `json:"replicates"`
	Pairs       int                     `json:"pairs"`
	Jobs        []FairJob               `json:"job_scripts"`
	Arms        []ArmMeasurement        `json:"arms"`
	Comparisons []ComparisonMeasurement `json:"comparisons"`
}

// checkFairness checks cfg and fills its defaults.
func checkFairness(cfg *FairnessConfig) error {
	if len(cfg.Arms) < 2 {
		return fmt.Errorf("fairness needs two arms or more, got %d", len(cfg.Arms))
	}
	arms := map[string]bool{}
	for _, a := range cfg.Arms {
		if !safeWord(a.Name) || strings.Contains(a.Name, "/") || arms[a.Name] {
			return fmt.Errorf("arm name %q: empty, repeated or not a plain word", a.Name)
		}
		arms[a.Name] = true
	}
	jobs := map[string]bool{}
	for _, j := range cfg.Jobs {
		if !safeWord(j.Name) || strings.Contains(j.Name, "/") || jobs[j.Name] {
			return fmt.Errorf("job name %q: repeated or not a plain word", j.Name)
		}
		jobs[j.Name] = true
	}
	if len(cfg.Comparisons) == 0 {
		return errors.New("no comparisons to make")
	}
	var noise map[string]bool
	names := map[string]bool{}
	for _, c := range cfg.Comparisons {
		switch {
		case names[c.Name] || !safeWord(c.Name):
			return fmt.Errorf("comparison name %q: repeated or not a plain word", c.Name)
		case !arms[c.Arm] || c.Arm == cfg.Arms[0].Name:
			return fmt.Errorf("comparison %s: arm %q is not a test arm", c.Name, c.Arm)
		case c.Kind != FairNoise && c.Kind != FairControl && c.Kind != FairBias:
			return fmt.Errorf("comparison %s: kind %q is none of %s, %s, %s", c.Name, c.Kind, FairNoise, FairControl, FairBias)
		case len(c.Jobs) == 0:
			return fmt.Errorf("comparison %s: no jobs", c.Name)
		}
		names[c.Name] = true
		for _, j := range c.Jobs {
			if !jobs[j] {
				return fmt.Errorf("comparison %s: no job %q", c.Name, j)
			}
		}
		if c.Kind == FairNoise && noise == nil {
			noise = map[string]bool{}
			for _, j := range c.Jobs {
				noise[j] = true
			}
		}
	}
	if noise == nil {
		return errors.New("no noise comparison: the reference against a sandbox of its own configuration gives the noise floor")
	}
	for _, c := range cfg.Comparisons {
		for _, j := range c.Jobs {
			if !noise[j] {
				return fmt.Errorf("comparison %s: job %s has no noise floor (the noise comparison does not run it)", c.Name, j)
			}
		}
	}
	if cfg.Replicates <= 0 {
		cfg.Replicates = DefaultFairReplicates
	}
	if cfg.Pairs <= 0 {
		cfg.Pairs = DefaultFairPairs
	}
	if cfg.Pairs < 2 {
		return fmt.Errorf("%d pairs: need two or more for a spread", cfg.Pairs)
	}
	if !(cfg.Options.Seconds > 0 && cfg.Options.Seconds <= MaxSeconds) {
		return fmt.Errorf("steps of %v seconds: want more than 0 and at most %d", cfg.Options.Seconds, MaxSeconds)
	}
	_, err := Plan(cfg.Options)
	return err
}

// fairArm is an arm's live sandbox.
type fairArm struct {
	FairArm
	env Env
}

// RunFairness measures cfg in one run, every arm's sandbox alive
// throughout: each calibration step on every arm in turn (the order
// rotating from step to step), the whole suite cfg.Replicates times; then,
// comparison by comparison, each job on the reference and on the test arm
// one right after the other, cfg.Pairs times, which of the two goes first
// alternating (RefFirst). A neighbour runs only while its arm does.
func RunFairness(ctx context.Context, cfg FairnessConfig) (*FairnessRun, error) {
	if err := checkFairness(&cfg); err != nil {
		return nil, err
	}
	plan, _ := Plan(cfg.Options)
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
	run := &FairnessRun{Started: time.Now().UTC(), LoadBefore: LoadAverage(), Options: cfg.Options,
		Replicates: cfg.Replicates, Pairs: cfg.Pairs, Jobs: cfg.Jobs}

	var neighbour *neighbour
	for _, a := range cfg.Arms {
		if a.Neighbour && neighbour == nil {
			n, err := startNeighbour(ctx, cfg.AgentBinary)
			if err != nil {
				return nil, err
			}
			defer n.stop()
			neighbour = n
		}
	}
	// with runs fn on arm a, its neighbour running meanwhile.
	with := func(a fairArm, fn func() error) error {
		if a.Neighbour {
			if err := neighbour.resume(); err != nil {
				return err
			}
			defer neighbour.pause()
		}
		return fn()
	}

	runtimes := map[string]*sandbox.Runtime{}
	machines := map[string]Machine{}
	var arms []fairArm
	for _, a := range cfg.Arms {
		rt := runtimes[a.Platform]
		if rt == nil {
			var err error
			sc := sandbox.Config{Runsc: cfg.Runsc, Image: cfg.Image, StateDir: filepath.Join(cfg.StateDir, fmt.Sprintf("runtime-%d", len(runtimes))),
				Platform: a.Platform, Log: cfg.Log}
			if cfg.CPU >= 0 {
				sc.CPUSet = []int{cfg.CPU}
			}
			rt, err = sandbox.New(sc)
			if err != nil {
				return nil, err
			}
			defer rt.Close()
			runtimes[a.Platform] = rt
			if machines[a.Platform], err = DescribeMachine(ctx, cfg.Runsc, a.Platform); err != nil {
				return nil, fmt.Errorf("describe machine: %w", err)
			}
		}
		progress("arm %s: starting its sandbox (%s, %v CPUs, neighbour %v, on CPU %d)", a.Name, platformName(a.Platform), a.CPUs, a.Neighbour, cfg.CPU)
		id, err := StartSandbox(ctx, rt, SandboxConfig{AgentBinary: cfg.AgentBinary, MemoryBytes: cfg.MemoryBytes, CPUs: a.CPUs})
		if err != nil {
			return nil, fmt.Errorf("arm %s: %w", a.Name, err)
		}
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			rt.Destroy(dctx, id)
		}()
		env, closeEnv, err := SandboxEnv(rt, id, cfg.Log)
		if err != nil {
			return nil, fmt.Errorf("arm %s: %w", a.Name, err)
		}
		defer closeEnv()
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		out, err := env.Command(sctx, "/bin/mkdir", "-p", FairDir).CombinedOutput()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("arm %s: make %s: %w: %s", a.Name, FairDir, err, lastLines(out))
		}
		arm := fairArm{FairArm: a, env: env}
		// A fresh sandbox runs slow for about a second (Options.WarmUp).
		if err := with(arm, func() error {
			return warmUp(ctx, env, cfg.Options.WarmUp, StepSpec{Workload: plan[0].Workload, Seed: plan[0].Seed, Workers: cfg.Options.Workers})
		}); err != nil {
			return nil, fmt.Errorf("arm %s: %w", a.Name, err)
		}
		arms = append(arms, arm)
	}

	// Calibration: every step on every arm in turn, cfg.Replicates times.
	steps := make([][][]Step, len(arms)) // arm, replicate, step
	for i := range arms {
		steps[i] = make([][]Step, cfg.Replicates)
	}
	for r := 0; r < cfg.Replicates; r++ {
		for k, p := range plan {
			for o := range arms {
				i := (o + k + r) % len(arms)
				a := arms[i]
				var st Step
				err := with(a, func() (err error) {
					st, err = RunStep(ctx, a.env, StepSpec{Workload: p.Workload, Seed: p.Seed, Seconds: cfg.Options.Seconds, Workers: cfg.Options.Workers})
					return err
				})
				if err != nil {
					return run, fmt.Errorf("arm %s: step %d (%s): %w", a.Name, k+1, p.Workload, err)
				}
				steps[i][r] = append(steps[i][r], st)
				progress("calibration %d/%d step %d/%d %s on %s: %.2f CPUs, %.4g %s/s", r+1, cfg.Replicates, k+1, len(plan), p.Workload, a.Name, st.Rates["cpu_ns"]/1e9, st.Score, st.Unit)
			}
		}
	}
	for i, a := range arms {
		m := ArmMeasurement{Arm: a.FairArm}
		for r := range steps[i] {
			set := &Set{
				Suite:   Suite{Name: SuiteName, Version: SuiteVersion},
				Created: run.Started.Truncate(time.Second),
				Machine: machines[a.Platform],
				Sandbox: SandboxInfo{CPUs: a.CPUs, MemoryBytes: cmp.Or(cfg.MemoryBytes, DefaultSandboxMemory)},
				Run: RunInfo{Seconds: cfg.Options.Seconds, Seed: cfg.Options.Seed,
					Note: fmt.Sprintf("fairness run, arm %s, replicate %d of %d: platform %s, CPU quota %v, neighbour %v", a.Name, r+1, cfg.Replicates, platformName(a.Platform), a.CPUs, a.Neighbour)},
				Steps: steps[i][r],
			}
			if err := set.Validate(); err != nil {
				return run, fmt.Errorf("arm %s: %w", a.Name, err)
			}
			m.Replicates = append(m.Replicates, set)
		}
		med, err := MedianSet(m.Replicates)
		if err != nil {
			return run, fmt.Errorf("arm %s: %w", a.Name, err)
		}
		m.Set = med
		run.Arms = append(run.Arms, m)
	}

	// Jobs: one unrecorded run of each on each arm that runs it (file
	// caches), then the pairs.
	byName := map[string]FairJob{}
	for _, j := range cfg.Jobs {
		byName[j.Name] = j
	}
	armOf := func(name string) fairArm {
		return arms[slices.IndexFunc(arms, func(a fairArm) bool { return a.Name == name })]
	}
	runJob := func(a fairArm, j FairJob) (s JobSample, err error) {
		err = with(a, func() (err error) {
			s, err = RunJob(ctx, a.env, j.Script)
			return err
		})
		if err != nil {
			err = fmt.Errorf("arm %s: job %s: %w", a.Name, j.Name, err)
		}
		return s, err
	}
	warm := map[[2]string]bool{}
	for _, c := range cfg.Comparisons {
		for _, j := range c.Jobs {
			for _, a := range []fairArm{arms[0], armOf(c.Arm)} {
				if warm[[2]string{a.Name, j}] {
					continue
				}
				warm[[2]string{a.Name, j}] = true
				s, err := runJob(a, byName[j])
				if err != nil {
					return run, err
				}
				progress("warm-up: %s on %s: %.2f s wall, %.2f CPU-s", j, a.Name, s.Seconds, float64(s.Usage["cpu_ns"])/1e9)
			}
		}
	}
	for _, c := range cfg.Comparisons {
		m := ComparisonMeasurement{Comparison: c, Pairs: map[string][]FairPair{}}
		test := armOf(c.Arm)
		for p := 0; p < cfg.Pairs; p++ {
			for k, j := range c.Jobs {
				pair := FairPair{RefFirst: RefFirst(p, k)}
				order := []fairArm{test, arms[0]}
				if pair.RefFirst {
					order = []fairArm{arms[0], test}
				}
				for _, a := range order {
					s, err := runJob(a, byName[j])
					if err != nil {
						run.Comparisons = append(run.Comparisons, m)
						return run, fmt.Errorf("comparison %s: %w", c.Name, err)
					}
					if a.Name == test.Name {
						pair.Test = s
					} else {
						pair.Ref = s
					}
				}
				m.Pairs[j] = append(m.Pairs[j], pair)
				progress("%s pair %d/%d %s: CPU-s %.3f / %.3f = %.3f", c.Name, p+1, cfg.Pairs, j,
					float64(pair.Test.Usage["cpu_ns"])/1e9, float64(pair.Ref.Usage["cpu_ns"])/1e9,
					float64(pair.Test.Usage["cpu_ns"])/float64(max(pair.Ref.Usage["cpu_ns"], 1)))
			}
		}
		run.Comparisons = append(run.Comparisons, m)
	}
	run.Finished = time.Now().UTC()
	run.LoadAfter = LoadAverage()
	return run, nil
}

// RefFirst says whether pair p of a comparison's k-th job runs the
// reference first: it alternates from pair to pair, and from job to job
// within a pair, so that neither side is always the one that runs just
// after the other (caches, the scheduler's memory of the last task).
func RefFirst(p, k int) bool { return (p+k)%2 == 0 }

// MedianSet is one set of the steps of replicates, runs of the same steps:
// for each step, the run whose work per CPU-second (score over cpu_ns
// rate) is the median of the runs (the lower middle one of an even
// number), so that every figure of a step is one that was measured
// together. The first replicate gives everything else.
func MedianSet(replicates []*Set) (*Set, error) {
	if len(replicates) == 0 {
		return nil, errors.New("no replicates")
	}
	out := *replicates[0]
	out.Steps = make([]Step, len(replicates[0].Steps))
	out.Signer, out.Signature = nil, nil
	for k, st := range replicates[0].Steps {
		runs := make([]Step, 0, len(replicates))
		for r, set := range replicates {
			if len(set.Steps) != len(out.Steps) {
				return nil, fmt.Errorf("replicate %d has %d steps, replicate 1 %d", r+1, len(set.Steps), len(out.Steps))
			}
			o := set.Steps[k]
			if o.Workload != st.Workload || o.Seed != st.Seed {
				return nil, fmt.Errorf("replicate %d step %d is %s/%d, replicate 1's %s/%d", r+1, k+1, o.Workload, o.Seed, st.Workload, st.Seed)
			}
			runs = append(runs, o)
		}
		slices.SortStableFunc(runs, func(a, b Step) int { return cmp.Compare(workPerCPU(a), workPerCPU(b)) })
		out.Steps[k] = runs[(len(runs)-1)/2]
	}
	return &out, nil
}

// workPerCPU is a step's score per CPU-second, 0 without CPU time.
func workPerCPU(st Step) float64 {
	if c := st.Rates["cpu_ns"]; c > 0 {
		return st.Score / c * 1e9
	}
	return 0
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

func platformName(p string) string {
	if p == "" {
		return "systrap (default)"
	}
	return p
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
	var mid []meter.Sample
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if s, err := env.Counters(); err == nil {
					mid = append(mid, s)
				}
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
	return jobSample(s0, append(mid, s1))
}

// jobSample is the sample from meter sample s0 to the last of samples,
// the others its trace.
func jobSample(s0 meter.Sample, samples []meter.Sample) (JobSample, error) {
	s1 := samples[len(samples)-1]
	secs := s1.Time.Sub(s0.Time).Seconds()
	if !(secs > 0) {
		return JobSample{}, errors.New("the meter's clock did not advance over the job")
	}
	d := since(s0, s1)
	u := make(map[string]uint64, meter.NumCounters)
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		u[c.Name()] = d[c]
	}
	js := JobSample{Seconds: secs, Usage: u}
	for _, s := range samples {
		if at := s.Time.Sub(s0.Time).Seconds(); at > 0 && at <= secs {
			js.Trace = append(js.Trace, TracePoint{At: at, Counters: since(s0, s)})
		}
	}
	return js, nil
}

// since is the counters of s since s0, the peak of memory as s read it.
func since(s0, s meter.Sample) meter.Vector {
	d := s.Counters.Sub(s0.Counters)
	d[meter.MemoryPeak] = s.Counters[meter.MemoryPeak]
	return d
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

// neighbour is the CPU-hungry host process: the int workload
// (kernel=mix) on every CPU, as testdata/calibration/generate.sh runs it,
// stopped (SIGSTOP) but while an arm with a neighbour runs.
type neighbour struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startNeighbour starts the neighbour, lets it load the CPUs a second and
// pauses it.
func startNeighbour(ctx context.Context, agent string) (*neighbour, error) {
	cmd := exec.CommandContext(ctx, agent, "agent", "bench", "int", "--param", "kernel=mix", "--seconds", fmt.Sprint(MaxSeconds))
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the neighbour: %w", err)
	}
	n := &neighbour{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(n.done) }()
	select {
	case <-time.After(time.Second):
	case <-n.done:
		return nil, errors.New("the neighbour exited at once")
	case <-ctx.Done():
		n.stop()
		return nil, ctx.Err()
	}
	return n, n.pause()
}

// neighbourSettle is how long a resumed neighbour runs before the arm
// does: its threads are back on the CPUs well within it.
const neighbourSettle = 200 * time.Millisecond

func (n *neighbour) pause() error { return n.signal(syscall.SIGSTOP) }

func (n *neighbour) resume() error {
	if err := n.signal(syscall.SIGCONT); err != nil {
		return err
	}
	time.Sleep(neighbourSettle)
	return nil
}

func (n *neighbour) signal(s syscall.Signal) error {
	select {
	case <-n.done:
		return errors.New("the neighbour exited")
	default:
	}
	if err := n.cmd.Process.Signal(s); err != nil {
		return fmt.Errorf("neighbour: %w", err)
	}
	return nil
}

func (n *neighbour) stop() {
	n.cmd.Process.Signal(syscall.SIGCONT)
	n.cmd.Process.Kill()
	<-n.done
}
