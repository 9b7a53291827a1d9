package meter

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zennet/zennet/internal/cgroupv1"
)

// ErrGone means the sandbox's cgroup does not exist (any more).
var ErrGone = errors.New("sandbox cgroup is gone")

// ErrUnsupported means the host has no cgroup v1 cpuacct and memory
// controllers; cgroup v2 is not supported yet.
var ErrUnsupported = errors.New("no cgroup v1 cpuacct and memory controllers (cgroup v2 is not supported)")

// NetFunc returns a sandbox's cumulative network bytes received and sent.
// It must be safe to call from the sampling goroutine.
type NetFunc func() (in, out uint64)

// Config says which sandbox a Sampler meters and where its counters live.
type Config struct {
	// Cgroup is the sandbox's cgroup path below each controller's mount,
	// as in the OCI spec's cgroupsPath (sandbox.Runtime.CgroupPath).
	Cgroup string
	// CgroupRoot holds one directory per cgroup v1 controller (cpuacct,
	// memory, pids). Empty means the mounts in /proc/self/mountinfo.
	CgroupRoot string
	// ProcRoot is where procfs is mounted; empty means /proc.
	ProcRoot string
	// Net gives the network counters; nil leaves them at zero.
	Net NetFunc
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives debug events; nil discards them.
	Log *slog.Logger
}

// Sample is one reading of a sandbox.
type Sample struct {
	Time     time.Time
	Counters Vector
	// Memory is the memory in use at Time in bytes (the gauge that
	// MemoryTime integrates).
	Memory uint64
}

// Sampler reads one sandbox's counters. Its methods are safe for
// concurrent use.
//
// Cost: it keeps open two files per host thread of the sandbox (schedstat,
// status) and two per process (stat, io), a few dozen under systrap. A
// sample reads the cgroup's counters and each thread's schedstat; only for
// the threads that ran since the last sample does it read their status and
// their process's stat and io. It re-lists the cgroup's threads only when
// pids.current or a thread's exit says the set changed. BenchmarkSample
// measures it.
type Sampler struct {
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
	procRoot  string
	tasksPath string

	mu sync.Mutex
	// Cgroup files, kept open; pids is -1 without a pids controller.
	usage, split, mem, pids int
	splitIsStat             bool // split is cpuacct.stat, not usage_all

	tasks     map[int]*task
	procs     map[int]*proc
	statusFDs int // threads with a kept status file
	// retired holds the counters of processes that left the cgroup,
	// retiredCtx the context switches of threads that did.
	retired    [numPV]int64
	retiredCtx [2]uint64

	buf    []byte
	newIDs []int

	n       int // samples taken
	last    Sample
	memAcc  float64 // MiB·ms
	clamped uint64
	gone    bool
	closed  bool
}

// maxStatusFDs bounds the status files a Sampler keeps open. Under systrap
// a sandbox has a few dozen host threads however many the guest runs (21
// idle, 24 with 100 guest threads); under the ptrace platform each guest
// thread is a host thread, and the status of threads past this bound is
// opened when read.
const maxStatusFDs = 64

// task is one host thread of the sandbox.
type task struct {
	tid, tgid  int
	fd         int // /proc/TGID/task/TID/schedstat
	statusFD   int // /proc/TGID/task/TID/status
	sched      schedstat
	vol, invol uint64
	ran        bool // since the last sample
	switched   bool // since the last sample
	dead       bool
	listed     bool
}

// Indexes of procVals.
const (
	pvCPU = iota // ticks
	pvMinflt
	pvMajflt
	pvRchar
	pvWchar
	pvSyscr
	pvSyscw
	pvReadBytes
	pvWriteBytes
	numPV
)

// procVals are one process's cumulative counters: its own, its dead
// threads' and its reaped children's, as the kernel sums them.
type procVals [numPV]uint64

func procValsOf(st procStat, io procIO) procVals {
	return procVals{
		pvCPU:        st.utime + st.stime + st.cutime + st.cstime,
		pvMinflt:     st.minflt + st.cminflt,
		pvMajflt:     st.majflt + st.cmajflt,
		pvRchar:      io.rchar,
		pvWchar:      io.wchar,
		pvSyscr:      io.syscr,
		pvSyscw:      io.syscw,
		pvReadBytes:  io.readBytes,
		pvWriteBytes: io.writeBytes,
	}
}

// proc is one host process of the sandbox.
type proc struct {
	pid, ppid int
	stat, io  int // kept open: the fds pin the process, so a reused pid cannot be mistaken for it
	vals      procVals
	// offset is what the process's vals will hold of children that left
	// the cgroup and were already counted (see leave).
	offset [numPV]int64
	ntasks int
	dirty  bool
}

// New opens the cgroup files of cfg.Cgroup. It fails with ErrGone if the
// cgroup does not exist. The caller must Close the Sampler.
func New(cfg Config) (*Sampler, error) {
	if cfg.Cgroup == "" {
		return nil, errors.New("meter: no cgroup")
	}
	cg := path.Clean("/" + cfg.Cgroup)
	dirs, err := controllerDirs(cfg.CgroupRoot)
	if err != nil {
		return nil, err
	}
	s := &Sampler{
		cfg:      cfg,
		log:      cfg.Log,
		now:      cfg.Now,
		procRoot: cfg.ProcRoot,
		usage:    -1, split: -1, mem: -1, pids: -1,
		tasks: map[int]*task{},
		procs: map[int]*proc{},
		buf:   make([]byte, 4096),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("subsystem", "meter", "cgroup", cg)
	if s.now == nil {
		s.now = time.Now
	}
	if s.procRoot == "" {
		s.procRoot = "/proc"
	}
	cpuDir := filepath.Join(dirs["cpuacct"], cg)
	s.tasksPath = filepath.Join(cpuDir, "tasks")
	if s.usage, err = openFile(filepath.Join(cpuDir, "cpuacct.usage")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("meter %s: %w", cg, ErrGone)
		}
		return nil, err
	}
	if s.split, err = openFile(filepath.Join(cpuDir, "cpuacct.usage_all")); errors.Is(err, fs.ErrNotExist) {
		s.split, err = openFile(filepath.Join(cpuDir, "cpuacct.stat"))
		s.splitIsStat = true
	}
	if err == nil {
		s.mem, err = openFile(filepath.Join(dirs["memory"], cg, "memory.stat"))
	}
	if err == nil && dirs["pids"] != "" {
		s.pids, err = openFile(filepath.Join(dirs["pids"], cg, "pids.current"))
		if errors.Is(err, fs.ErrNotExist) {
			s.pids, err = -1, nil
		}
	}
	if err != nil {
		s.closeAll()
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("meter %s: %w", cg, ErrGone)
		}
		return nil, err
	}
	return s, nil
}

// controllerDirs finds the mount point of each cgroup v1 controller the
// meter reads.
func controllerDirs(root string) (map[string]string, error) {
	dirs, v2, err := cgroupv1.Mounts(root, "cpuacct", "memory", "pids")
	if err != nil {
		return nil, err
	}
	if dirs["cpuacct"] == "" || dirs["memory"] == "" {
		if v2 {
			return nil, ErrUnsupported
		}
		return nil, fmt.Errorf("find cgroup mounts: %w", ErrUnsupported)
	}
	return dirs, nil
}

func openFile(name string) (int, error) {
	for {
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return fd, nil
	}
}

// pread reads the whole of a kernel file from offset 0 into s.buf.
func (s *Sampler) pread(fd int) ([]byte, error) {
	for {
		n, err := unix.Pread(fd, s.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n < len(s.buf) {
			return s.buf[:n], nil
		}
		s.buf = make([]byte, 2*len(s.buf))
	}
}

// readFile reads a file that must be opened afresh to be current.
func (s *Sampler) readFile(name string) ([]byte, error) {
	fd, err := openFile(name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b, err := s.pread(fd)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return b, nil
}

// Sample reads the sandbox's counters now. Once the cgroup is gone it
// returns the last sample and an error wrapping ErrGone; on any other error
// it returns the last sample too, so that nothing the caller holds goes
// backwards.
func (s *Sampler) Sample() (Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.last, errors.New("meter: sampler closed")
	}
	if s.gone {
		return s.last, fmt.Errorf("meter: %w", ErrGone)
	}
	now := s.now()
	b, err := s.pread(s.usage)
	if err != nil {
		return s.fail("read cpuacct.usage", err)
	}
	usage, err := parseSingle(b)
	if err != nil {
		return s.fail("cpuacct.usage", err)
	}
	if b, err = s.pread(s.split); err != nil {
		return s.fail("read cpuacct.usage_all", err)
	}
	var user, system uint64
	if s.splitIsStat {
		user, system, err = parseCPUAcctStat(b)
	} else {
		user, system, err = parseUsageAll(b)
	}
	if err != nil {
		return s.fail("cpu split", err)
	}
	if b, err = s.pread(s.mem); err != nil {
		return s.fail("read memory.stat", err)
	}
	ms, err := parseMemoryStat(b)
	if err != nil {
		return s.fail("memory", err)
	}
	if err := s.scan(); err != nil {
		return s.fail("scan", err)
	}

	var v Vector
	v[CPU] = usage
	v[CPUUser] = user
	v[CPUSystem] = system
	acc := s.retired
	for _, p := range s.procs {
		for i := range acc {
			acc[i] += int64(p.vals[i]) - p.offset[i]
		}
	}
	nonNeg := func(x int64) uint64 { return uint64(max(x, 0)) }
	v[ProcCPU] = nonNeg(acc[pvCPU]) * (1e9 / userHZ)
	v[PageFaultsMinor] = nonNeg(acc[pvMinflt])
	v[PageFaultsMajor] = nonNeg(acc[pvMajflt])
	v[ReadBytes] = nonNeg(acc[pvRchar])
	v[WriteBytes] = nonNeg(acc[pvWchar])
	v[ReadSyscalls] = nonNeg(acc[pvSyscr])
	v[WriteSyscalls] = nonNeg(acc[pvSyscw])
	v[DiskReadBytes] = nonNeg(acc[pvReadBytes])
	v[DiskWriteBytes] = nonNeg(acc[pvWriteBytes])
	vol, invol := s.retiredCtx[0], s.retiredCtx[1]
	for _, t := range s.tasks {
		vol += t.vol
		invol += t.invol
	}
	v[CtxSwitchesVoluntary] = vol
	v[CtxSwitchesInvoluntary] = invol

	memNow := ms.inUse()
	if s.n > 0 {
		if dt := now.Sub(s.last.Time); dt > 0 {
			avg := (float64(s.last.Memory) + float64(memNow)) / 2
			s.memAcc += avg / (1 << 20) * float64(dt) / float64(time.Millisecond)
		}
	}
	v[MemoryTime] = uint64(s.memAcc)
	v[MemoryPeak] = max(s.last.Counters[MemoryPeak], memNow)
	if s.cfg.Net != nil {
		v[NetInBytes], v[NetOutBytes] = s.cfg.Net()
	}

	// Never backwards. Counters dip only in the moment between a
	// process leaving and its parent reaping it (see leave), or if Net
	// restarts from zero.
	for i := range v {
		if v[i] < s.last.Counters[i] {
			s.clamped++
			s.log.Debug("counter held", "counter", Counter(i).Name(), "read", v[i], "held", s.last.Counters[i])
			v[i] = s.last.Counters[i]
		}
	}
	s.n++
	s.last = Sample{Time: now, Counters: v, Memory: memNow}
	return s.last, nil
}

// fail returns the last sample with err; if err says the cgroup is gone,
// the Sampler closes its files and stays gone.
func (s *Sampler) fail(what string, err error) (Sample, error) {
	if errors.Is(err, unix.ENODEV) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrGone) {
		s.gone = true
		s.closeAll()
		s.log.Debug("cgroup gone", "err", err)
		return s.last, fmt.Errorf("meter: %s: %w", what, ErrGone)
	}
	return s.last, fmt.Errorf("meter: %s: %w", what, err)
}

// scan brings the tables of threads and processes up to date, reading only
// what can have changed: a thread that has not run since the last sample
// (its schedstat is unchanged) has switched no context, faulted no page
// and done no I/O, and a process none of whose threads ran has not changed.
func (s *Sampler) scan() error {
	s.newIDs = s.newIDs[:0]
	changed := s.n == 0
	alive := 0
	for _, t := range s.tasks {
		b, err := s.pread(t.fd)
		var ss schedstat
		if err == nil {
			ss, err = parseSchedstat(b)
		}
		if err != nil { // ESRCH: the thread was reaped
			t.dead = true
			changed = true
			continue
		}
		// All zeros: no schedstats in this kernel; read everything.
		t.ran = ss != t.sched || ss == schedstat{}
		// The number of times the thread was switched in moves with
		// its voluntary + involuntary switches: unchanged, its status
		// is unchanged.
		t.switched = ss.count != t.sched.count || ss == schedstat{}
		t.sched = ss
		alive++
	}
	if !changed {
		if s.pids < 0 {
			changed = true
		} else {
			b, err := s.pread(s.pids)
			if err != nil {
				return fmt.Errorf("read pids.current: %w", err)
			}
			// pids.current also counts zombies, which tasks does not
			// list: while one lingers the set is re-listed every time.
			n, err := parseSingle(b)
			changed = err != nil || n != uint64(alive)
		}
	}
	if changed {
		if err := s.relist(); err != nil {
			return err
		}
	}
	for tid, t := range s.tasks {
		if t.dead {
			s.retiredCtx[0] += t.vol
			s.retiredCtx[1] += t.invol
			s.closeTask(t)
			delete(s.tasks, tid)
			if p := s.procs[t.tgid]; p != nil {
				p.ntasks--
				p.dirty = true
			}
		}
	}
	for _, tid := range s.newIDs {
		s.addTask(tid)
	}
	for _, t := range s.tasks {
		if !t.ran {
			continue
		}
		if t.switched {
			if b, err := s.readStatus(t); err == nil {
				if st, err := parseStatus(b); err == nil {
					t.vol, t.invol = max(t.vol, st.vol), max(t.invol, st.invol)
				}
			}
		}
		t.ran, t.switched = false, false
		if p := s.procs[t.tgid]; p != nil {
			p.dirty = true
		}
	}
	var left []*proc
	for _, p := range s.procs {
		if p.ntasks <= 0 {
			left = append(left, p)
		} else if p.dirty {
			if err := s.readProc(p); err == nil {
				p.dirty = false
			}
		}
	}
	s.leave(left)
	return nil
}

// relist reads the cgroup's thread list: threads no longer in it are marked
// dead, new ones are left in s.newIDs.
func (s *Sampler) relist() error {
	b, err := s.readFile(s.tasksPath)
	if err != nil {
		return err
	}
	for _, t := range s.tasks {
		t.listed = false
	}
	err = parseIDs(b, func(tid int) {
		if t := s.tasks[tid]; t != nil && !t.dead {
			t.listed = true
		} else {
			s.newIDs = append(s.newIDs, tid)
		}
	})
	if err != nil {
		return fmt.Errorf("%s: %w", s.tasksPath, err)
	}
	for _, t := range s.tasks {
		if !t.listed {
			t.dead = true
		}
	}
	return nil
}

func (s *Sampler) procPath(pid int, elem ...string) string {
	return filepath.Join(append([]string{s.procRoot, strconv.Itoa(pid)}, elem...)...)
}

// addTask starts following thread tid, and its process if it is new. A
// thread that is gone already is skipped.
func (s *Sampler) addTask(tid int) {
	if s.tasks[tid] != nil {
		return
	}
	b, err := s.readFile(s.procPath(tid, "status"))
	if err != nil {
		return
	}
	st, err := parseStatus(b)
	if err != nil {
		return
	}
	fd, err := openFile(s.procPath(st.tgid, "task", strconv.Itoa(tid), "schedstat"))
	if err != nil {
		return
	}
	sfd := -1
	if s.statusFDs < maxStatusFDs {
		if sfd, err = openFile(s.procPath(st.tgid, "task", strconv.Itoa(tid), "status")); err != nil {
			unix.Close(fd)
			return
		}
		s.statusFDs++
	}
	t := &task{tid: tid, tgid: st.tgid, fd: fd, statusFD: sfd, vol: st.vol, invol: st.invol}
	if b, err := s.pread(fd); err == nil {
		t.sched, _ = parseSchedstat(b)
	}
	p := s.procs[st.tgid]
	if p == nil {
		if p = s.addProc(st.tgid); p == nil {
			s.closeTask(t)
			return
		}
	}
	p.ntasks++
	p.dirty = true
	s.tasks[tid] = t
}

// readStatus reads thread t's status, from its kept file if it has one.
func (s *Sampler) readStatus(t *task) ([]byte, error) {
	if t.statusFD >= 0 {
		return s.pread(t.statusFD)
	}
	return s.readFile(s.procPath(t.tgid, "task", strconv.Itoa(t.tid), "status"))
}

func (s *Sampler) closeTask(t *task) {
	closeFDs(t.fd, t.statusFD)
	if t.statusFD >= 0 {
		s.statusFDs--
	}
	t.fd, t.statusFD = -1, -1
}

func (s *Sampler) addProc(pid int) *proc {
	p := &proc{pid: pid, stat: -1, io: -1}
	var err error
	if p.stat, err = openFile(s.procPath(pid, "stat")); err == nil {
		p.io, err = openFile(s.procPath(pid, "io"))
	}
	if err == nil {
		err = s.readProc(p)
	}
	if err != nil {
		s.log.Debug("process not followed", "pid", pid, "err", err)
		closeFDs(p.stat, p.io)
		return nil
	}
	s.procs[pid] = p
	s.log.Debug("process joined", "pid", pid, "ppid", p.ppid, "vals", p.vals)
	return p
}

// readProc updates p.vals from its stat and io files. Values only grow.
func (s *Sampler) readProc(p *proc) error {
	b, err := s.pread(p.stat)
	if err != nil {
		return err
	}
	st, err := parseStat(b)
	if err != nil {
		return err
	}
	if b, err = s.pread(p.io); err != nil {
		return err
	}
	io, err := parseIO(b)
	if err != nil {
		return err
	}
	p.ppid = st.ppid
	for i, x := range procValsOf(st, io) {
		p.vals[i] = max(p.vals[i], x)
	}
	return nil
}

// leave accounts for processes whose last thread left the cgroup. A final
// read catches what each did since the last sample if it is still a zombie.
// If its parent is a process of the sandbox that we follow (alive or
// leaving too), the kernel adds its counters to the parent's when the
// parent reaps it (stat's cutime, cminflt, ... and io), so they become an
// offset against the parent's, which keeps them from counting twice;
// otherwise (a parent outside, like init for the Sentry and gofer) they are
// retired. A parent that dies without reaping leaves the offset uncovered:
// the sum then reads low, never high. Offsets are all applied before any
// process's remainder is retired, so that a parent leaving in the same
// sample as its child is settled with the child's offset.
func (s *Sampler) leave(left []*proc) {
	for _, p := range left {
		s.readProc(p)
	}
	for _, p := range left {
		if parent := s.procs[p.ppid]; parent != nil && parent != p {
			for i := range parent.offset {
				parent.offset[i] += int64(p.vals[i])
			}
		}
	}
	for _, p := range left {
		for i := range s.retired {
			s.retired[i] += int64(p.vals[i]) - p.offset[i]
		}
		s.log.Debug("process left", "pid", p.pid, "ppid", p.ppid, "vals", p.vals, "offset", p.offset)
		closeFDs(p.stat, p.io)
		delete(s.procs, p.pid)
	}
}

func closeFDs(fds ...int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

func (s *Sampler) closeAll() {
	closeFDs(s.usage, s.split, s.mem, s.pids)
	s.usage, s.split, s.mem, s.pids = -1, -1, -1, -1
	for tid, t := range s.tasks {
		s.closeTask(t)
		delete(s.tasks, tid)
	}
	for pid, p := range s.procs {
		closeFDs(p.stat, p.io)
		delete(s.procs, pid)
	}
}

// Last returns the most recent sample, the zero Sample before the first.
func (s *Sampler) Last() Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Close releases the Sampler's files. Last still works afterwards.
func (s *Sampler) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.closeAll()
	}
	return nil
}

// heldCount says how many counter readings Sample raised to the previous
// value, for tests.
func (s *Sampler) heldCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clamped
}

// pidsOf lists the processes and threads the Sampler follows, for tests.
func (s *Sampler) pidsOf() (procs, tasks []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pid := range s.procs {
		procs = append(procs, pid)
	}
	for tid := range s.tasks {
		tasks = append(tasks, tid)
	}
	return procs, tasks
}
