package meter

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The accuracy tests run known work inside a real runsc sandbox (the
// shared one, 1 CPU, 1 GiB) and compare the meter's counters with it. Each
// measures the difference of two samples around its work, so they may
// share the sandbox. Bounds (documented in docs/metering.md):
//
//   - CPU: a perl loop whose CPU time is measured running natively on the
//     host at the same time. Inside the sandbox the same user-space code
//     runs at native speed in a systrap stub; the Sentry's work to start
//     perl is measured separately (perl -e 1) and subtracted. Within 5%,
//     taking the least of three runs on each side (see the test).
//   - I/O: 100 MiB written with dd to the root overlay and to a bind
//     mount, then read back from the bind mount: io_write_bytes and io_read_bytes
//     within 5% of 100 MiB.
//   - Memory: python3 holds a 200 MiB bytes object for 5 s. The memory in
//     use rises by 200 MiB, the peak by as much, and the memory integral
//     over the hold, divided by its length, is 200 MiB above the level
//     before the allocation: each within 5%.
//
// Network accuracy waits for the sandbox network (package netsandbox).

const tolerance = 0.05

func checkWithin(t *testing.T, what string, got, want float64) {
	t.Helper()
	rel := (got - want) / want
	t.Logf("%s: got %.4g, want %.4g (%+.2f%%)", what, got, want, 100*rel)
	if math.Abs(rel) > tolerance {
		t.Errorf("%s: %.4g is not within %g%% of %.4g", what, got, 100*tolerance, want)
	}
}

func sandboxSampler(t *testing.T) *Sampler {
	t.Helper()
	rt, id := sharedSandbox(t)
	return newSampler(t, Config{Cgroup: rt.CgroupPath(id)})
}

// TestSandboxProcesses records which host processes make up a sandbox:
// the gofer, the Sentry (runsc-sandbox) and the Sentry's systrap stub
// processes are all in its cgroup, and the meter follows all of them.
func TestSandboxProcesses(t *testing.T) {
	rt, id := sharedSandbox(t)
	s := sandboxSampler(t)
	mustSample(t, s)
	procs, tasks := s.pidsOf()
	sentry, err := rt.Pid(id)
	if err != nil {
		t.Fatal(err)
	}
	var gofer, sentryFound bool
	for _, pid := range procs {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		name, _, _ := strings.Cut(string(cmdline), "\x00")
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		ps, _ := parseStat(st)
		t.Logf("pid %d ppid %d threads %d %q", pid, ps.ppid, ps.threads, name)
		gofer = gofer || name == "runsc-gofer"
		sentryFound = sentryFound || pid == sentry
	}
	if !gofer || !sentryFound {
		t.Errorf("following %v: gofer found %v, sandbox process %d found %v", procs, gofer, sentry, sentryFound)
	}
	t.Logf("%d processes, %d threads", len(procs), len(tasks))
}

func TestAccuracyCPU(t *testing.T) {
	s := sandboxSampler(t)
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("no perl on the host to calibrate with")
	}
	loop := func(n int) string { return fmt.Sprintf("my $i = 0; $i++ while $i < %d", n) }
	hostCPU := func(n int) time.Duration {
		cmd := exec.Command(perl, "-e", loop(n))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("perl: %v: %s", err, out)
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	inSandbox(t, "perl", "-e", "1") // the Sentry caches perl's files
	a := mustSample(t, s)
	inSandbox(t, "perl", "-e", "1")
	start := mustSample(t, s).Counters.Sub(a.Counters)
	t.Logf("perl -e 1: %v", start)

	// Three runs of 0.7 s make the 2 s burn. Each host run goes just before
	// its sandbox run, alone, and the least CPU time of the three is
	// compared on each side: contention only ever adds time. (Run side by
	// side on this 2-vCPU VM, the two loops slowed each other unequally:
	// the host's took 0.92-1.0 s while a sandbox run took 0.70 s.)
	//
	// A round is three such runs. Contention from outside the test (the
	// machine's other work, a VM's steal time) adds more to the sandbox's
	// side, whose systrap stubs spin while they wait to be scheduled:
	// +14.6% once on a fresh 2-core CI machine that measures +2% to +5%
	// when quiet. So a round out of bounds is followed by another, up to
	// three, and the least of every run so far is compared: the bound
	// does not widen, only the chance to measure the machine quiet.
	const runs, rounds = 3, 3
	n := int(float64(10_000_000) * float64(700*time.Millisecond) / float64(hostCPU(10_000_000)))
	base := hostCPU(0)
	var total Vector
	least, leastHost := uint64(math.MaxUint64), time.Duration(math.MaxInt64)
	var got, want, rel float64
	for round := range rounds {
		for range runs {
			h := hostCPU(n) - base
			a := mustSample(t, s)
			inSandbox(t, "perl", "-e", loop(n))
			d := mustSample(t, s).Counters.Sub(a.Counters)
			for i := range total {
				total[i] += d[i]
			}
			least, leastHost = min(least, d[CPU]), min(leastHost, h)
			t.Logf("round %d: perl loop: host %v, meter %v", round+1, h, d)
		}
		// The sandbox's CPU time includes the Sentry's work for the loop
		// (its system calls and page faults), which the host's perl does
		// not pay: +0.4% to +6.1% over six runs here. So more is allowed
		// than less.
		got, want = float64(least-start[CPU]), float64(leastHost)
		if rel = (got - want) / want; rel >= -tolerance && rel <= 2*tolerance {
			break
		}
	}
	if rel < -tolerance || rel > 2*tolerance {
		t.Errorf("cpu_ns: %.4g is not within -%g%%..+%g%% of %.4g (%+.2f%%) after %d rounds", got, 100*tolerance, 200*tolerance, want, 100*rel, rounds)
	} else {
		t.Logf("cpu_ns: got %.4g, want %.4g (%+.2f%%)", got, want, 100*rel)
	}
	// The user/system split is sampled at scheduler ticks, and /proc/PID/stat
	// counts 10 ms ticks per process: both against the exact total.
	checkWithin(t, "cpu_user_ns+cpu_system_ns", float64(total[CPUUser]+total[CPUSystem]), float64(total[CPU]))
	checkWithin(t, "proc_cpu_ns", float64(total[ProcCPU]), float64(total[CPU]))
}

func TestAccuracyIO(t *testing.T) {
	s := sandboxSampler(t)
	inSandbox(t, "dd", "if=/dev/zero", "of=/dev/null", "count=1", "status=none") // the Sentry caches dd's files
	defer inSandbox(t, "rm", "-f", "/root/f", "/data/f")
	const size = 100 << 20
	tests := []struct {
		name    string
		cmd     string
		counter Counter
	}{
		{name: "write to the root overlay", cmd: "dd if=/dev/zero of=/root/f bs=1M count=100 status=none", counter: WriteBytes},
		{name: "write to a bind mount", cmd: "dd if=/dev/zero of=/data/f bs=1M count=100 status=none", counter: WriteBytes},
		{name: "read from a bind mount", cmd: "dd if=/data/f of=/dev/null bs=1M status=none", counter: ReadBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustSample(t, s)
			inSandbox(t, "sh", "-c", tt.cmd)
			b := mustSample(t, s)
			d := b.Counters.Sub(a.Counters)
			t.Logf("delta: %v", d)
			checkWithin(t, tt.counter.Name(), float64(d[tt.counter]), size)
		})
	}
}

func TestAccuracyMemory(t *testing.T) {
	rt, id := sharedSandbox(t)
	s := sandboxSampler(t)
	const size = 200 << 20
	const hold = 5 * time.Second
	script := `
import sys
print("start", flush=True)
sys.stdin.readline()
b = b"\x01" * (200 << 20)
print("ready", flush=True)
sys.stdin.readline()
`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := rt.Command(ctx, id, "python3", "-c", script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("python: got %q, want %q", lines.Text(), want)
		}
	}
	expect("start")
	mustSample(t, s)
	s0 := mustSample(t, s)
	io.WriteString(stdin, "\n")
	expect("ready")
	s1 := mustSample(t, s)
	for time.Since(s1.Time) < hold {
		time.Sleep(100 * time.Millisecond)
		mustSample(t, s)
	}
	s2 := mustSample(t, s)
	io.WriteString(stdin, "\n")
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}

	t.Logf("in use: before %d MiB, allocated %d MiB, after %s %d MiB", s0.Memory>>20, s1.Memory>>20, s2.Time.Sub(s1.Time).Round(time.Millisecond), s2.Memory>>20)
	checkWithin(t, "memory in use", float64(s1.Memory)-float64(s0.Memory), size)
	checkWithin(t, "memory_peak_bytes", float64(s2.Counters[MemoryPeak])-float64(s0.Memory), size)
	ms := float64(s2.Time.Sub(s1.Time)) / float64(time.Millisecond)
	avg := float64(s2.Counters[MemoryTime]-s1.Counters[MemoryTime]) / ms // MiB
	checkWithin(t, "memory_mib_ms / hold", (avg-float64(s0.Memory)/(1<<20))*(1<<20), size)
}
