package meter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests in this file meter host processes in a cgroup of their own:
// the real kernel's exits, reaping and thread deaths, without runsc. They
// need root and cgroup v1, and skip otherwise.

func TestMain(m *testing.M) {
	if os.Getenv("METER_TEST_HELPER") == "1" {
		runHelper()
		os.Exit(0)
	}
	code := m.Run()
	stopTestSandbox()
	os.Exit(code)
}

// runHelper is a process the tests drive over stdin, one command a line,
// answering "ok" when done.
func runHelper() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "write": // write PATH BYTES
			n, _ := strconv.Atoi(f[2])
			if err := os.WriteFile(f[1], make([]byte, n), 0o600); err != nil {
				fmt.Println("error", err)
				continue
			}
		case "read": // read PATH
			if _, err := os.ReadFile(f[1]); err != nil {
				fmt.Println("error", err)
				continue
			}
		case "burn": // burn MS of this process's CPU time
			ms, _ := strconv.Atoi(f[1])
			for start := cpuTime(); cpuTime()-start < time.Duration(ms)*time.Millisecond; {
			}
		case "alloc": // alloc MIB: allocate and touch, and hold it
			n, _ := strconv.Atoi(f[1])
			b := make([]byte, n<<20)
			for i := range b {
				b[i] = 1
			}
			held = append(held, b)
		case "child": // child SHELL COMMAND: run it in sh, wait for it
			if out, err := exec.Command("/bin/sh", "-c", strings.Join(f[1:], " ")).CombinedOutput(); err != nil {
				fmt.Println("error", err, string(out))
				continue
			}
		case "sleep": // sleep MS
			ms, _ := strconv.Atoi(f[1])
			time.Sleep(time.Duration(ms) * time.Millisecond)
		case "threads": // threads N: N threads that switch and then exit
			n, _ := strconv.Atoi(f[1])
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
					for range 50 {
						time.Sleep(200 * time.Microsecond)
					}
				}()
			}
			wg.Wait()
		case "exit":
			return
		}
		fmt.Println("ok")
	}
}

var held [][]byte

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// helper is a running helper process.
type helper struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startHelper starts a helper in cgroup rel before it does anything.
func startHelper(t *testing.T, rel string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "METER_TEST_HELPER=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	moveToCgroup(t, rel, cmd.Process.Pid)
	return &helper{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out)}
}

func (h *helper) do(command string) {
	h.t.Helper()
	if _, err := fmt.Fprintln(h.in, command); err != nil {
		h.t.Fatal(err)
	}
	if !h.out.Scan() {
		h.t.Fatalf("%s: helper gone", command)
	}
	if got := h.out.Text(); got != "ok" {
		h.t.Fatalf("%s: %s", command, got)
	}
}

func (h *helper) exit() {
	h.t.Helper()
	fmt.Fprintln(h.in, "exit")
	if err := h.cmd.Wait(); err != nil {
		h.t.Fatal(err)
	}
}

// testCgroup makes an empty cgroup for the test in the controllers the
// meter reads and returns its path; cleanup kills what is left in it.
func testCgroup(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make cgroups")
	}
	dirs, err := controllerDirs("")
	if err != nil {
		t.Skip(err)
	}
	rel := fmt.Sprintf("/zennet-meter-test/%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	for _, c := range []string{"cpuacct", "memory", "pids"} {
		if err := os.MkdirAll(filepath.Join(dirs[c], rel), 0o755); err != nil {
			t.Skip(err)
		}
	}
	t.Cleanup(func() { removeCgroup(t, rel) })
	return rel
}

func removeCgroup(t *testing.T, rel string) {
	dirs, _ := controllerDirs("")
	for _, c := range []string{"cpuacct", "memory", "pids"} {
		dir := filepath.Join(dirs[c], rel)
		for range 100 {
			b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil || len(strings.TrimSpace(string(b))) == 0 {
				break
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					if p, err := os.FindProcess(pid); err == nil {
						p.Kill()
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("remove cgroup: %v", err)
		}
		os.Remove(filepath.Dir(dir))
	}
}

func moveToCgroup(t *testing.T, rel string, pid int) {
	t.Helper()
	dirs, _ := controllerDirs("")
	for _, c := range []string{"cpuacct", "memory", "pids"} {
		if err := os.WriteFile(filepath.Join(dirs[c], rel, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// monotone samples s every interval until stop is closed and fails the
// test if any counter ever goes backwards.
func monotone(t *testing.T, s *Sampler, interval time.Duration) (stop func() Sample) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var last Sample
	var bad error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			cur, err := s.Sample()
			if err == nil {
				for c := Counter(0); c < NumCounters; c++ {
					if cur.Counters[c] < last.Counters[c] && bad == nil {
						bad = fmt.Errorf("%s went from %d to %d", c.Name(), last.Counters[c], cur.Counters[c])
					}
				}
				last = cur
			}
			select {
			case <-done:
				return
			case <-time.After(interval):
			}
		}
	}()
	return func() Sample {
		close(done)
		wg.Wait()
		if bad != nil {
			t.Error(bad)
		}
		return last
	}
}

func newSampler(t *testing.T, cfg Config) *Sampler {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustSample(t *testing.T, s *Sampler) Sample {
	t.Helper()
	x, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func within(got, want, slack uint64) bool {
	return got+slack >= want && got <= want+slack
}

// TestSamplerProcessExits: a process that does I/O and exits, reaped by a
// parent outside the cgroup, leaves its counters behind.
func TestSamplerProcessExits(t *testing.T) {
	rel := testCgroup(t)
	s := newSampler(t, Config{Cgroup: rel})
	file := filepath.Join(t.TempDir(), "f")
	h := startHelper(t, rel)
	s0 := mustSample(t, s)
	stop := monotone(t, s, 2*time.Millisecond)
	h.do(fmt.Sprintf("write %s %d", file, 8<<20))
	h.do("read " + file)
	h.do("burn 100")
	h.do("threads 4")
	h.exit()
	time.Sleep(20 * time.Millisecond)
	last := stop()
	s1 := mustSample(t, s)
	if s1.Counters != last.Counters {
		t.Errorf("counters changed after the process exited:\n%v\n%v", last.Counters, s1.Counters)
	}
	d := s1.Counters.Sub(s0.Counters)
	t.Logf("delta: %v", d)
	if !within(d[WriteBytes], 8<<20, 64<<10) {
		t.Errorf("io_write_bytes %d, want 8 MiB", d[WriteBytes])
	}
	if !within(d[ReadBytes], 8<<20, 256<<10) {
		t.Errorf("io_read_bytes %d, want 8 MiB", d[ReadBytes])
	}
	if d[CPU] < uint64(100*time.Millisecond) {
		t.Errorf("cpu %s, want at least 100ms", time.Duration(d[CPU]))
	}
	if d[CtxSwitchesVoluntary] == 0 || d[PageFaultsMinor] == 0 || d[WriteSyscalls] == 0 {
		t.Errorf("no context switches, page faults or write calls counted: %v", d)
	}
	if procs, tasks := s.pidsOf(); len(procs)+len(tasks) != 0 {
		t.Errorf("still following processes %v threads %v", procs, tasks)
	}
	// With no reaping inside the cgroup nothing dips: the counters rose
	// on their own, without the Sampler holding any.
	if n := s.heldCount(); n != 0 {
		t.Errorf("%d counter readings held up", n)
	}
}

// TestSamplerReapedChild: a child reaped by a parent in the cgroup moves
// its counters into the parent's (stat's children fields, io); they must
// count once, not twice.
func TestSamplerReapedChild(t *testing.T) {
	rel := testCgroup(t)
	s := newSampler(t, Config{Cgroup: rel})
	file := filepath.Join(t.TempDir(), "f")
	h := startHelper(t, rel)
	s0 := mustSample(t, s)
	stop := monotone(t, s, 2*time.Millisecond)
	// sh is a child of the helper and dd a child of sh: both are reaped
	// inside the cgroup, each while the sampler follows it.
	for range 3 {
		h.do(fmt.Sprintf("child dd if=/dev/zero of=%s bs=1M count=4 status=none; sleep 0.05", file))
	}
	time.Sleep(10 * time.Millisecond)
	stop()
	s1 := mustSample(t, s)
	d := s1.Counters.Sub(s0.Counters)
	t.Logf("delta: %v", d)
	if !within(d[WriteBytes], 12<<20, 64<<10) {
		t.Errorf("io_write_bytes %d, want 12 MiB", d[WriteBytes])
	}
	h.exit()
	s2 := mustSample(t, s)
	if d := s2.Counters.Sub(s1.Counters); d[WriteBytes] > 64<<10 {
		t.Errorf("io_write_bytes grew by %d after the parent exited", d[WriteBytes])
	}
}

// TestSamplerCgroupGone: when the cgroup vanishes, Sample returns the last
// counters and ErrGone, for ever.
func TestSamplerCgroupGone(t *testing.T) {
	rel := testCgroup(t)
	s := newSampler(t, Config{Cgroup: rel})
	h := startHelper(t, rel)
	h.do("burn 50")
	before := mustSample(t, s)
	h.exit()
	removeCgroup(t, rel)
	for range 2 {
		got, err := s.Sample()
		if !errors.Is(err, ErrGone) {
			t.Fatalf("err = %v, want ErrGone", err)
		}
		for c := Counter(0); c < NumCounters; c++ {
			if got.Counters[c] < before.Counters[c] {
				t.Errorf("%s went from %d to %d", c.Name(), before.Counters[c], got.Counters[c])
			}
		}
	}
	if _, err := New(Config{Cgroup: rel}); !errors.Is(err, ErrGone) {
		t.Errorf("New on a missing cgroup: err = %v, want ErrGone", err)
	}
}

// TestSamplerMemoryIntegral checks the trapezoid rule against a clock the
// test controls.
func TestSamplerMemoryIntegral(t *testing.T) {
	rel := testCgroup(t)
	now := time.Unix(1e9, 0)
	s := newSampler(t, Config{Cgroup: rel, Now: func() time.Time { return now }, Net: func() (uint64, uint64) { return 7, 9 }})
	h := startHelper(t, rel)
	h.do("alloc 16")
	s0 := mustSample(t, s)
	if s0.Counters[MemoryTime] != 0 || s0.Memory == 0 {
		t.Fatalf("first sample: memory %d, integral %d", s0.Memory, s0.Counters[MemoryTime])
	}
	now = now.Add(10 * time.Second)
	s1 := mustSample(t, s)
	want := (float64(s0.Memory) + float64(s1.Memory)) / 2 / (1 << 20) * 10000
	if got := float64(s1.Counters[MemoryTime]); got < want-1 || got > want+1 {
		t.Errorf("integral %v MiB·ms, want %v", got, want)
	}
	if s1.Counters[MemoryPeak] < max(s0.Memory, s1.Memory) {
		t.Errorf("peak %d below samples %d, %d", s1.Counters[MemoryPeak], s0.Memory, s1.Memory)
	}
	if s1.Counters[NetInBytes] != 7 || s1.Counters[NetOutBytes] != 9 {
		t.Errorf("net %d/%d, want 7/9", s1.Counters[NetInBytes], s1.Counters[NetOutBytes])
	}
}
