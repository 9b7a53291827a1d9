// Package idle watches the machine owner's own load, so that a provider can
// lend the machine only while its owner leaves it alone (the BOINC and CONUN
// model: `zennet provide --when-idle`).
//
// # What counts as the owner's load
//
// Everything the machine's CPUs do except zennet: the busy time of
// /proc/stat (user, nice, system, irq and softirq; guest time is inside user
// and nice; idle, iowait and steal are not busy) less the CPU time of
// zennet's processes, per second of wall time, in cores. Zennet's processes
// are
//
//   - those in the cgroups of Config.ExcludeCgroups (cgroup v1 cpuacct
//     paths, with everything below them): the provider's cgroup parent
//     holds every sandbox, and runsc starts the Sentry and gofer in it and
//     joins it itself while it starts them. Their time is the cgroup's
//     cpuacct.usage, which keeps the time of processes that exited and of
//     sandbox cgroups that were removed;
//   - the processes of Config.ExcludeRoots and Config.ExcludePIDs and all
//     their descendants (the provider and the runsc commands it runs). Their
//     time is the sum of utime+stime+cutime+cstime of /proc/PID/stat, taken
//     as a difference between samples, so a child that a counted process
//     reaps is counted through its parent's cutime. A process once excluded
//     stays excluded while it lives, even when reparented.
//
// A process counted through a cgroup is not counted again as a descendant.
//
// # Error bounds
//
// The counters tick in 1/100 s (USER_HZ) and the kernel samples /proc/stat
// at its timer tick, so a 1 s reading is good to a few hundredths of a core
// per CPU. Processes appearing and exiting between samples are accounted as
// follows, never giving a negative delta and never counting a process
// twice: a process first seen in a sample counts all its CPU time if it
// started after the previous sample (it all fell in the window) and none if
// it is older (a baseline); a process that exits counts what was read of it
// before, and what it did after that last read reaches its parent's cutime
// when the parent reaps it, which counts it if the parent is counted (the
// parent is credited with what was already counted of the child, for at
// most two samples, so nothing counts twice; a credit the parent's cutime
// never covers, a child reaped without a wait, absorbs at most two samples
// of the parent's own time). What is lost is the time an
// excluded process ran in its last window when its parent is not counted
// (a sandbox process reparented to init; but sandbox processes are in the
// excluded cgroup, whose usage keeps everything): that time shows as owner
// load in one reading, at most one Interval times its threads. A counter
// that goes down (a /proc/stat quirk, a re-created cgroup) is a new base:
// that window counts nothing of it (a cgroup's new usage counts whole).
// The owner's load is clamped to [0, CPUs].
//
// # Cost
//
// With roots to follow a sample reads every process's /proc/PID/stat
// (about 20 µs each: 1.5 ms for 80 processes, BenchmarkSample), once a
// second by default, in the provider's process, which is excluded; with
// cgroups only it reads /proc/stat, /proc/meminfo and a few cgroup files.
package idle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"github.com/zennet/zennet/internal/cgroupv1"
)

// userHZ is the unit of the tick counts in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// DefaultInterval is how often a Watcher samples by default.
const DefaultInterval = time.Second

// PauseReason is the sentence a renter is told of a lease paused because
// the owner is busy (the pause's cause, proto.PauseOwnerBusy, is what tells
// it from the other pauses).
const PauseReason = "the provider's owner is using the machine"

// Config configures a Watcher. The zero Config watches /proc with the
// default Policy and excludes nothing.
type Config struct {
	Policy
	// Initial is the state before the first change (default Idle).
	Initial State
	// Interval is the time between samples in Run (default 1 s).
	Interval time.Duration

	// ExcludeRoots are processes whose CPU time, and their descendants',
	// is not the owner's: the provider's own pid.
	ExcludeRoots []int
	// ExcludePIDs, if set, is called at every sample for more processes
	// excluded like ExcludeRoots. It must be quick and must not call the
	// Watcher.
	ExcludePIDs func() []int
	// ExcludeCgroups are cgroup v1 cpuacct paths (relative to the
	// controller's mount, like sandbox.CgroupParentFor) whose processes,
	// and those of every cgroup below, are not the owner's. A cgroup that
	// does not exist (yet) holds nothing.
	ExcludeCgroups []string

	// ProcRoot is where procfs is mounted (default /proc).
	ProcRoot string
	// CgroupRoot holds one directory per cgroup v1 controller, of which the
	// Watcher reads cpuacct. Empty means the cpuacct mount of
	// /proc/self/mountinfo.
	CgroupRoot string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives debug events and sampling errors (default: discard).
	Log *slog.Logger
}

// Reading is the owner's load over one window between two samples.
type Reading struct {
	// Time is the end of the window, Window its length. The first sample
	// of a Watcher has no window and carries no load.
	Time   time.Time
	Window time.Duration
	// CPUs is the number of the machine's CPUs (cpuN lines of /proc/stat).
	CPUs int
	// Cores is the owner's load: CPU-seconds per second, not zennet's.
	Cores float64
	// Fraction is Cores over CPUs.
	Fraction float64
	// TotalCores is all the machine's busy CPU, ExcludedCores zennet's
	// share of it (Cores is their difference, clamped).
	TotalCores, ExcludedCores float64
	// ExcludedProcs counts the processes found to be zennet's.
	ExcludedProcs int
	// MemAvailable is MemAvailable over MemTotal of /proc/meminfo, -1 if
	// unknown. It is reported, not acted upon: pausing a sandbox frees
	// none of its memory.
	MemAvailable float64
}

func (r Reading) String() string {
	mem := "?"
	if r.MemAvailable >= 0 {
		mem = strconv.FormatFloat(r.MemAvailable*100, 'f', 0, 64) + "%"
	}
	return fmt.Sprintf("owner %.2f cores (%.0f%% of %d CPUs), zennet %.2f cores (%d processes), memory available %s, over %v",
		r.Cores, r.Fraction*100, r.CPUs, r.ExcludedCores, r.ExcludedProcs, mem, r.Window.Round(time.Millisecond))
}

// Watcher samples the owner's load and runs a Policy's state machine over
// it. Its methods are safe for concurrent use.
type Watcher struct {
	cfg     Config
	fs      procfs.FS
	cpuacct string   // the cpuacct controller's directory
	cgroups []string // cleaned, none below another
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	h        *Hysteresis
	n        int // samples taken
	prevTime time.Time
	prevBusy float64 // seconds
	cg       map[string]uint64
	procs    map[int]*procEntry
	maxStart uint64 // newest process start seen in the last sample
	last     Reading
}

// procEntry is what a Watcher remembers of one process between samples.
type procEntry struct {
	start    uint64 // ticks after boot: with the pid, who the process is
	ppid     int
	v        uint64 // utime+stime+cutime+cstime, ticks
	credit   uint64 // of v's growth, what was counted already (reaped children)
	age      int    // samples the credit has waited
	excluded bool
}

// New returns a Watcher. It reads nothing but the mount table (to find
// cpuacct, when there are cgroups to exclude and no CgroupRoot).
func New(cfg Config) (*Watcher, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	pfs, err := procfs.NewFS(cfg.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("idle: %w", err)
	}
	w := &Watcher{
		cfg:   cfg,
		fs:    pfs,
		log:   cfg.Log,
		now:   cfg.Now,
		h:     NewHysteresis(cfg.Policy, cfg.Initial),
		cg:    map[string]uint64{},
		procs: map[int]*procEntry{},
		last:  Reading{MemAvailable: -1},
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("subsystem", "idle")
	if w.now == nil {
		w.now = time.Now
	}
	w.cgroups = cleanCgroups(cfg.ExcludeCgroups)
	if len(w.cgroups) > 0 {
		if cfg.CgroupRoot != "" {
			w.cpuacct = filepath.Join(cfg.CgroupRoot, "cpuacct")
		} else if w.cpuacct, err = cpuacctMount(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// cleanCgroups makes paths absolute and drops those below another, whose
// time the other's usage holds already.
func cleanCgroups(in []string) []string {
	var out []string
	for _, c := range in {
		out = append(out, path.Clean("/"+c))
	}
	below := func(c, p string) bool {
		return c != p && (p == "/" || strings.HasPrefix(c, p+"/"))
	}
	var kept []string
	for i, c := range out {
		dup := false
		for j, p := range out {
			if below(c, p) || (c == p && j < i) {
				dup = true
				break
			}
		}
		if !dup {
			kept = append(kept, c)
		}
	}
	return kept
}

// cpuacctMount finds where the cgroup v1 cpuacct controller is mounted.
func cpuacctMount() (string, error) { return controllerMount("cpuacct") }

// controllerMount finds where the cgroup v1 controller name is mounted.
func controllerMount(name string) (string, error) {
	dir, err := cgroupv1.Mount("", name)
	if err != nil {
		return "", fmt.Errorf("idle: %w", err)
	}
	return dir, nil
}

// Policy returns the Watcher's policy with its defaults filled in.
func (w *Watcher) Policy() Policy { return w.h.Policy() }

// Last returns the current state and the latest reading.
func (w *Watcher) Last() (State, Reading) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.h.State(), w.last
}

// Step feeds a reading to the Watcher's state machine (see
// Hysteresis.Step); Run calls it with every sample.
func (w *Watcher) Step(r Reading, now time.Time) (State, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.h.Step(r, now)
}

// Run samples every Interval until ctx is done, steps the state machine
// with each reading and calls onChange (if not nil), on Run's goroutine,
// after each change of state; onChange should not block for long. It
// fails only if the first sample fails; later sampling errors are logged
// and the sample skipped (the next reading spans the gap). It returns nil
// when ctx is done.
func (w *Watcher) Run(ctx context.Context, onChange func(State, Reading)) error {
	if _, err := w.Sample(); err != nil {
		return err
	}
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		r, err := w.Sample()
		if err != nil {
			if !failing {
				w.log.Warn("sample failed", "err", err)
			}
			failing = true
			continue
		}
		failing = false
		st, changed := w.Step(r, r.Time)
		if changed {
			w.log.Info("owner load changed state", "state", st, "reading", r.String())
			if onChange != nil {
				onChange(st, r)
			}
		}
	}
}

// Sample reads the counters and returns the owner's load since the last
// Sample. The first has no Window. On error it changes nothing.
func (w *Watcher) Sample() (Reading, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	st, err := w.fs.Stat()
	if err != nil {
		return Reading{}, fmt.Errorf("idle: %w", err)
	}
	c := st.CPUTotal
	busy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ
	cpus := len(st.CPU)
	if cpus == 0 {
		cpus = runtime.NumCPU()
	}

	// Processes, when there are roots to follow.
	var cur map[int]procSample
	roots := map[int]bool{}
	for _, p := range w.cfg.ExcludeRoots {
		roots[p] = true
	}
	if w.cfg.ExcludePIDs != nil {
		for _, p := range w.cfg.ExcludePIDs() {
			roots[p] = true
		}
	}
	if len(w.cfg.ExcludeRoots) > 0 || w.cfg.ExcludePIDs != nil {
		if cur, err = w.scanProcs(); err != nil {
			return Reading{}, fmt.Errorf("idle: %w", err)
		}
	}

	// Cgroups: their usage, and who is in them.
	var cgNs uint64
	inCgroup := map[int]bool{}
	for _, cg := range w.cgroups {
		ns, err := w.cgroupDelta(cg)
		if err != nil {
			w.log.Debug("cgroup not read", "cgroup", cg, "err", err)
		}
		cgNs += ns
		w.cgroupProcs(cg, inCgroup)
	}

	ticks, byRoot := w.account(cur, roots, inCgroup)

	r := Reading{Time: now, CPUs: cpus, ExcludedProcs: len(inCgroup) + byRoot, MemAvailable: w.memAvailable()}
	if w.n > 0 {
		r.Window = now.Sub(w.prevTime)
	}
	if secs := r.Window.Seconds(); secs > 0 {
		r.TotalCores = max(busy-w.prevBusy, 0) / secs
		r.ExcludedCores = (float64(ticks)/userHZ + float64(cgNs)/1e9) / secs
		r.Cores = min(max(r.TotalCores-r.ExcludedCores, 0), float64(cpus))
		r.Fraction = r.Cores / float64(cpus)
	} else {
		r.Window = 0
	}
	w.n++
	w.prevTime, w.prevBusy = now, busy
	w.last = r
	return r, nil
}

// procSample is one process as read in one sample.
type procSample struct {
	ppid  int
	start uint64
	v     uint64
}

func (w *Watcher) scanProcs() (map[int]procSample, error) {
	procs, err := w.fs.AllProcs()
	if err != nil {
		return nil, err
	}
	cur := make(map[int]procSample, len(procs))
	for _, p := range procs {
		s, err := p.Stat()
		if err != nil {
			continue // exited since the listing
		}
		cur[p.PID] = procSample{
			ppid:  s.PPID,
			start: s.Starttime,
			v:     uint64(s.UTime) + uint64(s.STime) + uint64(max(s.CUTime, 0)) + uint64(max(s.CSTime, 0)),
		}
	}
	return cur, nil
}

// account brings the process table up to date with cur and returns the
// ticks the excluded processes outside inCgroup used since the last
// sample, and how many they are.
func (w *Watcher) account(cur map[int]procSample, roots, inCgroup map[int]bool) (ticks uint64, n int) {
	// Exits first: the parent that reaped a process has its time in its
	// cutime and cstime, of which what was counted of the child is a
	// credit against the parent's growth.
	for pid, e := range w.procs {
		if c, ok := cur[pid]; ok && c.start == e.start {
			continue
		}
		delete(w.procs, pid)
		if pe := w.procs[e.ppid]; pe != nil {
			if pc, ok := cur[e.ppid]; ok && pc.start == pe.start {
				pe.credit += e.v
				pe.age = 0
			}
		}
		w.log.Debug("process gone", "pid", pid, "ppid", e.ppid, "excluded", e.excluded)
	}

	// Who is excluded: sticky, a root, or below an excluded process.
	memo := map[int]bool{}
	var excluded func(pid, depth int) bool
	excluded = func(pid, depth int) bool {
		if x, ok := memo[pid]; ok {
			return x
		}
		c, ok := cur[pid]
		if !ok || depth > 1024 {
			return roots[pid]
		}
		memo[pid] = false // a cycle in a broken table ends here
		e := w.procs[pid]
		x := roots[pid] || (e != nil && e.start == c.start && e.excluded) ||
			(c.ppid != pid && c.ppid > 0 && excluded(c.ppid, depth+1))
		memo[pid] = x
		return x
	}

	maxStart := uint64(0)
	for pid, c := range cur {
		maxStart = max(maxStart, c.start)
		var d uint64
		e := w.procs[pid]
		switch {
		case e == nil:
			e = &procEntry{start: c.start, v: c.v}
			w.procs[pid] = e
			// Started since the last sample: all its time is in the
			// window. Older but not seen before: a baseline.
			if w.n > 0 && c.start >= w.maxStart {
				d = c.v
			}
		case c.v >= e.v:
			d = c.v - e.v
			e.v = c.v
		default: // went down: a new base
			e.v = c.v
		}
		if e.credit > 0 {
			used := min(d, e.credit)
			d -= used
			e.credit -= used
			if e.age++; e.credit == 0 || e.age >= 2 {
				e.credit, e.age = 0, 0
			}
		}
		e.ppid = c.ppid
		if excluded(pid, 0) {
			if !e.excluded {
				w.log.Debug("process excluded", "pid", pid, "ppid", c.ppid)
			}
			e.excluded = true
			if !inCgroup[pid] {
				ticks += d
				n++
			}
		}
	}
	if len(cur) > 0 {
		w.maxStart = maxStart
	}
	return ticks, n
}

// cgroupDelta returns the nanoseconds cgroup cg's processes used since the
// last sample.
func (w *Watcher) cgroupDelta(cg string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(w.cpuacct, cg, "cpuacct.usage"))
	if errors.Is(err, fs.ErrNotExist) {
		delete(w.cg, cg)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	usage, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cpuacct.usage of %s: %w", cg, err)
	}
	prev, seen := w.cg[cg]
	w.cg[cg] = usage
	switch {
	case seen && usage >= prev:
		return usage - prev, nil
	case seen || w.n > 0:
		// Created, or re-created, since the last sample.
		return usage, nil
	}
	return 0, nil
}

// cgroupProcs adds the processes of cgroup cg and the cgroups below it to
// into.
func (w *Watcher) cgroupProcs(cg string, into map[int]bool) {
	root := filepath.Join(w.cpuacct, cg)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				into[pid] = true
			}
		}
		return nil
	})
}

func (w *Watcher) memAvailable() float64 {
	m, err := w.fs.Meminfo()
	if err != nil || m.MemAvailable == nil || m.MemTotal == nil || *m.MemTotal == 0 {
		return -1
	}
	return float64(*m.MemAvailable) / float64(*m.MemTotal)
}
