package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/meter"
)

// TestRunStep runs workloads in a real sandbox and checks that the meter
// sees what each does: the chain from agent to counters.
func TestRunStep(t *testing.T) {
	_, _, env := sharedEnv(t)
	tests := []struct {
		name   string
		spec   StepSpec
		checks func(t *testing.T, st Step)
	}{
		{"hash is compute", StepSpec{Workload: "hash", Seed: 1, Params: Params{"block": "16384"}}, func(t *testing.T, st Step) {
			if cpu := st.Rate(meter.CPU); cpu < 0.2e9 {
				t.Errorf("%.2f CPUs", cpu/1e9)
			}
			if w := st.Rate(meter.WriteBytes); w > 1<<20 {
				t.Errorf("hashing wrote %.0f bytes/s on the host", w)
			}
		}},
		{"fileio to the overlay is host I/O", StepSpec{Workload: "fileio", Seed: 1, Params: Params{"dir": "root", "mib": "16", "block": "1048576", "fsync": "1"}}, func(t *testing.T, st Step) {
			// Ops counts bytes written and read back, about half each.
			if w := st.Rate(meter.WriteBytes); w < 0.25*st.Score {
				t.Errorf("%.3g bytes/s written on the host for a score of %.3g", w, st.Score)
			}
		}},
		{"membw holds its buffers", StepSpec{Workload: "membw", Seed: 1, Params: Params{"op": "copy", "mib": "128"}}, func(t *testing.T, st Step) {
			// Two buffers of 128 MiB in all: at least 200 MiB on average.
			if mib := st.Rate(meter.MemoryTime) / 1000; mib < 200 {
				t.Errorf("%.0f MiB in use on average", mib)
			}
		}},
		{"spawn switches context", StepSpec{Workload: "spawn", Seed: 1, Params: Params{"prog": "true"}}, func(t *testing.T, st Step) {
			if st.Ops < 10 || st.Rate(meter.CtxSwitchesVoluntary) < 1000 {
				t.Errorf("%v processes, %.0f voluntary switches/s", st.Ops, st.Rate(meter.CtxSwitchesVoluntary))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Seconds = 0.5
			st, err := RunStep(context.Background(), env, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.validate(); err != nil {
				t.Fatalf("step does not validate: %v", err)
			}
			w, _ := LookupWorkload(tt.spec.Workload)
			want := w.RandomParams(tt.spec.Seed)
			for k, v := range tt.spec.Params {
				want[k] = v
			}
			if describeParams(st.Params) != describeParams(want) || st.Unit != w.Unit || st.Workers < 1 {
				t.Errorf("ran %v with %d workers (%s), want %v", st.Params, st.Workers, st.Unit, want)
			}
			if st.Seconds < 0.45 || st.Seconds > 2 || st.Score <= 0 {
				t.Errorf("%v s between the samples, score %v", st.Seconds, st.Score)
			}
			tt.checks(t, st)
		})
	}
}

func TestRunStepErrors(t *testing.T) {
	_, _, env := sharedEnv(t)
	_, err := RunStep(context.Background(), env, StepSpec{Workload: "hash", Seconds: 1, Params: Params{"block": "0"}})
	if err == nil || !strings.Contains(err.Error(), "parameter block") {
		t.Errorf("a bad parameter: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = RunStep(ctx, env, StepSpec{Workload: "int", Seconds: 60})
	if err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("a cancelled step returned %v after %v", err, time.Since(start))
	}
}

// Run-to-run tolerances of the tests, on the reference machine (2 vCPUs
// shared with other tenants; docs/calibration.md): the score per
// CPU-second of the sandbox stays within ±35% of the median of repeated
// runs under any load seen there (measured ±1-21% for these workloads over
// five runs of 2 s on a busy host, ±1-6% on a quiet one); the wall-clock
// score within ±50% while the host is not oversubscribed, and it is not
// held to anything when it is.
const (
	efficiencyTolerance = 0.35
	wallScoreTolerance  = 0.5
)

// TestScoresStable repeats steps with the same seed and checks that their
// scores agree within the documented tolerance: the score per CPU-second
// of the CPU-bound ones at any load, the wall-clock score of all while the
// host is not oversubscribed. Memory latency per CPU-second is not held to
// the CPU-bound ones' bound: it is what a neighbour's use of the caches
// changes (42% off its median once in CI, at load 4.5 on two CPUs, against
// ±5-9% quiet), so it is logged.
func TestScoresStable(t *testing.T) {
	_, _, env := sharedEnv(t)
	const runs = 3
	for _, spec := range []StepSpec{
		{Workload: "hash", Params: Params{"block": "16384"}},
		{Workload: "float", Params: Params{"kernel": "matmul", "n": "64"}},
		{Workload: "compress", Params: Params{"mode": "deflate", "level": "3", "chunk": "1048576", "data": "mixed"}},
		{Workload: "memlat", Params: Params{"mib": "1"}},
	} {
		cpuBound := spec.Workload != "memlat"
		t.Run(spec.Workload, func(t *testing.T) {
			spec.Seconds = 1.5
			var scores, eff []float64
			overloaded := false
			for range runs {
				st, err := RunStep(context.Background(), env, spec)
				if err != nil {
					t.Fatal(err)
				}
				scores = append(scores, st.Score)
				eff = append(eff, st.Score/(st.Rate(meter.CPU)/1e9))
				// The load average counts this test's own workers,
				// about one per CPU.
				overloaded = overloaded || hostLoad() > 1.5*float64(runtime.NumCPU())
			}
			if worst := spread(eff); worst > efficiencyTolerance && cpuBound {
				t.Errorf("score per CPU-second off its median by %.0f%% (tolerance %.0f%%): %.4g", 100*worst, 100*efficiencyTolerance, eff)
			}
			worst := spread(scores)
			t.Logf("wall-clock scores %.4g, %.0f%% off the median at worst; per CPU-second %.0f%%; host load %.1f", scores, 100*worst, 100*spread(eff), hostLoad())
			if worst > wallScoreTolerance && !overloaded {
				t.Errorf("wall-clock score off its median by %.0f%% (tolerance %.0f%%)", 100*worst, 100*wallScoreTolerance)
			}
		})
	}
}

// spread is the largest |x/median - 1| of xs.
func spread(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	worst := 0.0
	for _, x := range s {
		worst = max(worst, math.Abs(x/med-1))
	}
	return worst
}

// hostLoad is the host's one-minute load average.
func hostLoad() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// testCalibration runs a small calibration in the shared sandbox.
func testCalibration(t *testing.T, env Env, workloads ...string) *Set {
	t.Helper()
	m, err := DescribeMachine(context.Background(), testSandbox.runsc, "")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := RunSuite(context.Background(), env, Options{Steps: len(workloads), Seconds: 1, Seed: 3, Workloads: workloads})
	if err != nil {
		t.Fatal(err)
	}
	s := &Set{Suite: Suite{SuiteName, SuiteVersion}, Created: time.Now().UTC(), Machine: m,
		Sandbox: SandboxInfo{MemoryBytes: DefaultSandboxMemory}, Run: RunInfo{Seconds: 1, Seed: 3}, Steps: steps}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// scaledClaim returns a copy of cal whose scores are multiplied by score
// and whose CPU time by cpu, rates kept consistent.
func scaledClaim(cal *Set, score, cpu float64) *Set {
	c := *cal
	c.Steps = slices.Clone(cal.Steps)
	for i := range c.Steps {
		st := &c.Steps[i]
		st.Score *= score
		var v meter.Vector
		for k := meter.Counter(0); k < meter.NumCounters; k++ {
			v[k] = st.Delta[k.Name()]
		}
		v[meter.CPU] = uint64(float64(v[meter.CPU]) * cpu)
		st.setCounters(v, st.Seconds)
	}
	return &c
}

func TestSpotCheck(t *testing.T) {
	_, _, env := sharedEnv(t)
	cal := testCalibration(t, env, "hash", "int")
	// An honest claim: the replay agrees, loosely (the host is shared and
	// bursty: replays seconds apart differed by up to 1.7×).
	res, err := SpotCheck(context.Background(), SpotConfig{Env: env, Calibration: cal, Step: -1, Seconds: 1,
		ScoreTolerance: 0.9, CounterTolerance: 2, Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.ScoreRatio < 0.2 || res.ScoreRatio > 5 || len(res.Counters) == 0 {
		t.Fatalf("honest claim: ok=%v ratio %.2f, counters %+v, problems %v", res.OK, res.ScoreRatio, res.Counters, res.Problems)
	}
	if describeParams(res.Measured.Params) != describeParams(res.Claimed.Params) {
		t.Errorf("replayed %v, claimed %v", res.Measured.Params, res.Claimed.Params)
	}
	t.Logf("honest claim: score ratio %.2f, counters %+v", res.ScoreRatio, res.Counters)

	// An inflated claim: ten times the score for a tenth of the CPU time
	// per unit of work, far beyond what a busy host can swing. The CPU
	// time claimed falls below the floor of what is compared, which must
	// not let it escape.
	res, err = SpotCheck(context.Background(), SpotConfig{Env: env, Calibration: scaledClaim(cal, 10, 0.1), Step: 0, Seconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || len(res.Problems) < 2 {
		t.Errorf("inflated claim passed: ratio %.2f, counters %+v, problems %v", res.ScoreRatio, res.Counters, res.Problems)
	}
	t.Logf("inflated claim: %s", strings.Join(res.Problems, "; "))

	// An understated claim (the provider delivers more than it says) is
	// no problem for the renter.
	res, err = SpotCheck(context.Background(), SpotConfig{Env: env, Calibration: scaledClaim(cal, 0.1, 10), Step: 1, Seconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.ScoreRatio < 2 {
		t.Errorf("understated claim: ok=%v, ratio %.2f, problems %v", res.OK, res.ScoreRatio, res.Problems)
	}

	// A lease with one CPU is expected to do what one of the
	// calibration's workers did.
	res, err = SpotCheck(context.Background(), SpotConfig{Env: Env{Command: env.Command}, Calibration: cal, Step: 0, Seconds: 0.5, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	st := cal.Steps[0]
	if want := st.Score * min(float64(st.Workers), 1) / min(float64(st.Workers), float64(cal.Machine.Cores)); math.Abs(res.ExpectedScore-want) > 1e-6*want {
		t.Errorf("expected score %v, want %v", res.ExpectedScore, want)
	}
	if len(res.Counters) != 0 {
		t.Errorf("compared counters without a meter: %+v", res.Counters)
	}
}

func TestEnsureCalibration(t *testing.T) {
	rt, _, _ := sharedEnv(t)
	dir := t.TempDir()
	signer := testenv.Signer(t)
	cfg := EnsureConfig{Dir: dir, Signer: signer, Calibrate: CalibrateConfig{
		Runtime: rt, Runsc: testSandbox.runsc,
		Sandbox: SandboxConfig{AgentBinary: testSandbox.agent, MemoryBytes: 512 << 20},
		Options: Options{Steps: 2, Seconds: 0.3, Workloads: []string{"hash", "syscall"}},
	}}
	set, ran, err := EnsureCalibration(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !ran || len(set.Steps) != 2 || set.Verify() != nil || set.Run.Note != "provider first start" {
		t.Fatalf("first start: ran=%v, %d steps, verify %v", ran, len(set.Steps), set.Verify())
	}
	path := CachePath(dir, set.Machine.Fingerprint)
	d1, _ := set.Digest()
	start := time.Now()
	again, ran, err := EnsureCalibration(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := again.Digest(); ran || d2 != d1 || time.Since(start) > 5*time.Second {
		t.Errorf("second start ran=%v in %v, digest %s, first %s", ran, time.Since(start), d2, d1)
	}
	// A changed machine misses the cache.
	other := set.Machine
	other.Kernel += "+1"
	other.Fingerprint = other.HardwareFingerprint()
	if other.Fingerprint == set.Machine.Fingerprint {
		t.Error("a new kernel keeps the fingerprint")
	}
	if _, err := loadCached(path, other); err == nil {
		t.Error("the cache serves another machine")
	}
	// A damaged cache is replaced.
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)/2], 0o644)
	_, ran, err = EnsureCalibration(context.Background(), cfg)
	if err != nil || !ran {
		t.Errorf("damaged cache: ran=%v, %v", ran, err)
	}
	if _, err := ReadFile(path); err != nil {
		t.Errorf("cache after the re-run: %v", err)
	}
	if ids := rt.Cgroups(); slices.ContainsFunc(ids, func(id string) bool { return id != testSandbox.id }) {
		t.Errorf("benchmark sandboxes left behind: %v", ids)
	}
}

func TestPTSNotInstalled(t *testing.T) {
	_, _, env := sharedEnv(t)
	err := CheckPTS(context.Background(), env)
	if !errors.Is(err, ErrNoPTS) || !strings.Contains(err.Error(), "phoronix-test-suite_10.8.4_all.deb") {
		t.Errorf("CheckPTS = %v", err)
	}
	if _, _, err := RunPTS(context.Background(), env, []string{"pts/compress-gzip"}, nil); !errors.Is(err, ErrNoPTS) {
		t.Errorf("RunPTS = %v", err)
	}
	if _, _, err := RunPTS(context.Background(), env, []string{"pts/x; rm -rf /"}, nil); err == nil || !strings.Contains(err.Error(), "not a test name") {
		t.Errorf("RunPTS of a shell command = %v", err)
	}
	home, _ := os.UserHomeDir()
	if PTSInImage(envOr("ZENNET_IMAGE", home+"/.cache/zennet/images/bookworm")) {
		t.Error("the image has phoronix-test-suite after all: update the test")
	}
}

// BenchmarkStep runs each workload for one second per iteration in the
// shared sandbox and reports its score and CPU use.
func BenchmarkStep(b *testing.B) {
	_, _, env := sharedEnv(b)
	for _, w := range WorkloadNames() {
		b.Run(w, func(b *testing.B) {
			var score, cpu float64
			for i := 0; i < b.N; i++ {
				st, err := RunStep(context.Background(), env, StepSpec{Workload: w, Seed: 1, Seconds: 1})
				if err != nil {
					b.Fatal(err)
				}
				score += st.Score
				cpu += st.Rate(meter.CPU) / 1e9
			}
			b.ReportMetric(score/float64(b.N), "score")
			b.ReportMetric(cpu/float64(b.N), "CPUs")
		})
	}
}

// BenchmarkRunToRun measures the run-to-run spread of every workload over
// five repeats of 2 s (docs/calibration.md), about two minutes: of the
// wall-clock score, of the score per CPU-second, and of the counters per
// unit of work that a spot check compares. ZENNET_BENCH_SEED picks the
// steps (default 11).
func BenchmarkRunToRun(b *testing.B) {
	_, _, env := sharedEnv(b)
	seed, _ := strconv.ParseUint(envOr("ZENNET_BENCH_SEED", "11"), 10, 64)
	for i := 0; i < b.N; i++ {
		for _, w := range WorkloadNames() {
			var scores, eff []float64
			perOp := map[meter.Counter][]float64{}
			var p Params
			for range 5 {
				st, err := RunStep(context.Background(), env, StepSpec{Workload: w, Seed: seed, Seconds: 2})
				if err != nil {
					b.Fatal(err)
				}
				p = st.Params
				scores = append(scores, st.Score)
				eff = append(eff, st.Score/(st.Rate(meter.CPU)/1e9))
				for c, floor := range counterFloors {
					if d := float64(st.Delta[c.Name()]); d >= floor {
						perOp[c] = append(perOp[c], d/st.Ops)
					}
				}
			}
			worst, worstName := 0.0, "-"
			for c, xs := range perOp {
				if len(xs) == 5 && spread(xs) > worst {
					worst, worstName = spread(xs), c.Name()
				}
			}
			fmt.Printf("%-9s %-45s wall ±%3.0f%%  per-CPU-s ±%3.0f%%  counters/op ±%3.0f%% (%s)  load %.1f\n",
				w, describeParams(p), 100*spread(scores), 100*spread(eff), 100*worst, worstName, hostLoad())
		}
	}
}

// BenchmarkSpotRotations measures what a renter's spot checks see of a
// calibration made on this machine minutes before: it calibrates like a
// provider's first start (the reference run's steps, 1 GiB, no quota, or
// ZENNET_SPOT_CAL_CPUS: a comma-separated list of quotas, one calibration
// each, 0 for none), then replays rotations of the first set's steps
// (SpotRotation, one step of each workload class) in a sandbox like a
// lease (1 CPU, 256 MiB) and prints each replay's work per msat billed
// relative to each set's claim. The bill is the tariff's, one rate on
// cpu_ns, whose size cancels out of the ratio: a set with every score ×1.3
// gives exactly these ratios over 1.3. ZENNET_SPOT_ROTATIONS sets the
// number of rotations (default 6), ZENNET_SPOT_OUT a file to write the
// sets and the replays to (JSON).
func BenchmarkSpotRotations(b *testing.B) {
	rt, _, _ := sharedEnv(b)
	ctx := context.Background()
	opts, err := ReferenceOptions()
	if err != nil {
		b.Fatal(err)
	}
	rotations, _ := strconv.Atoi(envOr("ZENNET_SPOT_ROTATIONS", "6"))
	var quotas []float64
	for _, f := range strings.Split(envOr("ZENNET_SPOT_CAL_CPUS", "0"), ",") {
		q, err := strconv.ParseFloat(f, 64)
		if err != nil {
			b.Fatal(err)
		}
		quotas = append(quotas, q)
	}
	type replay struct {
		Rotation int
		Step     int
		Workload string
		Ratios   []float64 // against each set
		Ops      float64
		CPU      uint64
		Load     float64
	}
	var out struct {
		Sets     []*Set
		CalLoads [][2]float64
		Replays  []replay
	}
	for i := 0; i < b.N; i++ {
		for _, q := range quotas {
			l0 := hostLoad()
			set, err := Calibrate(ctx, CalibrateConfig{Runtime: rt, Runsc: testSandbox.runsc, Sandbox: SandboxConfig{AgentBinary: testSandbox.agent, CPUs: q}, Options: opts})
			if err != nil {
				b.Fatal(err)
			}
			out.Sets, out.CalLoads = append(out.Sets, set), append(out.CalLoads, [2]float64{l0, hostLoad()})
			fmt.Printf("calibrated with quota %g: load %.1f to %.1f\n", q, l0, hostLoad())
		}
		id, err := StartSandbox(ctx, rt, SandboxConfig{AgentBinary: testSandbox.agent, CPUs: 1, MemoryBytes: 256 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Destroy(ctx, id)
		env, closeEnv, err := SandboxEnv(rt, id, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer closeEnv()
		bill := func(v meter.Vector) float64 { return float64(v[meter.CPU]) }
		for k := range rotations {
			var line []string
			for _, idx := range SpotRotation(out.Sets[0], nil) {
				res, err := SpotCheck(ctx, SpotConfig{Env: env, Calibration: out.Sets[0], Step: idx, CPUs: 1, Bill: bill})
				if err != nil {
					b.Fatal(err)
				}
				rp := replay{Rotation: k, Step: idx, Workload: res.Claimed.Workload, Ops: res.Measured.Ops, CPU: res.Measured.Delta[meter.CPU.Name()], Load: hostLoad()}
				var rs []string
				for _, set := range out.Sets {
					c := set.Steps[idx]
					r := (rp.Ops / float64(rp.CPU)) / (c.Score * c.Seconds / float64(c.Delta[meter.CPU.Name()]))
					rp.Ratios = append(rp.Ratios, r)
					rs = append(rs, fmt.Sprintf("%.2f", r))
				}
				out.Replays = append(out.Replays, rp)
				line = append(line, res.Claimed.Workload+" "+strings.Join(rs, "/"))
			}
			fmt.Printf("rotation %d (load %.1f): %s\n", k+1, hostLoad(), strings.Join(line, ", "))
		}
	}
	if p := os.Getenv("ZENNET_SPOT_OUT"); p != "" {
		j, _ := json.MarshalIndent(out, "", " ")
		if err := os.WriteFile(p, j, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
