package pricing

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func logReport(t *testing.T, rep *FairnessReport) {
	t.Helper()
	for _, p := range rep.Providers {
		held := 0.0
		if p.RMSHeldOut != nil {
			held = *p.RMSHeldOut
		}
		t.Logf("provider %-10s %d components, variance kept %.4f%%, residual %.2f%%, held out %.2f%%",
			p.Name, p.Components, 100*p.VarianceKept, 100*p.RMSResidual, 100*held)
	}
	t.Logf("%-12s %9s %9s %9s", "job", "model CV", "cpu-s CV", "wall-s CV")
	for _, j := range rep.Jobs {
		t.Logf("%-12s %8.2f%% %8.2f%% %8.2f%%", j.Name, 100*j.ModelCV, 100*j.CPUCV, 100*j.WallCV)
	}
	s := rep.Summary
	t.Logf("%-12s %8.2f%% %8.2f%% %8.2f%%   (max model CV %.2f%%, goal met: %v)", "mean", 100*s.MeanModelCV, 100*s.MeanCPUCV, 100*s.MeanWallCV, 100*s.MaxModelCV, s.Met)
}

// TestFairnessSynthetic runs the fairness harness on the synthetic world:
// four provider configurations on which the same work costs different CPU
// and wall time, each calibrated honestly, and six held-out jobs.
func TestFairnessSynthetic(t *testing.T) {
	tests := []struct {
		name string
		sd   float64
	}{
		{"exact counters", 0},
		{"1% noise", 0.01},
		{"2% noise", 0.02},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := synthFairness(rand.New(rand.NewPCG(7, 7)), tt.sd, 1000)
			rep, err := Fairness(in, Options{})
			if err != nil {
				t.Fatal(err)
			}
			logReport(t, rep)
			if !rep.Summary.Met || rep.Summary.MaxModelCV > GoalCV {
				t.Errorf("goal not met: %+v", rep.Summary)
			}
			if rep.Summary.MeanCPUCV < 0.2 {
				t.Errorf("the synthetic providers should differ in CPU time: CPU-second CV %v", rep.Summary.MeanCPUCV)
			}
			for _, j := range rep.Jobs {
				if len(j.Msat) != len(providers) || j.Coverage < 0.99 {
					t.Errorf("job %s: %d bills, coverage %v", j.Name, len(j.Msat), j.Coverage)
				}
			}
		})
	}
}

// TestFairnessLimit shows the method's limit: on a provider whose counters
// cannot tell its resources apart (memory traffic costs relatively more CPU
// time than on the reference, and only CPU time sees it), no non-negative
// rates price all work fairly. The harness must show it, not hide it.
func TestFairnessLimit(t *testing.T) {
	saved := slices.Clone(providers)
	defer func() { providers = saved }()
	providers[2].m.mem = 0.25 // "fast": compute 1.7× faster, memory not at all
	in := synthFairness(rand.New(rand.NewPCG(7, 7)), 0.01, 1000)
	rep, err := Fairness(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, rep)
	if rep.Summary.MeanModelCV >= rep.Summary.MeanCPUCV {
		t.Errorf("the model (%v) should still beat CPU-second billing (%v)", rep.Summary.MeanModelCV, rep.Summary.MeanCPUCV)
	}
	if !slices.ContainsFunc(rep.Providers[2].Warnings, func(w string) bool { return strings.Contains(w, "non-negative") }) &&
		rep.Providers[2].RMSResidual < 0.01 {
		t.Errorf("the fast provider's fit should show the strain: %+v", rep.Providers[2])
	}
}

func TestFairnessErrors(t *testing.T) {
	base := func() FairnessInput { return synthFairness(rand.New(rand.NewPCG(1, 1)), 0, 1000) }
	tests := []struct {
		name string
		edit func(in *FairnessInput)
		msg  string
	}{
		{"one provider", func(in *FairnessInput) { in.Providers = in.Providers[:1] }, "two providers or more, got 1"},
		{"no jobs", func(in *FairnessInput) { in.Providers[0].Jobs = nil }, "ran no jobs"},
		{"job missing", func(in *FairnessInput) { in.Providers[1].Jobs = in.Providers[1].Jobs[1:] }, "ran 5 jobs, provider systrap 6"},
		{"job renamed", func(in *FairnessInput) { in.Providers[1].Jobs[0].Name = "other" }, `ran job "other", which provider systrap did not`},
		{"job twice", func(in *FairnessInput) { in.Providers[1].Jobs[1] = in.Providers[1].Jobs[0] }, "twice"},
		{"no wall time", func(in *FairnessInput) { in.Providers[1].Jobs[0].Seconds = 0 }, "wall seconds 0"},
		{"unknown counter", func(in *FairnessInput) { in.Providers[1].Jobs[0].Usage["x"] = 1 }, `counter "x" is not in the model`},
		{"bad calibration", func(in *FairnessInput) { in.Providers[3].Calibrations[0].Rows[0].Rates["cpu_ns"] = -1 }, "provider neighbour: bad calibration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			tt.edit(&in)
			_, err := Fairness(in, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %v, want one containing %q", err, tt.msg)
			}
			if !errors.Is(err, ErrCalibration) && !errors.Is(err, ErrUsage) {
				t.Fatalf("err %v is neither ErrCalibration nor ErrUsage", err)
			}
		})
	}
}

func TestCV(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{1, 1, 1}, 0},
		{[]float64{1, 3}, 0.7071067811865476}, // sd √2, mean 2
		{[]float64{0, 0}, 0},
		{[]float64{5}, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.xs), func(t *testing.T) {
			if got := cv(tt.xs); !near(got, tt.want, 1e-12) && got != tt.want {
				t.Fatalf("cv = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFairnessSummaryCheck(t *testing.T) {
	tests := []struct {
		name string
		s    FairnessSummary
		want string // "" for met
	}{
		{"met", FairnessSummary{MeanModelCV: 0.01, MaxModelCV: 0.02, MeanCPUCV: 0.2, Met: true}, ""},
		{"not met", FairnessSummary{MeanModelCV: 0.042, MaxModelCV: 0.1, MeanCPUCV: 0.05},
			"fairness goal not met: model CV 4.20% mean, 10.00% max; CPU-second CV 5.00% mean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Check()
			if tt.want == "" {
				if err != nil {
					t.Errorf("Check() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrGoalNotMet) || err.Error() != tt.want {
				t.Errorf("Check() = %v, want %q", err, tt.want)
			}
		})
	}
}
