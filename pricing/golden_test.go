package pricing

import (
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the files under testdata/pricing")

const testdata = "../testdata/pricing"

func writeGolden(t *testing.T, name string, v any) {
	t.Helper()
	var b []byte
	var err error
	if m, ok := v.(*Model); ok {
		b, err = Encode(m)
	} else {
		b, err = json.MarshalIndent(v, "", "  ")
		b = append(b, '\n')
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(testdata, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatalf("%v (run go test ./pricing -run Golden -update)", err)
	}
	return b
}

// TestGolden checks the example files under testdata/pricing, which the
// documentation and the command line's examples use: a synthetic
// calibration, a job's usage, the model fitted from the one and the
// fairness experiment of the synthetic world. -update rewrites them.
func TestGolden(t *testing.T) {
	if *update {
		rng := rand.New(rand.NewPCG(2024, 12))
		cal := synthCalibration(rng, 12, 0.005)
		writeGolden(t, "calibration.json", cal)
		m, err := Fit([]Calibration{cal}, Prices{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		writeGolden(t, "model.json", m)
		writeGolden(t, "usage.json", UsageFromVector(synthVector(rng)))
		writeGolden(t, "fairness.json", synthFairness(rng, 0.01, 1000))
	}

	cal, err := DecodeCalibration(readGolden(t, "calibration.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Decode(readGolden(t, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Fit([]Calibration{cal}, Prices{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Rates may differ in the last bits between architectures (fused
	// multiply-add); the parties agree on a model's bytes, not on refitting.
	if len(got.Counters) != len(want.Counters) || len(got.Components) != len(want.Components) {
		t.Fatalf("refit: %d counters, %d components; golden %d, %d", len(got.Counters), len(got.Components), len(want.Counters), len(want.Components))
	}
	for i, c := range got.Counters {
		if w := want.Counters[i]; c.Name != w.Name || !near(c.Rate, w.Rate, 1e-9) && (c.Rate > 1e-300 || w.Rate > 1e-300) {
			t.Errorf("counter %s: rate %v, golden %v", c.Name, c.Rate, w.Rate)
		}
	}
	u, err := DecodeUsage(readGolden(t, "usage.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := want.Quote(u); err != nil {
		t.Fatal(err)
	}

	in, err := DecodeFairnessInput(readGolden(t, "fairness.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Fairness(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Summary.Met {
		t.Errorf("fairness goal not met on the example: %+v", rep.Summary)
	}
}
