package sandbox

import "testing"

// TestCPUPlacer: a sandbox gets as many CPUs as its quota rounds up to,
// the least loaded first, and gives them back when it goes.
func TestCPUPlacer(t *testing.T) {
	p := newCPUPlacer([]int{0, 1, 2, 3})
	steps := []struct {
		op    string
		id    string
		quota float64
		want  string
	}{
		{"place", "a", 1, "0"},
		{"place", "b", 0.5, "1"},
		{"place", "c", 1.5, "2,3"},
		{"place", "d", 1, "1"},       // 1 has 0.5; 2 and 3 have 0.75 each
		{"place", "e", 0, ""},        // no quota: no cpuset, the whole machine
		{"place", "f", 9, "0,1,2,3"}, // more than there are: all
		{"release", "c", 0, ""},
		{"place", "g", 2, "2,3"},
		{"place", "h", 1.0000000001, "0"}, // float noise over 1 is 1
	}
	for _, s := range steps {
		switch s.op {
		case "place":
			if got := p.place(s.id, s.quota); got != s.want {
				t.Fatalf("place(%s, %v) = %q, want %q (load %v)", s.id, s.quota, got, s.want, p.load)
			}
		case "release":
			p.release(s.id)
		}
	}
	for _, id := range []string{"a", "b", "d", "f", "g", "h"} {
		p.release(id)
	}
	if len(p.load) != 0 || len(p.placed) != 0 {
		t.Fatalf("after every release: load %v, placed %v", p.load, p.placed)
	}
	var none *cpuPlacer
	if got := none.place("x", 1); got != "" {
		t.Fatalf("a nil placer placed %q", got)
	}
	if cpus := allowedCPUs(); len(cpus) == 0 {
		t.Fatal("this process may run on no CPU")
	}
}
