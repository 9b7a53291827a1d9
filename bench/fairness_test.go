package bench

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pricing"
)

func TestCalibrationOf(t *testing.T) {
	set := testSet(t)
	c, err := CalibrationOf(set)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := set.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash != "sha256:"+digest {
		t.Errorf("hash %s, want sha256:%s", c.Hash, digest)
	}
	if len(c.Rows) != 2 || c.Rows[0].Step != "hash/100" || c.Rows[1].Step != "int/101" {
		t.Fatalf("rows %+v", c.Rows)
	}
	if r := c.Rows[1]; r.Score != 4e8 || r.Seconds != set.Steps[1].Seconds || r.Rates["cpu_ns"] != set.Steps[1].Rates["cpu_ns"] {
		t.Errorf("row %+v", r)
	}
	// The rows fit: against itself, per reference CPU-second.
	if _, err := pricing.Fit([]pricing.Calibration{c}, pricing.Prices{PerReferenceCPUSecond: 1000}, pricing.Options{Reference: &c}); err != nil {
		t.Error(err)
	}
	set.Steps[1].Workload, set.Steps[1].Seed = "hash", 100
	if _, err := CalibrationOf(set); err == nil {
		t.Error("a repeated step: no error")
	}
}

func TestJobSample(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var a, b meter.Vector
	a[meter.CPU], b[meter.CPU] = 1e9, 3.5e9
	a[meter.WriteBytes], b[meter.WriteBytes] = 10, 4096
	mid := a
	mid[meter.CPU] = 2e9
	a[meter.MemoryPeak], mid[meter.MemoryPeak], b[meter.MemoryPeak] = 100, 300, 200
	s, err := jobSample(meter.Sample{Time: t0, Counters: a}, []meter.Sample{
		{Time: t0.Add(500 * time.Millisecond), Counters: mid},
		{Time: t0.Add(1500 * time.Millisecond), Counters: b},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Seconds != 1.5 || s.Usage["cpu_ns"] != 2.5e9 || s.Usage["io_write_bytes"] != 4086 || len(s.Usage) != int(meter.NumCounters) {
		t.Errorf("sample %+v", s)
	}
	// The trace: counters since the start, the peak as read, the last
	// point the delta.
	if len(s.Trace) != 2 || s.Trace[0].At != 0.5 || s.Trace[0].Counters[meter.CPU] != 1e9 || s.Trace[0].Counters[meter.MemoryPeak] != 300 ||
		s.Trace[1].At != 1.5 || s.Trace[1].Counters[meter.CPU] != 2.5e9 || s.Usage["memory_peak_bytes"] != 200 {
		t.Errorf("trace %+v", s.Trace)
	}
	if _, err := jobSample(meter.Sample{Time: t0}, []meter.Sample{{Time: t0}}); err == nil {
		t.Error("no time passed: no error")
	}
}

func TestExpectLine(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("noise\nready\n  done  \n"))
	if err := expectLine(br, "ready"); err != nil {
		t.Fatal(err)
	}
	if err := expectLine(br, "done"); err != nil {
		t.Fatal(err)
	}
	if err := expectLine(bufio.NewReader(strings.NewReader("ready\n")), "done"); err == nil || !strings.Contains(err.Error(), "exited before") {
		t.Errorf("EOF: %v", err)
	}
}

func TestRunFairnessChecks(t *testing.T) {
	ctx := context.Background()
	base := FairnessConfig{Arms: DefaultFairArms, Comparisons: DefaultFairComparisons, Jobs: DefaultFairJobs, Options: Options{Steps: 2, Seconds: 1, Seed: 1}}
	if err := checkFairness(&base); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	if base.Pairs != DefaultFairPairs || base.Replicates != DefaultFairReplicates {
		t.Errorf("defaults not filled: %+v", base)
	}
	for _, tt := range []struct {
		name string
		mod  func(*FairnessConfig)
		msg  string
	}{
		{"one arm", func(c *FairnessConfig) { c.Arms = c.Arms[:1] }, "two arms"},
		{"repeated arm", func(c *FairnessConfig) { c.Arms = []FairArm{{Name: "a"}, {Name: "a"}} }, "repeated"},
		{"no comparisons", func(c *FairnessConfig) { c.Comparisons = nil }, "no comparisons"},
		{"the reference as a test arm", func(c *FairnessConfig) {
			c.Comparisons = []FairComparison{{Name: "x", Arm: "reference", Kind: FairNoise, Jobs: []string{"python"}}}
		}, "not a test arm"},
		{"an unknown arm", func(c *FairnessConfig) {
			c.Comparisons = []FairComparison{{Name: "x", Arm: "kvm", Kind: FairNoise, Jobs: []string{"python"}}}
		}, "not a test arm"},
		{"an unknown kind", func(c *FairnessConfig) {
			c.Comparisons = []FairComparison{{Name: "x", Arm: "half", Kind: "speed", Jobs: []string{"python"}}}
		}, "kind"},
		{"an unknown job", func(c *FairnessConfig) {
			c.Comparisons = []FairComparison{{Name: "x", Arm: "half", Kind: FairNoise, Jobs: []string{"make"}}}
		}, "no job"},
		{"no noise floor", func(c *FairnessConfig) { c.Comparisons = DefaultFairComparisons[1:] }, "no noise comparison"},
		{"a job without a noise floor", func(c *FairnessConfig) {
			c.Comparisons = []FairComparison{{Name: "self", Arm: "reference-2", Kind: FairNoise, Jobs: []string{"python"}}, DefaultFairComparisons[3]}
		}, "no noise floor"},
		{"one pair", func(c *FairnessConfig) { c.Pairs = 1 }, "two or more"},
		{"bad job name", func(c *FairnessConfig) { c.Jobs = []FairJob{{Name: "a b"}} }, "not a plain word"},
		{"no steps", func(c *FairnessConfig) { c.Options.Steps = 0 }, "0 steps"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			if _, err := RunFairness(ctx, cfg); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("RunFairness = %v, want an error containing %q", err, tt.msg)
			}
		})
	}
}

// TestRefFirst checks the pairing order: each job's pairs alternate
// which side goes first, so over an even number of pairs each side goes
// first equally often, and within a pair consecutive jobs alternate too.
func TestRefFirst(t *testing.T) {
	for k := range 4 {
		first := 0
		for p := range 10 {
			if RefFirst(p, k) {
				first++
			}
			if RefFirst(p, k) == RefFirst(p+1, k) {
				t.Errorf("job %d: pairs %d and %d start on the same side", k, p, p+1)
			}
			if RefFirst(p, k) == RefFirst(p, k+1) {
				t.Errorf("pair %d: jobs %d and %d start on the same side", p, k, k+1)
			}
		}
		if first != 5 {
			t.Errorf("job %d: the reference first in %d of 10 pairs", k, first)
		}
	}
}

func TestMedianSet(t *testing.T) {
	// Three replicates of two steps; the middle one by work per
	// CPU-second is taken whole, whatever order they come in.
	reps := []*Set{testSet(t), testSet(t), testSet(t)}
	for r, score := range []float64{5e8, 3e8, 4e8} {
		reps[r].Steps[0].Score = score
		reps[r].Steps[1].Score = 9e8 - score
		reps[r].Steps[0].Delta["page_faults_minor"] = uint64(r)
	}
	med, err := MedianSet(reps)
	if err != nil {
		t.Fatal(err)
	}
	if med.Steps[0].Score != 4e8 || med.Steps[0].Delta["page_faults_minor"] != 2 || med.Steps[1].Score != 5e8 {
		t.Errorf("median steps %+v", med.Steps)
	}
	if reps[0].Steps[0].Score != 5e8 {
		t.Error("MedianSet changed its input")
	}
	// Even: the lower middle.
	if med, _ := MedianSet(reps[:2]); med.Steps[0].Score != 3e8 {
		t.Errorf("two replicates: score %v, want the lower 3e8", med.Steps[0].Score)
	}
	bad := testSet(t)
	bad.Steps[1].Seed++
	if _, err := MedianSet([]*Set{reps[0], bad}); err == nil {
		t.Error("replicates of different steps: no error")
	}
	bad.Steps = bad.Steps[:1]
	if _, err := MedianSet([]*Set{reps[0], bad}); err == nil {
		t.Error("replicates of different lengths: no error")
	}
	if _, err := MedianSet(nil); err == nil {
		t.Error("no replicates: no error")
	}
}
