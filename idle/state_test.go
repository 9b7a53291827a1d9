package idle

import (
	"testing"
	"time"
)

// feed drives h with one reading per second of the given loads (cores, on
// a 4-CPU machine) from *now, and returns the states after each.
func feed(h *Hysteresis, now *time.Time, loads ...float64) []State {
	var out []State
	for _, l := range loads {
		*now = now.Add(time.Second)
		s, _ := h.Step(Reading{Cores: l, CPUs: 4, Window: time.Second}, *now)
		out = append(out, s)
	}
	return out
}

func repeat(l float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = l
	}
	return out
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestHysteresisBusyAndIdle(t *testing.T) {
	h := NewHysteresis(Policy{}, Idle)
	now := t0
	// One spike: no change.
	if got := feed(h, &now, 0, 3, 0, 0); got[len(got)-1] != Idle || got[1] != Idle {
		t.Fatalf("a single spike changed the state: %v", got)
	}
	// Two seconds above 0.5 cores: busy.
	if got := feed(h, &now, 0.6, 0.6); got[0] != Idle || got[1] != Busy {
		t.Fatalf("busy after 2 s: %v", got)
	}
	// Between the thresholds keeps it busy however long.
	if got := feed(h, &now, repeat(0.3, 100)...); got[99] != Busy {
		t.Fatal("left busy between the thresholds")
	}
	// Below 0.2 for 29 s, then a blip above, then 30 s below.
	got := feed(h, &now, repeat(0.1, 29)...)
	if got[28] != Busy {
		t.Fatal("idle before 30 s")
	}
	got = feed(h, &now, 0.25)
	got = append(got, feed(h, &now, repeat(0.1, 30)...)...)
	for i, s := range got[:30] {
		if s != Busy {
			t.Fatalf("idle %d s after the blip; a blip must restart the wait", i)
		}
	}
	if got[30] != Idle {
		t.Fatalf("not idle after 30 s below: %v", got[30])
	}
}

func TestHysteresisDoesNotFlap(t *testing.T) {
	h := NewHysteresis(Policy{}, Idle)
	now := t0
	changes := 0
	for i := 0; i < 600; i++ {
		l := 0.0
		if i%2 == 0 {
			l = 4 // every other second the owner saturates the machine
		}
		now = now.Add(time.Second)
		if _, changed := h.Step(Reading{Cores: l, CPUs: 4, Window: time.Second}, now); changed {
			changes++
		}
	}
	if changes != 0 {
		t.Fatalf("%d changes on alternating spikes", changes)
	}

	// Sustained busy with spikes of quiet: busy once, never idle.
	changes = 0
	for i := 0; i < 600; i++ {
		l := 2.0
		if i%10 == 9 {
			l = 0
		}
		now = now.Add(time.Second)
		if _, changed := h.Step(Reading{Cores: l, CPUs: 4, Window: time.Second}, now); changed {
			changes++
		}
	}
	if changes != 1 || h.State() != Busy {
		t.Fatalf("%d changes, now %v; want 1, busy", changes, h.State())
	}
}

func TestHysteresisThrottled(t *testing.T) {
	h := NewHysteresis(Policy{ThrottleFactor: 0.5}, Idle)
	now := t0
	// Between the thresholds for 2 s: throttled.
	if got := feed(h, &now, 0.3, 0.3); got[0] != Idle || got[1] != Throttled {
		t.Fatalf("%v", got)
	}
	// High for 2 s: busy.
	if got := feed(h, &now, 1, 1); got[0] != Throttled || got[1] != Busy {
		t.Fatalf("%v", got)
	}
	// Not high for 30 s: throttled again (a dip below idle-below does not
	// break "not high").
	got := feed(h, &now, append(repeat(0.3, 20), repeat(0.1, 10)...)...)
	if got[28] != Busy || got[29] != Throttled {
		t.Fatalf("%v", got)
	}
	// Low for 30 s: idle. The 10 s of low already seen count.
	got = feed(h, &now, repeat(0.1, 20)...)
	if got[18] != Throttled || got[19] != Idle {
		t.Fatalf("%v", got)
	}
	// High straight from idle: busy, not throttled on the way.
	if got := feed(h, &now, 2, 2); got[0] != Idle || got[1] != Busy {
		t.Fatalf("%v", got)
	}
	// Low for 30 s from busy: idle directly.
	got = feed(h, &now, repeat(0, 30)...)
	if got[28] != Busy || got[29] != Idle {
		t.Fatalf("%v", got)
	}
	if f := h.Policy().Factor(Throttled); f != 0.5 {
		t.Fatalf("factor %v", f)
	}
}

func TestHysteresisFractionThresholds(t *testing.T) {
	h := NewHysteresis(Policy{BusyAbove: Fraction(0.5), IdleBelow: Fraction(0.25), BusyFor: 3 * time.Second, IdleFor: 5 * time.Second}, Idle)
	now := t0
	// On 4 CPUs busy is above 2 cores, idle below 1.
	if got := feed(h, &now, 1.9, 1.9, 1.9, 1.9); got[3] != Idle {
		t.Fatalf("%v", got)
	}
	if got := feed(h, &now, 2.1, 2.1, 2.1); got[1] != Idle || got[2] != Busy {
		t.Fatalf("%v", got)
	}
	if got := feed(h, &now, repeat(0.9, 5)...); got[3] != Busy || got[4] != Idle {
		t.Fatalf("%v", got)
	}
}

func TestHysteresisWindows(t *testing.T) {
	h := NewHysteresis(Policy{}, Idle)
	// A reading without a window carries nothing.
	if s, changed := h.Step(Reading{Cores: 10, CPUs: 4}, t0); s != Idle || changed {
		t.Fatal("a reading without a window changed the state")
	}
	// Jitter: two readings 990 ms apart hold for 2 s.
	now := t0
	for i, want := range []State{Idle, Busy} {
		now = now.Add(990 * time.Millisecond)
		if s, _ := h.Step(Reading{Cores: 1, CPUs: 4, Window: 990 * time.Millisecond}, now); s != want {
			t.Fatalf("reading %d: %v, want %v", i, s, want)
		}
	}
	// A reading from the past is ignored.
	if _, changed := h.Step(Reading{Cores: 0, CPUs: 4, Window: time.Hour}, now.Add(-time.Minute)); changed {
		t.Fatal("an old reading changed the state")
	}
	// One reading covering 30 s of quiet (sampling stalled) is 30 s of
	// quiet.
	now = now.Add(30 * time.Second)
	if s, _ := h.Step(Reading{Cores: 0, CPUs: 4, Window: 30 * time.Second}, now); s != Idle {
		t.Fatalf("%v after 30 s of quiet in one reading", s)
	}
}

func TestHysteresisInitial(t *testing.T) {
	if s := NewHysteresis(Policy{}, Busy).State(); s != Busy {
		t.Fatal(s)
	}
	if s := NewHysteresis(Policy{}, Throttled).State(); s != Busy {
		t.Fatalf("throttled without a factor started %v", s)
	}
}

func TestThresholds(t *testing.T) {
	for _, c := range []struct {
		in    string
		want  Threshold
		cores float64 // on 8 CPUs
	}{
		{"0.5", Cores(0.5), 0.5},
		{" 2 ", Cores(2), 2},
		{"25%", Fraction(0.25), 2},
		{"12.5 %", Fraction(0.125), 1},
	} {
		got, err := ParseThreshold(c.in)
		if err != nil || got != c.want || got.Cores(8) != c.cores {
			t.Errorf("ParseThreshold(%q) = %v, %v (%v cores)", c.in, got, err, got.Cores(8))
		}
		if back, err := ParseThreshold(got.String()); err != nil || back != got {
			t.Errorf("%v does not round-trip: %v %v", got, back, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "NaN", "%"} {
		if _, err := ParseThreshold(bad); err == nil {
			t.Errorf("ParseThreshold(%q) succeeded", bad)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := (Policy{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Policy{
		{BusyAbove: Cores(0.5), IdleBelow: Cores(1)},
		{ThrottleFactor: 1},
		{ThrottleFactor: -0.1},
		{BusyAbove: Cores(-1)},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v is valid", p)
		}
		if _, err := New(Config{Policy: p}); err == nil {
			t.Errorf("New accepted %+v", p)
		}
	}
	p := Policy{ThrottleFactor: 0.25}
	if p.Factor(Idle) != 1 || p.Factor(Throttled) != 0.25 || p.Factor(Busy) != 0 {
		t.Fatal("factors")
	}
	if Idle.String() != "idle" || Throttled.String() != "throttled" || Busy.String() != "busy" {
		t.Fatal("names")
	}
}
