package bench

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/pricing"
)

func TestLookupFair(t *testing.T) {
	tests := []struct {
		name, arm, comparison, job string
		found                      bool
	}{
		{"the first", "reference", "self", "python", true},
		{"the last", "ptrace", "ptrace", "pipeline", true},
		{"unknown", "kvm", "speed", "make", false},
		{"empty", "", "", "", false},
		{"case matters", "Reference", "Self", "PYTHON", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ok := LookupFairArm(tt.arm)
			if ok != tt.found || (ok && a.Name != tt.arm) {
				t.Errorf("LookupFairArm(%q) = %+v, %v", tt.arm, a, ok)
			}
			c, ok := LookupFairComparison(tt.comparison)
			if ok != tt.found || (ok && c.Name != tt.comparison) {
				t.Errorf("LookupFairComparison(%q) = %+v, %v", tt.comparison, c, ok)
			}
			j, ok := LookupFairJob(tt.job)
			if ok != tt.found || (ok && (j.Name != tt.job || j.Script == "")) {
				t.Errorf("LookupFairJob(%q) = %+v, %v", tt.job, j, ok)
			}
		})
	}
}

// testOffer is the renter's offer check as far as bench can make it
// (terms, which has the real one, imports bench): the tariff, refused
// when untrusted.
func testOffer(set, ref *Set, price float64) (pay.Rates, error) {
	var rates pay.Rates
	cal, err := CalibrationOf(set)
	if err != nil {
		return rates, err
	}
	rc, err := CalibrationOf(ref)
	if err != nil {
		return rates, err
	}
	tf, err := pricing.FitTariff(cal, pricing.Prices{PerReferenceCPUSecond: price}, &rc)
	if err != nil {
		return rates, err
	}
	if err := tf.Trusted(); err != nil {
		return rates, err
	}
	return rates, rates.SetFloat(meter.CPU, tf.Rate)
}

// sample is a job run of cpu CPU-seconds over secs seconds, metered at
// an even pace every quarter second.
func sample(cpu, secs float64) JobSample {
	u := map[string]uint64{}
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		u[c.Name()] = 0
	}
	u["cpu_ns"], u["cpu_user_ns"] = uint64(cpu*1e9), uint64(cpu*1e9)
	s := JobSample{Seconds: secs, Usage: u}
	for at := 0.25; at <= secs+1e-9; at += 0.25 {
		var v meter.Vector
		v[meter.CPU] = uint64(cpu * 1e9 * at / secs)
		v[meter.CPUUser] = v[meter.CPU]
		s.Trace = append(s.Trace, TracePoint{At: at, Counters: v})
	}
	return s
}

// lightThenHeavy is 5 s at 0.6 CPUs, then 1 s at 1.
func lightThenHeavy() JobSample {
	s := sample(4, 6)
	s.Trace = nil
	for at := 0.5; at <= 6; at += 0.5 {
		var v meter.Vector
		v[meter.CPU] = uint64(1e9 * (0.6*min(at, 5) + max(at-5, 0)))
		s.Trace = append(s.Trace, TracePoint{At: at, Counters: v})
	}
	return s
}

// noise are the test side's multipliers in the synthetic pairs.
var noise = []float64{1.01, 0.99, 1.02, 0.98, 1.0, 1.005}

// testRun is a synthetic measured run: the reference, a second reference,
// a "same" arm billed like the reference, a "dearer" one whose jobs take
// 10% more CPU time for the same calibration, and a "slow" one whose
// CPU-seconds do half the work in calibration and in its jobs.
func testRun(t *testing.T) *FairnessRun {
	t.Helper()
	slow := testSet(t)
	for i := range slow.Steps {
		slow.Steps[i].Score /= 2
	}
	arms := []struct {
		name string
		set  *Set
	}{{"reference", testSet(t)}, {"reference-2", testSet(t)}, {"same", testSet(t)}, {"dearer", testSet(t)}, {"slow", slow}}
	run := &FairnessRun{Replicates: 1, Pairs: len(noise)}
	for _, a := range arms {
		run.Arms = append(run.Arms, ArmMeasurement{Arm: FairArm{Name: a.name, CPUs: 1}, Replicates: []*Set{a.set}, Set: a.set})
	}
	comparison := func(name, arm, kind string, factor float64) ComparisonMeasurement {
		m := ComparisonMeasurement{Comparison: FairComparison{Name: name, Arm: arm, Kind: kind, Jobs: []string{"a"}}, Pairs: map[string][]FairPair{}}
		for i, n := range noise {
			m.Pairs["a"] = append(m.Pairs["a"], FairPair{Ref: sample(0.5, 1), Test: sample(0.5*factor*n, 1.2), RefFirst: RefFirst(i, 0)})
		}
		return m
	}
	run.Comparisons = []ComparisonMeasurement{
		comparison("self", "reference-2", FairNoise, 1),
		comparison("same", "same", FairControl, 1.01),
		comparison("dearer", "dearer", FairControl, 1.10),
		comparison("slow", "slow", FairBias, 2),
	}
	return run
}

func TestAnalyseFairness(t *testing.T) {
	run := testRun(t)
	rep, err := AnalyseFairness(run, FairnessAnalysis{Price: 100, Offer: testOffer})
	if err != nil {
		t.Fatal(err)
	}
	goals := map[string]GoalResult{}
	for _, g := range rep.Goals {
		goals[g.Comparison+" "+g.Goal] = g
	}
	if len(rep.Arms) != 5 || math.Abs(rep.Arms[0].TariffMsatPerCPUSecond-100) > 1e-9 || math.Abs(rep.Arms[4].TariffMsatPerCPUSecond-50) > 1e-9 {
		t.Errorf("arms %+v", rep.Arms)
	}
	self := rep.Comparisons[0].Jobs[0]
	if self.Band != nil || math.Abs(self.CPU.Ratio-1) > 0.01 || self.Tariff.Ratio != self.CPU.Ratio || !(self.Tariff.LogSD > 0) {
		t.Errorf("noise floor %+v", self)
	}
	if g := goals["same "+GoalControl]; !g.Met || rep.Comparisons[1].Jobs[0].Band == nil {
		t.Errorf("a control 1%% off, inside the noise: %+v", g)
	}
	if g := goals["dearer "+GoalControl]; g.Met || math.Abs(g.Value-1.10) > 0.01 {
		t.Errorf("a control 10%% off: %+v", g)
	}
	// The slow arm's CPU-seconds do half the work in calibration and
	// jobs alike: CPU-seconds bill double, the tariff the same.
	slow := rep.Comparisons[3].Jobs[0]
	if math.Abs(slow.CPU.Ratio-2) > 0.02 || math.Abs(slow.Tariff.Ratio-1) > 0.01 || slow.Band == nil {
		t.Errorf("slow %+v", slow)
	}
	if g := goals["slow "+GoalTariff]; !g.Met {
		t.Errorf("slow, tariff: %+v", g)
	}
	if _, ok := goals["slow "+GoalModel]; !ok {
		t.Error("no goal for the model on the bias comparison")
	}
	// The inflated provider's job stays under the quota: every report
	// passes, and the refit rate pays exactly the honest bill.
	if inf := rep.Inflated; inf == nil || inf.Refused != "" || math.Abs(inf.RateRatio-1/InflatedScale) > 1e-9 || len(inf.Jobs) != 1 || inf.Jobs[0].Rejected != 0 {
		t.Fatalf("inflated %+v", rep.Inflated)
	}
	if g := goals["inflated "+GoalInflated]; !g.Met || math.Abs(g.Value-1) > 1e-6 {
		t.Errorf("inflated: %+v", g)
	}
	err = rep.Check()
	if rep.Met || !errors.Is(err, ErrGoalNotMet) || !strings.Contains(err.Error(), "dearer/a") || strings.Contains(err.Error(), "same/a") {
		t.Errorf("Check = %v, met %v", err, rep.Met)
	}

	// What negotiation bills: the tariff where the renter takes the set,
	// the flat rates where it refuses it (here the slow arm's), whose
	// ratio is then CPU-seconds'. The goals still judge the tariff.
	slowSet := run.Arms[4].Set
	refuseSlow := func(set, ref *Set, price float64) (pay.Rates, error) {
		if set == slowSet {
			return pay.Rates{}, errors.New("refused")
		}
		return testOffer(set, ref, price)
	}
	var flat pay.Rates
	if err := flat.Set(meter.CPU, "1/10000000"); err != nil {
		t.Fatal(err)
	}
	rep, err = AnalyseFairness(run, FairnessAnalysis{Price: 100, Offer: refuseSlow, Flat: flat})
	if err != nil {
		t.Fatal(err)
	}
	same, slow := rep.Comparisons[1].Jobs[0], rep.Comparisons[3].Jobs[0]
	if same.Negotiated.Ratio != same.Tariff.Ratio || len(same.Flat) != 0 {
		t.Errorf("taken on both sides, negotiated %+v, tariff %+v, flat %v", same.Negotiated, same.Tariff, same.Flat)
	}
	if math.Abs(slow.Negotiated.Ratio-slow.CPU.Ratio) > 1e-9 || !slices.Equal(slow.Flat, []string{"slow"}) {
		t.Errorf("refused: negotiated %+v, CPU %+v, flat %v", slow.Negotiated, slow.CPU, slow.Flat)
	}
	for _, g := range rep.Goals {
		if g.Comparison == "slow" && (!strings.Contains(g.Detail, "negotiation refuses the set of slow") || g.Goal == GoalTariff && !g.Met) {
			t.Errorf("slow goal %+v: judged on the tariff, the negotiated bill said", g)
		}
	}

	// Without flat rates the refused arm's bill is unknown: not reported.
	if rep, err = AnalyseFairness(run, FairnessAnalysis{Price: 100, Offer: refuseSlow}); err != nil || rep.Comparisons[3].Jobs[0].Negotiated.N != 0 {
		t.Errorf("refused without flat rates: %v, %+v", err, rep.Comparisons[3].Jobs[0].Negotiated)
	}

	// The dearer control alone, noisier than its band: not met either.
	// Without an offer check the inflated provider cannot be paid.
	rep, err = AnalyseFairness(run, FairnessAnalysis{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rep.Goals {
		if g.Comparison == "inflated" && g.Met {
			t.Errorf("inflated without an offer check: %+v", g)
		}
	}
	// A job with no noise floor, a comparison without pairs: errors.
	run.Comparisons[1].Comparison.Jobs = []string{"b"}
	if _, err := AnalyseFairness(run, FairnessAnalysis{Offer: testOffer}); err == nil {
		t.Error("a comparison without pairs of its job: no error")
	}
}

func TestInflateSet(t *testing.T) {
	set := testSet(t)
	inf := InflateSet(set, 1.5)
	for k, st := range inf.Steps {
		was := set.Steps[k]
		if st.Delta["cpu_ns"] != uint64(math.Round(1.5*float64(was.Delta["cpu_ns"]))) || st.Rates["cpu_ns"] != 1.5*was.Rates["cpu_ns"] {
			t.Errorf("step %d: cpu_ns %d, %v", k, st.Delta["cpu_ns"], st.Rates["cpu_ns"])
		}
		if st.Delta["ctx_switches_voluntary"] != was.Delta["ctx_switches_voluntary"] || st.Score != was.Score {
			t.Errorf("step %d: more than CPU time scaled", k)
		}
	}
	if set.Steps[0].Delta["cpu_ns"] != 1e9 {
		t.Error("InflateSet changed its input")
	}
}

// TestPayInflated runs the renter's check of inflated reports: under the
// quota they pass and are paid; past it the first report over is
// rejected and only what came before is paid.
func TestPayInflated(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	var rates pay.Rates
	if err := rates.SetFloat(meter.CPU, 1e-7); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		s         JobSample
		cpus      float64
		paidCPU   float64 // CPU-seconds paid for, inflated
		rejection bool
	}{
		{"under the quota", sample(0.6, 1), 1, 0.9, false},
		{"no quota: nothing bounds it", sample(1, 1), 0, 1.5, false},
		{"at the quota, one report", sample(1, 1), 1, 0, true},
		// 12 s at full load: reports at 5 s and 10 s and the end; the
		// first is over already.
		{"at the quota, several reports", sample(12, 12), 1, 0, true},
		// 0.6 CPUs for 5 s (0.9 reported per second passes), then 1
		// for a second: the first report is paid, the last rejected.
		{"over after the first report", lightThenHeavy(), 1, 1.5 * 3, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			paid, why, err := PayInflated(tt.s, rates, tt.cpus, InflatedScale, signer)
			if err != nil {
				t.Fatal(err)
			}
			if (why != "") != tt.rejection || (why != "" && !strings.Contains(why, meter.ErrRejected.Error())) {
				t.Errorf("rejection %q", why)
			}
			got, _ := paid.Float64()
			if want := tt.paidCPU * 1e9 * 1e-7; math.Abs(got-want) > 1e-6*want+1e-9 {
				t.Errorf("paid %v msat, want %v", got, want)
			}
		})
	}
}

func TestFairnessFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, FairnessSetsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	run := testRun(t)
	run.Arms[0].Replicates = []*Set{testSet(t)} // its own, equal
	if err := run.writeFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"reference.json", "reference-1.json", "slow-1.json"} {
		if _, err := ReadFile(filepath.Join(dir, FairnessSetsDir, name)); err != nil {
			t.Errorf("set %s: %v", name, err)
		}
	}
	rep, err := AnalyseFairness(run, FairnessAnalysis{Offer: testOffer})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(dir, rep); err != nil {
		t.Fatal(err)
	}
	// What was written prices again to the same report.
	back, err := ReadFairnessRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := AnalyseFairness(back, FairnessAnalysis{Offer: testOffer})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(rep)
	b, _ := json.Marshal(again)
	if string(a) != string(b) {
		t.Errorf("priced again:\n%s\nwant\n%s", b, a)
	}
	var written FairnessReport
	if b, err = os.ReadFile(filepath.Join(dir, FairnessReportFile)); err == nil {
		err = json.Unmarshal(b, &written)
	}
	if err != nil || len(written.Goals) != len(rep.Goals) {
		t.Errorf("%s: %+v, %v", FairnessReportFile, written, err)
	}
	os.Remove(filepath.Join(dir, FairnessSetsDir, "slow-1.json"))
	if _, err := ReadFairnessRun(dir); err == nil {
		t.Error("a replicate missing: no error")
	}
}
