package pricecmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/meter"
)

// writeRun writes a measured run as 'bench fairness -o' leaves it: the
// arms' sets from testdata (one replicate each) and ten pairs of every
// comparison's jobs, the test side using factor times the reference's CPU
// time.
func writeRun(t *testing.T, factor map[string]float64) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, bench.FairnessSetsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	sets := map[string]string{"reference": "systrap", "reference-2": "systrap", "half": "systrap-cpus1", "half-neighbour": "systrap-neighbour", "ptrace": "ptrace"}
	run := bench.FairnessRun{Replicates: 1, Pairs: 10, Jobs: bench.DefaultFairJobs}
	for _, a := range bench.DefaultFairArms {
		set, err := bench.ReadFile(filepath.Join("..", "..", "testdata", "calibration", sets[a.Name]+".json"))
		if err != nil {
			t.Fatal(err)
		}
		set.Signer, set.Signature = nil, nil
		if err := set.WriteFile(filepath.Join(dir, bench.FairnessSetsDir, a.Name+"-1.json")); err != nil {
			t.Fatal(err)
		}
		run.Arms = append(run.Arms, bench.ArmMeasurement{Arm: a})
	}
	sample := func(cpu float64) bench.JobSample {
		u := map[string]uint64{}
		for c := meter.Counter(0); c < meter.NumCounters; c++ {
			u[c.Name()] = 0
		}
		u["cpu_ns"], u["cpu_user_ns"], u["proc_cpu_ns"] = uint64(cpu*1e9), uint64(cpu*1e9), uint64(cpu*1e9)
		var v meter.Vector
		v[meter.CPU], v[meter.CPUUser], v[meter.ProcCPU] = uint64(cpu*1e9), uint64(cpu*1e9), uint64(cpu*1e9)
		return bench.JobSample{Seconds: 2, Usage: u, Trace: []bench.TracePoint{{At: 2, Counters: v}}}
	}
	for _, c := range bench.DefaultFairComparisons {
		m := bench.ComparisonMeasurement{Comparison: c, Pairs: map[string][]bench.FairPair{}}
		for _, j := range c.Jobs {
			for p := range 10 {
				n := 1 + 0.01*float64(p%3-1)
				m.Pairs[j] = append(m.Pairs[j], bench.FairPair{Ref: sample(0.6), Test: sample(0.6 * n * factor[c.Name]), RefFirst: bench.RefFirst(p, 0)})
			}
		}
		run.Comparisons = append(run.Comparisons, m)
	}
	b, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bench.FairnessRunsFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runBenchFairnessCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewCmdBenchFairness(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, &cmdutil.GlobalOptions{})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), err
}

// TestBenchFairnessFrom prices a run's files again (--from) and checks
// that --check fails exactly when a goal is not met.
func TestBenchFairnessFrom(t *testing.T) {
	// ptrace's jobs take twice the CPU time; the controls none more.
	dir := writeRun(t, map[string]float64{"self": 1, "quota": 1, "quota-neighbour": 1, "ptrace": 2})
	out, err := runBenchFairnessCmd(t, "--from", dir, "--check")
	if !errors.Is(err, bench.ErrGoalNotMet) {
		t.Fatalf("--check: %v, want ErrGoalNotMet\n%s", err, out)
	}
	for _, want := range []string{"Not every goal is met.", "ptrace\ttar\ttariff bias", "refused: the calibration does not fit", "Inflated (reference-2, CPU counters ×1.5)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The CPU-bound systrap-cpus1 set's rate is that of a slower machine,
	// the CPU time the same: the tariff bills it below 0.95, not met.
	if !strings.Contains(out, "quota\tpython\ttariff ratio within ±5% of 1 and inside the noise band\tNOT met") {
		t.Errorf("the quota control on another machine's set: met?\n%s", out)
	}
	var rep bench.FairnessReport
	b, err := os.ReadFile(filepath.Join(dir, bench.FairnessReportFile))
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	if err != nil || len(rep.Goals) != 12 || rep.Met {
		t.Fatalf("%s: %d goals, met %v, %v", bench.FairnessReportFile, len(rep.Goals), rep.Met, err)
	}
	// Without --check it prints the same and succeeds.
	if _, err := runBenchFairnessCmd(t, "--from", dir); err != nil {
		t.Errorf("without --check: %v", err)
	}
	if _, err := runBenchFairnessCmd(t, "--from", t.TempDir()); err == nil {
		t.Error("--from an empty directory: no error")
	}
}

func TestBenchFairnessFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{nil, "-o DIR"},
		{[]string{"-o", "x", "--pairs", "1"}, "--pairs 1"},
		{[]string{"-o", "x", "--replicates", "0"}, "--replicates 0"},
		{[]string{"-o", "x", "--comparisons", "speed"}, `no comparison "speed"`},
		{[]string{"-o", "x", "--price-per-work", "0"}, "--price-per-work"},
		{[]string{"-o", "x", "--cpu", "-2"}, "--cpu -2"},
		{[]string{"-o", "x", "-m", "256M"}, "at least 512M"},
	} {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			_, err := runBenchFairnessCmd(t, tt.args...)
			var ue cmdutil.UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("%v: %v, want a usage error containing %q", tt.args, err, tt.msg)
			}
		})
	}
}
