package idle

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeMachine is a synthetic procfs and cgroup v1 tree, with a clock that
// moves one second per sample.
type fakeMachine struct {
	t      *testing.T
	proc   string
	cgroup string
	cpus   int
	busy   uint64 // ticks of user time in /proc/stat
	now    time.Time
	procs  map[int]*fakeProc
}

type fakeProc struct {
	pid, ppid                    int
	start                        uint64
	utime, stime, cutime, cstime uint64
}

func newFakeMachine(t *testing.T, cpus int) *fakeMachine {
	t.Helper()
	dir := t.TempDir()
	m := &fakeMachine{
		t:      t,
		proc:   filepath.Join(dir, "proc"),
		cgroup: filepath.Join(dir, "cgroup"),
		cpus:   cpus,
		busy:   100000,
		now:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		procs:  map[int]*fakeProc{},
	}
	m.mkdir(m.proc)
	m.mkdir(filepath.Join(m.cgroup, "cpuacct"))
	m.writeStat()
	m.write(filepath.Join(m.proc, "meminfo"), "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\n")
	return m
}

func (m *fakeMachine) mkdir(dir string) {
	m.t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		m.t.Fatal(err)
	}
}

func (m *fakeMachine) write(name, s string) {
	m.t.Helper()
	m.mkdir(filepath.Dir(name))
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

// writeStat writes /proc/stat with m.busy ticks of user time, spread over
// the CPUs, and some idle time.
func (m *fakeMachine) writeStat() {
	var b strings.Builder
	idle := uint64(5000000)
	fmt.Fprintf(&b, "cpu  %d 0 0 %d 0 0 0 0 0 0\n", m.busy, idle)
	for i := 0; i < m.cpus; i++ {
		fmt.Fprintf(&b, "cpu%d %d 0 0 %d 0 0 0 0 0 0\n", i, m.busy/uint64(m.cpus), idle/uint64(m.cpus))
	}
	b.WriteString("intr 0\nctxt 0\nbtime 1700000000\nprocesses 1\nprocs_running 1\nprocs_blocked 0\n")
	m.write(filepath.Join(m.proc, "stat"), b.String())
}

// addBusy adds cores×seconds of busy time to /proc/stat.
func (m *fakeMachine) addBusy(ticks uint64) {
	m.busy += ticks
	m.writeStat()
}

func (m *fakeMachine) setProc(p fakeProc) {
	m.t.Helper()
	q := p
	m.procs[p.pid] = &q
	m.writeProc(&q)
}

func (m *fakeMachine) writeProc(p *fakeProc) {
	// The command name has spaces and parentheses, as real ones may.
	fields := []string{
		strconv.Itoa(p.pid), "(a (b) c)", "R", strconv.Itoa(p.ppid), "1", "1", "0", "-1", "0",
		"0", "0", "0", "0",
		strconv.FormatUint(p.utime, 10), strconv.FormatUint(p.stime, 10),
		strconv.FormatUint(p.cutime, 10), strconv.FormatUint(p.cstime, 10),
		"20", "0", "1", "0", strconv.FormatUint(p.start, 10),
	}
	for len(fields) < 52 {
		fields = append(fields, "0")
	}
	m.write(filepath.Join(m.proc, strconv.Itoa(p.pid), "stat"), strings.Join(fields, " ")+"\n")
}

// run adds ticks to process pid's utime.
func (m *fakeMachine) run(pid int, ticks uint64) {
	m.t.Helper()
	p := m.procs[pid]
	if p == nil {
		m.t.Fatalf("no process %d", pid)
	}
	p.utime += ticks
	m.writeProc(p)
}

// exit removes process pid; if reap, its parent's cutime takes its times
// as the kernel adds them when the parent waits for it.
func (m *fakeMachine) exit(pid int, reap bool) {
	m.t.Helper()
	p := m.procs[pid]
	if reap {
		if parent := m.procs[p.ppid]; parent != nil {
			parent.cutime += p.utime + p.cutime
			parent.cstime += p.stime + p.cstime
			m.writeProc(parent)
		}
	}
	delete(m.procs, pid)
	if err := os.RemoveAll(filepath.Join(m.proc, strconv.Itoa(pid))); err != nil {
		m.t.Fatal(err)
	}
}

// setCgroup writes a cpuacct cgroup's usage (ns) and processes.
func (m *fakeMachine) setCgroup(cg string, usage uint64, pids ...int) {
	dir := filepath.Join(m.cgroup, "cpuacct", cg)
	m.write(filepath.Join(dir, "cpuacct.usage"), strconv.FormatUint(usage, 10)+"\n")
	var b strings.Builder
	for _, p := range pids {
		fmt.Fprintln(&b, p)
	}
	m.write(filepath.Join(dir, "cgroup.procs"), b.String())
}

func (m *fakeMachine) removeCgroup(cg string) {
	if err := os.RemoveAll(filepath.Join(m.cgroup, "cpuacct", cg)); err != nil {
		m.t.Fatal(err)
	}
}

func (m *fakeMachine) clock() time.Time { return m.now }

func (m *fakeMachine) watcher(cfg Config) *Watcher {
	m.t.Helper()
	cfg.ProcRoot = m.proc
	cfg.CgroupRoot = m.cgroup
	if cfg.Now == nil {
		cfg.Now = m.clock
	}
	w, err := New(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	return w
}

// sample advances the clock by d and samples.
func (m *fakeMachine) sample(w *Watcher, d time.Duration) Reading {
	m.t.Helper()
	m.now = m.now.Add(d)
	r, err := w.Sample()
	if err != nil {
		m.t.Fatal(err)
	}
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func wantCores(t *testing.T, r Reading, owner, excluded float64) {
	t.Helper()
	if !near(r.Cores, owner) || !near(r.ExcludedCores, excluded) {
		t.Fatalf("owner %.4f cores, excluded %.4f; want %.4f, %.4f (%v)", r.Cores, r.ExcludedCores, owner, excluded, r)
	}
}
