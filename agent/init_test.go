package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The reaper, tried where it works as in a sandbox: this test re-runs
// itself as a child subreaper (PR_SET_CHILD_SUBREAPER), which is given the
// orphans its descendants leave, as a first process is.
func TestReaper(t *testing.T) {
	if os.Getenv("ZENNET_TEST_REAPER") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestReaper$", "-test.v")
		cmd.Env = append(os.Environ(), "ZENNET_TEST_REAPER=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestReaper") {
			t.Fatalf("the subreaper did not run the test:\n%s", out)
		}
		return
	}
	const prSetChildSubreaper = 36
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		t.Skipf("prctl(PR_SET_CHILD_SUBREAPER): %v", e)
	}
	startReaper()

	// Sessions that exit at once, each leaving orphans that exit a moment
	// later, all at the same time: every session gets its own exit status
	// (the reaper never takes os/exec's), and no orphan stays a zombie.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := i%5 + 1
			cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("sleep 0.0%d & sleep 0.0%d & exit %d", i%7, i%3, code))
			if err := startChild(cmd, cmd.Start); err != nil {
				errs <- err
				return
			}
			err := waitChild(cmd)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != code {
				errs <- fmt.Errorf("session %d: want exit status %d, got %v", i, code, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		z := zombies(t)
		if len(z) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphans left as zombies: %v", z)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A signal that would end a Go program does not end this one.
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE} {
		if err := syscall.Kill(os.Getpid(), s); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
}

// zombies lists this process's children that have exited and are not
// reaped.
func zombies(t *testing.T) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	var z []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 || f[0] != "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			z = append(z, pid)
		}
	}
	return z
}
