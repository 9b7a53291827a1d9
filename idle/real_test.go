package idle

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// burn starts a shell whose background child spins (at most 5 s) and
// returns the shell's pid; the child is its descendant.
func burn(t *testing.T, script string) int {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	stop := time.AfterFunc(5*time.Second, func() { syscall.Kill(-pid, syscall.SIGKILL) })
	t.Cleanup(func() {
		stop.Stop()
		syscall.Kill(-pid, syscall.SIGKILL) // the group we started
		cmd.Wait()
	})
	return pid
}

// TestRealProc burns a CPU in a child process and watches /proc with and
// without excluding it. The machine may be busy with anything else, so it
// compares two Watchers sampling the same windows rather than loads with
// fixed values.
func TestRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc")
	}
	shell := burn(t, "sh -c 'while :; do :; done' & wait")
	excluding, err := New(Config{ExcludeRoots: []int{shell}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*Watcher{excluding, plain} {
		if _, err := w.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(4 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		a, err := excluding.Sample()
		if err != nil {
			t.Fatal(err)
		}
		b, err := plain.Sample()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("excluding the burner: %v", a)
		t.Logf("not excluding it:     %v", b)
		if b.ExcludedCores != 0 || b.ExcludedProcs != 0 {
			t.Fatalf("a Watcher excluding nothing excluded %v", b)
		}
		// The burner (a descendant of the shell) shows in the owner's
		// load of one and not the other. On a machine busy with other
		// tests it may get a small share of the CPUs, so what counts is
		// that its share is excluded, and taken off the owner's load.
		if a.ExcludedProcs >= 2 && a.ExcludedCores >= 0.05 && b.Cores-a.Cores >= a.ExcludedCores/2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the burner never showed as the owner's load of one Watcher only")
		}
	}
}

// TestRealCgroup does the same with the burner in a cpuacct cgroup of its
// own, which needs root and cgroup v1.
func TestRealCgroup(t *testing.T) {
	dir, err := cpuacctMount()
	if err != nil {
		t.Skip(err)
	}
	cg := fmt.Sprintf("/zennet-idle-test-%d", os.Getpid())
	cgDir := filepath.Join(dir, cg)
	if err := os.Mkdir(cgDir, 0o755); err != nil {
		t.Skipf("cannot make a cgroup: %v", err)
	}
	t.Cleanup(func() {
		// After the burner's cleanup (Cleanup runs last-in first-out).
		for i := 0; i < 50; i++ {
			if err := syscall.Rmdir(cgDir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s left behind", cgDir)
	})
	burner := burn(t, "while :; do :; done")
	if err := os.WriteFile(filepath.Join(cgDir, "cgroup.procs"), []byte(strconv.Itoa(burner)), 0); err != nil {
		t.Skipf("cannot move into a cgroup: %v", err)
	}
	w, err := New(Config{ExcludeCgroups: []string{cg}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Sample(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		r, err := w.Sample()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v", r)
		if r.ExcludedProcs == 1 && r.ExcludedCores >= 0.3 && r.ExcludedCores <= r.TotalCores+0.1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the burner's cgroup never showed as excluded")
		}
	}
}

// BenchmarkSample measures a sample of the real /proc with a root to
// follow (every process's stat is read).
func BenchmarkSample(b *testing.B) {
	w, err := New(Config{ExcludeRoots: []int{os.Getpid()}})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := w.Sample(); err != nil {
			b.Fatal(err)
		}
	}
}
