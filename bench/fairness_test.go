package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pricing"
)

func TestMedianSample(t *testing.T) {
	s := func(secs float64, cpu, faults uint64) JobSample {
		return JobSample{Seconds: secs, Usage: map[string]uint64{"cpu_ns": cpu, "page_faults_minor": faults}}
	}
	tests := []struct {
		name    string
		samples []JobSample
		want    JobSample
	}{
		{"one", []JobSample{s(2, 10, 5)}, s(2, 10, 5)},
		// Each figure is the median of its own: the cold first run's
		// faults do not drag the CPU time along.
		{"three", []JobSample{s(5, 30, 900), s(2, 10, 5), s(3, 20, 7)}, s(3, 20, 7)},
		{"even count takes the lower middle", []JobSample{s(4, 40, 4), s(1, 10, 1), s(3, 30, 3), s(2, 20, 2)}, s(2, 20, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MedianSample(tt.samples)
			if err != nil {
				t.Fatal(err)
			}
			if got.Seconds != tt.want.Seconds || len(got.Usage) != len(tt.want.Usage) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for k, v := range tt.want.Usage {
				if got.Usage[k] != v {
					t.Errorf("%s = %d, want %d", k, got.Usage[k], v)
				}
			}
		})
	}
	if _, err := MedianSample(nil); err == nil {
		t.Error("no samples: no error")
	}
	if _, err := MedianSample([]JobSample{s(1, 1, 1), {Seconds: 1, Usage: map[string]uint64{"cpu_ns": 1, "x": 1}}}); err == nil {
		t.Error("different counters: no error")
	}
	if _, err := MedianSample([]JobSample{s(1, 1, 1), {Seconds: 1, Usage: map[string]uint64{"cpu_ns": 1}}}); err == nil {
		t.Error("a counter missing: no error")
	}
}

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
	s, err := jobSample(meter.Sample{Time: t0, Counters: a}, meter.Sample{Time: t0.Add(1500 * time.Millisecond), Counters: b})
	if err != nil {
		t.Fatal(err)
	}
	if s.Seconds != 1.5 || s.Usage["cpu_ns"] != 2.5e9 || s.Usage["io_write_bytes"] != 4086 || len(s.Usage) != int(meter.NumCounters) {
		t.Errorf("sample %+v", s)
	}
	if _, err := jobSample(meter.Sample{Time: t0}, meter.Sample{Time: t0}); err == nil {
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

// TestFairnessInput checks that a run's measurements become pricing's
// input (medians, the first provider's calibration as the reference) and
// that the JSON it writes is what 'zennet price fairness' reads.
func TestFairnessInput(t *testing.T) {
	set := testSet(t)
	job := func(secs float64, cpu uint64) JobSample {
		u := map[string]uint64{}
		for c := meter.Counter(0); c < meter.NumCounters; c++ {
			u[c.Name()] = 0
		}
		u["cpu_ns"] = cpu
		return JobSample{Seconds: secs, Usage: u}
	}
	run := &FairnessRun{Jobs: []FairJob{{Name: "a"}}}
	for _, name := range []string{"ref", "other"} {
		run.Providers = append(run.Providers, ProviderMeasurement{
			Provider: FairProvider{Name: name}, Set: set,
			Jobs: map[string][]JobSample{"a": {job(3, 3e9), job(1, 1e9), job(2, 2e9)}},
		})
	}
	in, err := run.fairnessInput(pricing.Prices{PerReferenceCPUSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if in.Reference == nil || in.Reference.Hash != in.Providers[0].Calibrations[0].Hash || len(in.Providers) != 2 {
		t.Fatalf("input %+v", in)
	}
	if j := in.Providers[1].Jobs[0]; j.Name != "a" || j.Seconds != 2 || j.Usage["cpu_ns"] != 2e9 {
		t.Errorf("job %+v", j)
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := pricing.DecodeFairnessInput(b)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := pricing.Fairness(back, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The same set and usage on both: the same bill, a CV of 0.
	if j := rep.Jobs[0]; j.ModelCV != 0 || j.CPUCV != 0 || !(j.Msat[0] > 0) {
		t.Errorf("report %+v", j)
	}
	run.Providers[1].Jobs["a"] = nil
	if _, err := run.fairnessInput(pricing.Prices{PerScore: 1}); err == nil {
		t.Error("a provider without runs of a job: no error")
	}
}

func TestRunFairnessChecks(t *testing.T) {
	ctx := context.Background()
	base := FairnessConfig{Providers: DefaultFairProviders[:2], Jobs: DefaultFairJobs[:1], Options: Options{Steps: 2, Seconds: 1, Seed: 1}}
	for _, tt := range []struct {
		name string
		mod  func(*FairnessConfig)
		msg  string
	}{
		{"one provider", func(c *FairnessConfig) { c.Providers = c.Providers[:1] }, "two provider configurations"},
		{"repeated provider", func(c *FairnessConfig) { c.Providers = []FairProvider{{Name: "a"}, {Name: "a"}} }, "repeated"},
		{"no jobs", func(c *FairnessConfig) { c.Jobs = nil }, "no jobs"},
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
