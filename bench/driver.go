package bench

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/sandbox"
)

// AgentPath is where a benchmark sandbox has the static zennet binary bound,
// the same place as a lease's (lease.AgentBinary), so that a spot check
// runs the same command in a rented sandbox.
const AgentPath = "/.zennet/bin/zennet"

// Commander returns an unstarted command that runs argv inside the sandbox
// under test: sandbox.Runtime.Command bound to a sandbox (SandboxCommander),
// or ssh to a rented host. Cancelling ctx must kill it.
type Commander func(ctx context.Context, argv ...string) *exec.Cmd

// SandboxCommander runs commands in sandbox id of rt.
func SandboxCommander(rt *sandbox.Runtime, id string) Commander {
	return func(ctx context.Context, argv ...string) *exec.Cmd { return rt.Command(ctx, id, argv...) }
}

// CounterFunc returns the sandbox's cumulative counters now, as
// meter.Sampler.Sample does.
type CounterFunc func() (meter.Sample, error)

// Env is where steps run: a command runner for the sandbox and its meter.
type Env struct {
	Command Commander
	// Counters meters the sandbox; nil runs steps without counters.
	Counters CounterFunc
	// Agent is the zennet binary's path inside the sandbox; empty means
	// AgentPath.
	Agent string
	// SampleInterval is how often Counters is read during a step, which
	// is what integrates memory over time; 0 means 250 ms.
	SampleInterval time.Duration
	// Start, if set, is called once the workload has set up; the run
	// starts when it returns (an error ends the step). Probes use it to
	// start steps in several sandboxes at once.
	Start func(context.Context) error
}

// Options say which steps a run does.
type Options struct {
	// Steps is the number of steps.
	Steps int
	// Seconds is the length of each step at full load.
	Seconds float64
	// Seed chooses each step's workload and parameters: the same seed
	// gives the same steps.
	Seed uint64
	// Workloads limits the run to these workloads; empty means the whole
	// suite.
	Workloads []string
	// Workers is how many workers each step runs; 0 means one per CPU
	// the sandbox sees.
	Workers int
	// WarmUp is the length of an unrecorded run of the first step before
	// the steps: a fresh sandbox runs slow for about a second (gVisor's
	// systrap adapts; measured 0.6× the work per CPU-second with 5× the
	// context switches). 0 means DefaultWarmUp; negative, none.
	WarmUp time.Duration
	// Progress, if not nil, is called as each step starts (Done nil) and
	// when it is done.
	Progress func(Progress)
}

// DefaultWarmUp is the default Options.WarmUp.
const DefaultWarmUp = 1500 * time.Millisecond

// Progress reports a run's progress.
type Progress struct {
	Step, Steps int // Step counts from 1
	Workload    string
	Done        *Step
}

// PlannedStep is one step of a run before it runs.
type PlannedStep struct {
	Workload string
	Seed     uint64
}

// Plan returns the steps a run of opts does. Workloads come in rounds in
// which each appears once, in random order, so that every workload is
// measured about equally often and every mix of the suite is in the
// calibration matrix once there are as many steps as workloads.
func Plan(opts Options) ([]PlannedStep, error) {
	names := opts.Workloads
	if len(names) == 0 {
		names = WorkloadNames()
	}
	for _, n := range names {
		if _, ok := LookupWorkload(n); !ok {
			return nil, fmt.Errorf("no workload %q; the suite has %s", n, strings.Join(WorkloadNames(), ", "))
		}
	}
	if opts.Steps < 1 || opts.Steps > MaxSteps {
		return nil, fmt.Errorf("%d steps: want 1 to %d", opts.Steps, MaxSteps)
	}
	r := rand.New(rand.NewPCG(opts.Seed, 0x706c616e)) // "plan"
	var out []PlannedStep
	for len(out) < opts.Steps {
		for _, j := range r.Perm(len(names)) {
			out = append(out, PlannedStep{Workload: names[j], Seed: r.Uint64()})
		}
	}
	return out[:opts.Steps], nil
}

// RunSuite runs the steps of opts in env, one after another.
func RunSuite(ctx context.Context, env Env, opts Options) ([]Step, error) {
	if !(opts.Seconds > 0 && opts.Seconds <= MaxSeconds) {
		return nil, fmt.Errorf("steps of %v seconds: want more than 0 and at most %d", opts.Seconds, MaxSeconds)
	}
	plan, err := Plan(opts)
	if err != nil {
		return nil, err
	}
	if err := warmUp(ctx, env, opts.WarmUp, StepSpec{Workload: plan[0].Workload, Seed: plan[0].Seed, Workers: opts.Workers}); err != nil {
		return nil, err
	}
	steps := make([]Step, 0, len(plan))
	for i, p := range plan {
		if opts.Progress != nil {
			opts.Progress(Progress{Step: i + 1, Steps: len(plan), Workload: p.Workload})
		}
		st, err := RunStep(ctx, env, StepSpec{Workload: p.Workload, Seed: p.Seed, Seconds: opts.Seconds, Workers: opts.Workers})
		if err != nil {
			return steps, fmt.Errorf("step %d (%s): %w", i+1, p.Workload, err)
		}
		steps = append(steps, st)
		if opts.Progress != nil {
			opts.Progress(Progress{Step: i + 1, Steps: len(plan), Workload: p.Workload, Done: &steps[len(steps)-1]})
		}
	}
	return steps, nil
}

// warmUp runs spec for d (0: DefaultWarmUp, negative: not at all) and
// forgets it.
func warmUp(ctx context.Context, env Env, d time.Duration, spec StepSpec) error {
	if d == 0 {
		d = DefaultWarmUp
	}
	if d < 0 {
		return nil
	}
	spec.Seconds = d.Seconds()
	env.Counters = nil
	if _, err := RunStep(ctx, env, spec); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	return nil
}

// StepSpec is one step to run.
type StepSpec struct {
	Workload string
	Seed     uint64
	Seconds  float64
	// Workers is 0 for one per CPU the sandbox sees.
	Workers int
	// Params override the parameters drawn from Seed.
	Params Params
}

// agentArgs is the command line of 'zennet agent bench' for s.
func (s StepSpec) agentArgs(agent string) []string {
	argv := []string{agent, "agent", "bench", s.Workload,
		"--seconds", strconv.FormatFloat(s.Seconds, 'f', -1, 64),
		"--seed", strconv.FormatUint(s.Seed, 10), "--sync"}
	if s.Workers > 0 {
		argv = append(argv, "--workers", strconv.Itoa(s.Workers))
	}
	keys := make([]string, 0, len(s.Params))
	for k := range s.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		argv = append(argv, "--param", k+"="+s.Params[k])
	}
	return argv
}

// safeWord reports whether s is 1 to 64 letters, digits or ._/- and so
// means the same to a shell as to exec.
func safeWord(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return false
		}
	}
	return s[0] != '-' // not an option
}

// setupTimeout bounds how long a workload may take to set up before its
// run (allocating and touching buffers, building a pointer chain).
const setupTimeout = 2 * time.Minute

// RunStep runs one step in env: it starts the workload, lets it set up,
// samples the counters, starts the run, samples again as the result comes
// in, and returns the step with its counter deltas and rates (none if env
// has no Counters).
func RunStep(ctx context.Context, env Env, spec StepSpec) (Step, error) {
	// The command line may reach a shell (ssh runs it as one), and a spot
	// check takes it from a provider's calibration: plain words only.
	if !safeWord(spec.Workload) {
		return Step{}, fmt.Errorf("workload %.64q: not a workload name", spec.Workload)
	}
	for k, v := range spec.Params {
		if !safeWord(k) || !safeWord(v) {
			return Step{}, fmt.Errorf("parameter %.64q=%.64q: only letters, digits and ._/- are allowed", k, v)
		}
	}
	agent := env.Agent
	if agent == "" {
		agent = AgentPath
	}
	interval := env.SampleInterval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := env.Command(ctx, spec.agentArgs(agent)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Step{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Step{}, err
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return Step{}, fmt.Errorf("start workload: %w", err)
	}
	waited := false
	defer func() {
		if !waited {
			cancel()
			cmd.Wait()
		}
	}()
	lines := make(chan []byte, 4)
	go func() {
		defer close(lines)
		br := bufio.NewReaderSize(stdout, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := func(what string, err error) error {
		cancel()
		werr := cmd.Wait()
		waited = true
		msg := strings.TrimSpace(stderr.String())
		if msg == "" && werr != nil {
			msg = werr.Error()
		}
		if msg != "" {
			return fmt.Errorf("%s: %w: %s", what, err, msg)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	next := func(timeout time.Duration) ([]byte, error) {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case line, ok := <-lines:
			if !ok {
				return nil, errors.New("workload exited early")
			}
			return line, nil
		case <-t.C:
			return nil, fmt.Errorf("no answer in %v", timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if _, err := next(setupTimeout); err != nil {
		return Step{}, failed("set up", err)
	}
	if env.Start != nil {
		if err := env.Start(ctx); err != nil {
			return Step{}, failed("start run", err)
		}
	}
	var s0 meter.Sample
	if env.Counters != nil {
		if s0, err = env.Counters(); err != nil {
			return Step{}, failed("sample counters", err)
		}
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		return Step{}, failed("start run", err)
	}
	stopTick := make(chan struct{})
	var ticking sync.WaitGroup
	if env.Counters != nil {
		ticking.Add(1)
		go func() {
			defer ticking.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					env.Counters()
				case <-stopTick:
					return
				}
			}
		}()
	}
	line, err := next(time.Duration(spec.Seconds*float64(time.Second)) + time.Minute)
	close(stopTick)
	ticking.Wait()
	if err != nil {
		return Step{}, failed("run", err)
	}
	var s1 meter.Sample
	if env.Counters != nil {
		if s1, err = env.Counters(); err != nil {
			return Step{}, failed("sample counters", err)
		}
	}
	stdin.Close()
	werr := cmd.Wait()
	waited = true
	if werr != nil {
		return Step{}, fmt.Errorf("workload: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	res, err := ParseResult(line)
	if err != nil {
		return Step{}, err
	}
	if res.Workload != spec.Workload {
		return Step{}, fmt.Errorf("workload %s answered for %s", res.Workload, spec.Workload)
	}
	st := Step{
		Workload: res.Workload, Seed: res.Seed, Params: res.Params, Workers: res.Workers,
		Ops: res.Ops, Unit: res.Unit, Score: res.Score, Seconds: res.Seconds,
	}
	if env.Counters != nil {
		secs := s1.Time.Sub(s0.Time).Seconds()
		if !(secs > 0) {
			return Step{}, errors.New("the meter's clock did not advance over the step")
		}
		st.setCounters(s1.Counters.Sub(s0.Counters), secs)
	}
	return st, nil
}

// randomSeed returns a seed nobody can predict.
func randomSeed() uint64 {
	var b [8]byte
	crand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

// RandomSeed returns a seed for Options that nobody can predict.
func RandomSeed() uint64 { return randomSeed() }

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// SandboxConfig is what a benchmark sandbox gets.
type SandboxConfig struct {
	// AgentBinary is the static zennet binary on the host, bound at
	// AgentPath.
	AgentBinary string
	// MemoryBytes is the memory limit; 0 means 1 GiB.
	MemoryBytes int64
	// CPUs is the CPU quota in cores; 0 means none.
	CPUs float64
}

// DefaultSandboxMemory is a benchmark sandbox's memory unless told
// otherwise: enough for the largest workload (membw copy of 128 MiB, two
// buffers) with room to spare.
const DefaultSandboxMemory = 1 << 30

// StartSandbox creates a sandbox for benchmarks in rt and returns its id.
// Its first process is sandbox.ReaperArgs. The caller destroys it.
func StartSandbox(ctx context.Context, rt *sandbox.Runtime, cfg SandboxConfig) (string, error) {
	if cfg.AgentBinary == "" {
		return "", errors.New("no agent binary for the benchmark sandbox")
	}
	if fi, err := os.Stat(cfg.AgentBinary); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("agent binary %s is not a file", cfg.AgentBinary)
	}
	if cfg.MemoryBytes == 0 {
		cfg.MemoryBytes = DefaultSandboxMemory
	}
	// The same length as lease ids ("zn-" and 17 hex digits): runsc
	// resolves ids by prefix, and "zb-" is the prefix of no lease.
	var b [9]byte
	crand.Read(b[:])
	id := "zb-" + hex.EncodeToString(b[:])[:17]
	err := rt.Create(ctx, sandbox.Spec{
		ID:          id,
		MemoryBytes: cfg.MemoryBytes,
		CPUs:        cfg.CPUs,
		Hostname:    "zennet-bench",
		Args:        sandbox.ReaperArgs,
		Mounts:      []sandbox.Mount{{Source: cfg.AgentBinary, Destination: AgentPath, ReadOnly: true}},
	})
	if err != nil {
		return "", fmt.Errorf("start benchmark sandbox: %w", err)
	}
	return id, nil
}

// SandboxEnv returns the Env of sandbox id in rt, metered from its cgroup.
// The caller must call the returned close function.
func SandboxEnv(rt *sandbox.Runtime, id string, log *slog.Logger) (Env, func(), error) {
	s, err := meter.New(meter.Config{Cgroup: rt.CgroupPath(id), Log: log})
	if err != nil {
		return Env{}, nil, fmt.Errorf("meter benchmark sandbox: %w", err)
	}
	if _, err := s.Sample(); err != nil {
		s.Close()
		return Env{}, nil, fmt.Errorf("meter benchmark sandbox: %w", err)
	}
	return Env{Command: SandboxCommander(rt, id), Counters: s.Sample}, func() { s.Close() }, nil
}

// CalibrateConfig says how to produce a calibration set.
type CalibrateConfig struct {
	// Runtime creates the benchmark sandbox. If nil, Calibrate runs one
	// of its own on Runsc, Platform and Image, its state in a temporary
	// directory it removes.
	Runtime *sandbox.Runtime
	// Runsc is the runsc binary and Platform its platform as Runtime runs
	// it, for the machine description.
	Runsc    string
	Platform string
	// Image is the root filesystem of the runtime Calibrate makes when
	// Runtime is nil.
	Image string
	// Sandbox is what the benchmark sandbox gets.
	Sandbox SandboxConfig
	// Options are the canonical suite's steps.
	Options Options
	// PTS, if not empty, runs these Phoronix Test Suite tests instead of
	// the canonical suite.
	PTS []string
	// Note describes the conditions of the run.
	Note string
	// Signer, if not nil, signs the set.
	Signer ssh.Signer
	// Log receives the sandbox's and the meter's events; nil discards.
	Log *slog.Logger
}

// Calibrate starts a benchmark sandbox, runs the suite in it, destroys it
// and returns the calibration set, signed if cfg.Signer is set.
func Calibrate(ctx context.Context, cfg CalibrateConfig) (*Set, error) {
	if len(cfg.PTS) == 0 {
		if _, err := Plan(cfg.Options); err != nil {
			return nil, err
		}
	}
	if cfg.Runtime == nil {
		state, err := os.MkdirTemp("", "zennet-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(state)
		rt, err := sandbox.New(sandbox.Config{Runsc: cfg.Runsc, Image: cfg.Image, StateDir: state, Platform: cfg.Platform, Log: cfg.Log})
		if err != nil {
			return nil, err
		}
		defer rt.Close()
		cfg.Runtime = rt
	}
	m, err := DescribeMachine(ctx, cfg.Runsc, cfg.Platform)
	if err != nil {
		return nil, fmt.Errorf("describe machine: %w", err)
	}
	if cfg.Sandbox.MemoryBytes == 0 {
		cfg.Sandbox.MemoryBytes = DefaultSandboxMemory
	}
	id, err := StartSandbox(ctx, cfg.Runtime, cfg.Sandbox)
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		cfg.Runtime.Destroy(dctx, id)
	}()
	env, closeEnv, err := SandboxEnv(cfg.Runtime, id, cfg.Log)
	if err != nil {
		return nil, err
	}
	defer closeEnv()
	set := &Set{
		Suite:   Suite{Name: SuiteName, Version: SuiteVersion},
		Created: time.Now().UTC().Truncate(time.Second),
		Machine: m,
		Sandbox: SandboxInfo{CPUs: cfg.Sandbox.CPUs, MemoryBytes: cfg.Sandbox.MemoryBytes},
		Run:     RunInfo{Seconds: cfg.Options.Seconds, Seed: cfg.Options.Seed, Note: cfg.Note},
	}
	if len(cfg.PTS) > 0 {
		version, steps, err := RunPTS(ctx, env, cfg.PTS, cfg.Options.Progress)
		if err != nil {
			return nil, err
		}
		set.Suite = Suite{Name: PTSSuiteName, Version: version}
		set.Run.Seconds = 0
		set.Steps = steps
	} else {
		if set.Steps, err = RunSuite(ctx, env, cfg.Options); err != nil {
			return nil, err
		}
	}
	if err := set.Validate(); err != nil {
		return nil, err
	}
	if cfg.Signer != nil {
		if err := set.Sign(cfg.Signer); err != nil {
			return nil, err
		}
	}
	return set, nil
}
