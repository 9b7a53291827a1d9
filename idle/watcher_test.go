package idle

import (
	"context"
	"testing"
	"time"
)

func TestOwnerLoadFromStat(t *testing.T) {
	m := newFakeMachine(t, 4)
	w := m.watcher(Config{})
	r := m.sample(w, 0)
	if r.Window != 0 || r.Cores != 0 {
		t.Fatalf("first sample %+v, want no window and no load", r)
	}
	if r.CPUs != 4 || !near(r.MemAvailable, 0.25) {
		t.Fatalf("CPUs %d, memory available %v; want 4, 0.25", r.CPUs, r.MemAvailable)
	}
	m.addBusy(300) // 3 CPU-seconds in 2 s
	r = m.sample(w, 2*time.Second)
	if r.Window != 2*time.Second {
		t.Fatalf("window %v", r.Window)
	}
	wantCores(t, r, 1.5, 0)
	if !near(r.Fraction, 1.5/4) || !near(r.TotalCores, 1.5) {
		t.Fatalf("fraction %v, total %v", r.Fraction, r.TotalCores)
	}
	if st, rr := w.Last(); st != Idle || rr != r {
		t.Fatalf("Last() = %v, %v", st, rr)
	}
}

func TestExcludeCgroups(t *testing.T) {
	m := newFakeMachine(t, 2)
	m.setCgroup("/zennet/abcd", 5e9, 300)
	m.setCgroup("/zennet/abcd/lease1", 4e9, 301, 302)
	m.setCgroup("/other", 7e9, 400)
	// A path below another is not counted twice.
	w := m.watcher(Config{ExcludeCgroups: []string{"zennet/abcd", "/zennet/abcd/lease1", "/zennet/abcd/"}})
	m.sample(w, 0)

	// The parent's usage includes its children's, as in cgroup v1.
	m.setCgroup("/zennet/abcd", 5e9+8e8, 300)
	m.setCgroup("/zennet/abcd/lease1", 4e9+7e8, 301, 302)
	m.setCgroup("/other", 9e9, 400)
	m.addBusy(150)
	r := m.sample(w, time.Second)
	wantCores(t, r, 0.7, 0.8)
	if r.ExcludedProcs != 3 {
		t.Fatalf("excluded processes %d, want 3", r.ExcludedProcs)
	}

	// The sandbox's cgroup goes; the parent keeps its usage.
	m.removeCgroup("/zennet/abcd/lease1")
	m.setCgroup("/zennet/abcd", 5e9+8e8+2e8, 300)
	m.addBusy(100)
	wantCores(t, m.sample(w, time.Second), 0.8, 0.2)

	// The parent goes (the provider's runtime closed) and comes back: its
	// new usage is new.
	m.removeCgroup("/zennet/abcd")
	m.addBusy(50)
	wantCores(t, m.sample(w, time.Second), 0.5, 0)
	m.setCgroup("/zennet/abcd", 3e8)
	m.addBusy(100)
	wantCores(t, m.sample(w, time.Second), 0.7, 0.3)
	m.setCgroup("/zennet/abcd", 4e8)
	m.addBusy(100)
	wantCores(t, m.sample(w, time.Second), 0.9, 0.1)
}

func TestExcludeCgroupMissingAtStart(t *testing.T) {
	m := newFakeMachine(t, 2)
	w := m.watcher(Config{ExcludeCgroups: []string{"/zennet/abcd"}})
	m.sample(w, 0)
	m.addBusy(100)
	wantCores(t, m.sample(w, time.Second), 1, 0)
	m.setCgroup("/zennet/abcd", 6e8, 300)
	m.addBusy(100)
	wantCores(t, m.sample(w, time.Second), 0.4, 0.6)
}

// tree is a machine with a provider (100) and its children, and an owner's
// process tree (200, 201).
func tree(t *testing.T) *fakeMachine {
	m := newFakeMachine(t, 2)
	m.setProc(fakeProc{pid: 1, ppid: 0, start: 1, utime: 50})
	m.setProc(fakeProc{pid: 100, ppid: 1, start: 1000, utime: 500, cutime: 70})
	m.setProc(fakeProc{pid: 101, ppid: 100, start: 1100, utime: 300})
	m.setProc(fakeProc{pid: 102, ppid: 101, start: 1200, utime: 200, stime: 20})
	m.setProc(fakeProc{pid: 200, ppid: 1, start: 2000, utime: 900})
	m.setProc(fakeProc{pid: 201, ppid: 200, start: 2100, utime: 800})
	return m
}

func TestExcludeDescendants(t *testing.T) {
	m := tree(t)
	w := m.watcher(Config{ExcludeRoots: []int{100}})
	m.sample(w, 0)
	m.run(100, 10)
	m.run(101, 20)
	m.run(102, 30)
	m.run(200, 50)
	m.run(201, 40)
	m.addBusy(150)
	r := m.sample(w, time.Second)
	wantCores(t, r, 0.9, 0.6)
	if r.ExcludedProcs != 3 {
		t.Fatalf("excluded processes %d, want 3", r.ExcludedProcs)
	}
}

func TestExcludePIDsFunc(t *testing.T) {
	m := tree(t)
	var pids []int
	w := m.watcher(Config{ExcludePIDs: func() []int { return pids }})
	m.sample(w, 0)
	m.run(200, 50)
	m.run(201, 40)
	m.addBusy(100)
	wantCores(t, m.sample(w, time.Second), 1, 0)
	// Excluded from now on: what it did before is not counted.
	pids = []int{200}
	m.run(200, 20)
	m.run(201, 10)
	m.run(100, 30)
	m.addBusy(100)
	wantCores(t, m.sample(w, time.Second), 0.7, 0.3)
}

func TestRootAndCgroupNotCountedTwice(t *testing.T) {
	m := tree(t)
	m.setCgroup("/zennet/abcd", 1e9, 102)
	w := m.watcher(Config{ExcludeRoots: []int{100}, ExcludeCgroups: []string{"/zennet/abcd"}})
	m.sample(w, 0)
	m.run(100, 10)
	m.run(102, 30) // in the cgroup: counted by its usage
	m.setCgroup("/zennet/abcd", 1e9+3e8, 102)
	m.addBusy(100)
	r := m.sample(w, time.Second)
	wantCores(t, r, 0.6, 0.4)
	if r.ExcludedProcs != 3 {
		t.Fatalf("excluded processes %d, want 3 (100, 101 and 102)", r.ExcludedProcs)
	}
}

func TestExitReapedByCountedParent(t *testing.T) {
	m := tree(t)
	w := m.watcher(Config{ExcludeRoots: []int{100}})
	m.sample(w, 0)
	m.run(101, 20)
	m.addBusy(20)
	wantCores(t, m.sample(w, time.Second), 0, 0.2)

	// 101 runs 5 more ticks after the last read, exits, and 100 reaps it;
	// 102 is reparented to init and stays excluded.
	m.run(101, 5)
	m.run(100, 10)
	m.exit(101, true)
	m.procs[102].ppid = 1
	m.run(102, 30)
	m.addBusy(45 + 60)
	r := m.sample(w, time.Second)
	wantCores(t, r, 0.6, 0.45)

	// Later samples count the parent as before.
	m.run(100, 10)
	m.run(102, 10)
	m.addBusy(20)
	wantCores(t, m.sample(w, time.Second), 0, 0.2)
}

func TestShortLivedChildCountedThroughParent(t *testing.T) {
	m := tree(t)
	w := m.watcher(Config{ExcludeRoots: []int{100}})
	m.sample(w, 0)
	// A runsc command that started and ended between two samples.
	m.procs[100].cutime += 40
	m.writeProc(m.procs[100])
	m.addBusy(40 + 30)
	wantCores(t, m.sample(w, time.Second), 0.3, 0.4)
}

func TestExitNotReapedByCountedParent(t *testing.T) {
	m := tree(t)
	w := m.watcher(Config{ExcludeRoots: []int{100}})
	m.sample(w, 0)
	m.run(102, 30)
	m.addBusy(30)
	wantCores(t, m.sample(w, time.Second), 0, 0.3)

	// 102 exits: what was read of it counted already, the 10 ticks it ran
	// since are lost (they show as the owner's); its parent 101, excluded,
	// does not reap it (its time never reaches 101's cutime).
	m.run(102, 10)
	m.exit(102, false)
	m.run(101, 15)
	m.addBusy(10 + 15)
	r := m.sample(w, time.Second)
	if r.ExcludedCores < 0 || r.Cores < 0 {
		t.Fatalf("negative: %v", r)
	}
	// The credit for 102 (250 ticks) absorbs 101's growth for at most two
	// samples, then 101 counts fully again.
	wantCores(t, r, 0.25, 0)
	m.run(101, 15)
	m.addBusy(15)
	wantCores(t, m.sample(w, time.Second), 0.15, 0)
	m.run(101, 15)
	m.addBusy(15)
	wantCores(t, m.sample(w, time.Second), 0, 0.15)
}

func TestNewProcesses(t *testing.T) {
	m := tree(t)
	w := m.watcher(Config{ExcludeRoots: []int{100}})
	m.sample(w, 0)
	// A child of the provider started since the last sample counts whole.
	m.setProc(fakeProc{pid: 103, ppid: 100, start: 2200, utime: 25})
	// An owner's process too, but it is not excluded.
	m.setProc(fakeProc{pid: 202, ppid: 200, start: 2300, utime: 35})
	m.addBusy(60)
	wantCores(t, m.sample(w, time.Second), 0.35, 0.25)

	// A provider's process we never saw though it is older than the
	// newest we saw (say its stat could not be read): a baseline only.
	m.setProc(fakeProc{pid: 104, ppid: 100, start: 1500, utime: 900})
	m.addBusy(10)
	wantCores(t, m.sample(w, time.Second), 0.1, 0)
	m.run(104, 10)
	m.addBusy(10)
	wantCores(t, m.sample(w, time.Second), 0, 0.1)
}

func TestPIDReuse(t *testing.T) {
	m := tree(t)
	w := m.watcher(Config{ExcludeRoots: []int{100}})
	m.sample(w, 0)
	// 102 exits unreaped by anyone counted; an owner's process takes its
	// pid.
	m.exit(102, false)
	m.setProc(fakeProc{pid: 102, ppid: 200, start: 3000, utime: 40})
	m.addBusy(40)
	r := m.sample(w, time.Second)
	wantCores(t, r, 0.4, 0)
	if r.ExcludedProcs != 2 {
		t.Fatalf("excluded processes %d, want 2", r.ExcludedProcs)
	}
}

func TestCountersGoingDown(t *testing.T) {
	m := tree(t)
	m.setCgroup("/zennet/abcd", 5e9)
	w := m.watcher(Config{ExcludeRoots: []int{100}, ExcludeCgroups: []string{"/zennet/abcd"}})
	m.sample(w, 0)

	// /proc/stat goes backwards: no load, never negative.
	m.busy -= 500
	m.writeStat()
	r := m.sample(w, time.Second)
	if r.Cores != 0 || r.TotalCores != 0 {
		t.Fatalf("after /proc/stat went down: %v", r)
	}
	// From the new base it counts again.
	m.addBusy(50)
	wantCores(t, m.sample(w, time.Second), 0.5, 0)

	// A process's counters go down: a new base, no negative delta.
	m.procs[101].utime -= 100
	m.writeProc(m.procs[101])
	m.addBusy(10)
	wantCores(t, m.sample(w, time.Second), 0.1, 0)
	m.run(101, 20)
	m.addBusy(20)
	wantCores(t, m.sample(w, time.Second), 0, 0.2)

	// Excluded time above the machine's busy time: the owner's load is
	// clamped at zero, never negative.
	m.run(101, 80)
	m.addBusy(20)
	r = m.sample(w, time.Second)
	if r.Cores != 0 || !near(r.ExcludedCores, 0.8) {
		t.Fatalf("excluded above total: %v", r)
	}

	// A huge jump of the machine's counter is clamped to its CPUs.
	m.addBusy(1e6)
	if r := m.sample(w, time.Second); r.Cores != 2 || r.Fraction != 1 {
		t.Fatalf("owner load %v above the machine", r)
	}
}

func TestSampleErrorChangesNothing(t *testing.T) {
	m := newFakeMachine(t, 2)
	w := m.watcher(Config{})
	m.sample(w, 0)
	m.write(m.proc+"/stat", "cpu  x\n")
	m.now = m.now.Add(time.Second)
	if _, err := w.Sample(); err == nil {
		t.Fatal("no error on a broken /proc/stat")
	}
	m.addBusy(200) // rewrites it
	// The reading spans the failed sample too.
	r := m.sample(w, time.Second)
	if r.Window != 2*time.Second {
		t.Fatalf("window %v, want 2s", r.Window)
	}
	wantCores(t, r, 1, 0)
}

func TestRun(t *testing.T) {
	m := newFakeMachine(t, 2)
	// Each sample: one second later, the owner used 1.5 cores.
	first := true
	now := func() time.Time {
		if first {
			first = false
			return m.now
		}
		m.now = m.now.Add(time.Second)
		m.addBusy(150)
		return m.now
	}
	w := m.watcher(Config{Interval: time.Millisecond, Now: now})
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan State, 10)
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(s State, r Reading) {
			if !near(r.Cores, 1.5) {
				t.Errorf("reading %v", r)
			}
			changes <- s
		})
	}()
	select {
	case s := <-changes:
		if s != Busy {
			t.Fatalf("changed to %v, want busy", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no change")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Two readings of one second each made it busy (BusyFor 2 s).
	if st, r := w.Last(); st != Busy || r.Window != time.Second {
		t.Fatalf("Last() = %v, %v", st, r)
	}
}

func TestRunFailsOnFirstSample(t *testing.T) {
	w, err := New(Config{ProcRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background(), nil); err == nil {
		t.Fatal("Run without /proc/stat succeeded")
	}
}

func TestCleanCgroups(t *testing.T) {
	got := cleanCgroups([]string{"zennet/a", "/zennet/a/b", "/zennet/ab", "/zennet/a/", "/x/../y"})
	want := []string{"/zennet/a", "/zennet/ab", "/y"}
	if len(got) != len(want) {
		t.Fatalf("%q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%q, want %q", got, want)
		}
	}
}
