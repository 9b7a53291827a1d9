package bench

import (
	"bytes"
	"context"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRandomParamsDeterministic(t *testing.T) {
	for _, w := range Workloads() {
		a, b := w.RandomParams(42), w.RandomParams(42)
		if describeParams(a) != describeParams(b) {
			t.Errorf("%s: seed 42 gave %v and %v", w.Name, a, b)
		}
		seen := map[string]bool{}
		for seed := range uint64(64) {
			p := w.RandomParams(seed)
			seen[describeParams(p)] = true
			if _, _, err := w.prepare(p, 0); err != nil {
				t.Errorf("%s: drawn parameters %v rejected: %v", w.Name, p, err)
			}
		}
		if len(seen) < 2 {
			t.Errorf("%s: 64 seeds drew one parameter set", w.Name)
		}
	}
}

func TestPlan(t *testing.T) {
	plan, err := Plan(Options{Steps: 25, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Plan(Options{Steps: 25, Seed: 9})
	other, _ := Plan(Options{Steps: 25, Seed: 10})
	count := map[string]int{}
	same := true
	for i, p := range plan {
		count[p.Workload]++
		if again[i] != p {
			t.Fatalf("step %d: %v, then %v with the same seed", i, p, again[i])
		}
		same = same && other[i] == p
	}
	if same {
		t.Error("seeds 9 and 10 plan the same steps")
	}
	// 25 steps over 10 workloads: rounds of each once, so 2 or 3 each.
	for _, w := range WorkloadNames() {
		if count[w] < 2 || count[w] > 3 {
			t.Errorf("%s appears %d times in 25 steps", w, count[w])
		}
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no steps", Options{}, "0 steps"},
		{"unknown workload", Options{Steps: 1, Workloads: []string{"gpu"}}, `no workload "gpu"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Plan(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Plan = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRunWorkloadRejects(t *testing.T) {
	tests := []struct {
		name     string
		workload string
		opts     RunOptions
		want     string
	}{
		{"unknown workload", "gpu", RunOptions{Seconds: 1}, `no workload "gpu"`},
		{"no time", "hash", RunOptions{}, "want more than 0"},
		{"too long", "hash", RunOptions{Seconds: MaxSeconds + 1}, "at most"},
		{"unknown parameter", "hash", RunOptions{Seconds: 1, Params: Params{"size": "1"}}, "no parameter size"},
		{"bad number", "hash", RunOptions{Seconds: 1, Params: Params{"block": "big"}}, "want an integer"},
		{"bad word", "int", RunOptions{Seconds: 1, Params: Params{"kernel": "fft"}}, "want one of"},
		{"too many workers", "hash", RunOptions{Seconds: 1, Workers: 1000}, "at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RunWorkload(context.Background(), tt.workload, tt.opts, nil, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RunWorkload = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestWorkloadsOnHost runs every kernel briefly in this process: a quick
// check that each does work and stops on time. The calibration runs them
// in a sandbox (TestRunStep).
func TestWorkloadsOnHost(t *testing.T) {
	for _, w := range Workloads() {
		t.Run(w.Name, func(t *testing.T) {
			p := w.RandomParams(1)
			if w.Name == "fileio" {
				p["dir"] = "tmp" // not the host's /root
			}
			var out bytes.Buffer
			// 300 ms: one operation of the slowest workload (compress at
			// level 9 under -race) can take longer than 50 ms.
			r, err := RunWorkload(context.Background(), w.Name, RunOptions{Seconds: 0.3, Seed: 1, Params: p, Workers: 1}, nil, &out)
			if err != nil {
				t.Fatal(err)
			}
			if r.Ops <= 0 || r.Seconds > 3 {
				t.Errorf("%v ops in %v s", r.Ops, r.Seconds)
			}
			parsed, err := ParseResult(out.Bytes())
			if err != nil || parsed.Score != r.Score || parsed.Unit != w.Unit {
				t.Errorf("printed result %q: %v", out.String(), err)
			}
		})
	}
}

func TestSyncProtocol(t *testing.T) {
	in := strings.NewReader("go\n")
	var out bytes.Buffer
	if _, err := RunWorkload(context.Background(), "int", RunOptions{Seconds: 0.02, Sync: true, Workers: 1}, in, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || lines[0] != `{"ready":true,"workload":"int"}` {
		t.Fatalf("output %q", out.String())
	}
	if _, err := RunWorkload(context.Background(), "int", RunOptions{Seconds: 0.02, Sync: true}, strings.NewReader(""), &out); err == nil {
		t.Error("no start line, and the run went ahead")
	}
}

func TestRunStepRejectsUnsafe(t *testing.T) {
	// Nothing runs: the check comes first (Env has no Command).
	tests := []struct {
		name string
		spec StepSpec
	}{
		{"shell in a value", StepSpec{Workload: "hash", Params: Params{"block": "1;reboot"}}},
		{"space in a key", StepSpec{Workload: "hash", Params: Params{"a b": "1"}}},
		{"an option", StepSpec{Workload: "hash", Params: Params{"block": "--help"}}},
		{"empty value", StepSpec{Workload: "hash", Params: Params{"block": ""}}},
		{"workload with a quote", StepSpec{Workload: "hash'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Seconds = 1
			if _, err := RunStep(context.Background(), Env{}, tt.spec); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    Params
		wantErr bool
	}{
		{name: "none", in: nil, want: Params{}},
		{name: "two", in: []string{"block=1024", "kind=text"}, want: Params{"block": "1024", "kind": "text"}},
		{name: "empty value", in: []string{"kind="}, want: Params{"kind": ""}},
		{name: "value with =", in: []string{"expr=a=b"}, want: Params{"expr": "a=b"}},
		{name: "the later wins", in: []string{"n=1", "n=2"}, want: Params{"n": "2"}},
		{name: "no =", in: []string{"block"}, wantErr: true},
		{name: "no key", in: []string{"=1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseParams(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseParams(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !tt.wantErr && !maps.Equal(got, tt.want) {
				t.Errorf("ParseParams(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSpotRotation(t *testing.T) {
	set, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	classes := map[string]bool{}
	for _, st := range set.Steps {
		classes[st.Workload] = true
	}
	firsts := map[string]bool{}
	for seed := uint64(1); seed <= 20; seed++ {
		order := SpotRotation(set, rand.New(rand.NewPCG(seed, seed)))
		seen := map[string]bool{}
		for _, i := range order {
			w := set.Steps[i].Workload
			if seen[w] {
				t.Fatalf("seed %d: %s twice in %v", seed, w, order)
			}
			seen[w] = true
		}
		if len(seen) != len(classes) {
			t.Fatalf("seed %d: rotation covers %d of the %d workload classes: %v", seed, len(seen), len(classes), order)
		}
		firsts[set.Steps[order[0]].Workload] = true
	}
	if len(firsts) < 3 {
		t.Errorf("20 rotations began with only %v: the order must not be predictable", firsts)
	}
}
