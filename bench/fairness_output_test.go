package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pricing"
)

func TestLookupFair(t *testing.T) {
	tests := []struct {
		name, provider, job string
		found               bool
	}{
		{"the reference", "systrap", "gzip", true},
		{"the last", "systrap-cpus1", "pipeline", true},
		{"unknown", "kvm", "make", false},
		{"empty", "", "", false},
		{"case matters", "Systrap", "GZIP", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := LookupFairProvider(tt.provider)
			if ok != tt.found || (ok && p.Name != tt.provider) {
				t.Errorf("LookupFairProvider(%q) = %+v, %v", tt.provider, p, ok)
			}
			j, ok := LookupFairJob(tt.job)
			if ok != tt.found || (ok && (j.Name != tt.job || j.Script == "")) {
				t.Errorf("LookupFairJob(%q) = %+v, %v", tt.job, j, ok)
			}
		})
	}
}

func TestReadSets(t *testing.T) {
	dir := t.TempDir()
	if err := testSet(t).WriteFile(filepath.Join(dir, "a.json")); err != nil {
		t.Fatal(err)
	}
	sets, err := ReadSets(dir, []FairProvider{{Name: "a"}})
	if err != nil || len(sets) != 1 || sets["a"] == nil || len(sets["a"].Steps) != 2 {
		t.Fatalf("ReadSets = %v, %v", sets, err)
	}
	if _, err := ReadSets(dir, []FairProvider{{Name: "a"}, {Name: "b"}}); err == nil {
		t.Error("a provider without a set: no error")
	}
}

// testFairnessRun is a measured run of two providers with the same set and
// the same job usage.
func testFairnessRun(t *testing.T) *FairnessRun {
	t.Helper()
	u := map[string]uint64{}
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		u[c.Name()] = 0
	}
	u["cpu_ns"] = 2e9
	run := &FairnessRun{Repeats: 1, Jobs: []FairJob{{Name: "a", Script: "true"}}}
	for _, name := range []string{"ref", "other"} {
		run.Providers = append(run.Providers, ProviderMeasurement{
			Provider: FairProvider{Name: name}, Set: testSet(t), LoadBefore: "0.1 0.1 0.1", LoadAfter: "0.2 0.1 0.1",
			Jobs: map[string][]JobSample{"a": {{Seconds: 2, Usage: u}}},
		})
	}
	in, err := run.fairnessInput(pricing.Prices{PerReferenceCPUSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	run.Input = in
	return run
}

func TestFairnessFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, FairnessSetsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	run := testFairnessRun(t)
	if err := run.writeFiles(dir); err != nil {
		t.Fatal(err)
	}
	sets, err := ReadSets(filepath.Join(dir, FairnessSetsDir), []FairProvider{{Name: "ref"}, {Name: "other"}})
	if err != nil || len(sets) != 2 {
		t.Fatalf("the sets written: %v, %v", sets, err)
	}
	var runs struct {
		Repeats   int `json:"repeats"`
		Providers []struct {
			LoadAfter string                 `json:"load_after"`
			Jobs      map[string][]JobSample `json:"jobs"`
		} `json:"providers"`
	}
	b, err := os.ReadFile(filepath.Join(dir, FairnessRunsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &runs); err != nil || runs.Repeats != 1 || len(runs.Providers) != 2 || runs.Providers[1].LoadAfter != "0.2 0.1 0.1" || len(runs.Providers[1].Jobs["a"]) != 1 {
		t.Fatalf("%s: %+v, %v", FairnessRunsFile, runs, err)
	}

	rep, input, err := run.Report(dir, pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if input != filepath.Join(dir, FairnessInputFile) || len(rep.Jobs) != 1 || rep.Jobs[0].ModelCV != 0 {
		t.Errorf("report %+v, input %s", rep, input)
	}
	// The input file re-runs to the same report, the report file holds it.
	b, err = os.ReadFile(input)
	if err != nil {
		t.Fatal(err)
	}
	in, err := pricing.DecodeFairnessInput(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := pricing.Fairness(in, pricing.Options{})
	if err != nil || again.Summary != rep.Summary {
		t.Errorf("re-run: %+v, %v; want %+v", again, err, rep.Summary)
	}
	var written pricing.FairnessReport
	if b, err = os.ReadFile(filepath.Join(dir, FairnessReportFile)); err == nil {
		err = json.Unmarshal(b, &written)
	}
	if err != nil || written.Summary != rep.Summary || len(written.Providers) != 2 {
		t.Errorf("%s: %+v, %v", FairnessReportFile, written, err)
	}

	// A reference of its own replaces the first provider's.
	ref := run.Input.Providers[1].Calibrations[0]
	ref.Hash = "another"
	if _, _, err := run.Report(dir, pricing.Options{Reference: &ref}); err != nil {
		t.Fatal(err)
	}
	if run.Input.Reference == nil || run.Input.Reference.Hash != "another" {
		t.Errorf("reference %+v, want the one given", run.Input.Reference)
	}
}
