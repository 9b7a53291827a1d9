package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/zennet/zennet/internal/testprovider"
	"github.com/zennet/zennet/lease"
)

// colourQuery is the start of the OSC 11 query of a terminal's background
// colour, which bubbletea v1 sent from its package init, in every command,
// and then waited up to 5 s for a terminal that does not answer.
var colourQuery = []byte("\x1b]11;?")

// onSilentTerminal runs zennet with args on a terminal (a pty) that never
// answers anything, and returns what zennet wrote to it.
func onSilentTerminal(tb testing.TB, args ...string) []byte {
	tb.Helper()
	return onTerminal(tb, nil, 30*time.Second, args...)
}

// onTerminal runs zennet with args and env (added to this process's) on a
// pty that answers nothing, and returns what it wrote there; it fails tb
// if zennet fails or runs longer than limit.
func onTerminal(tb testing.TB, env []string, limit time.Duration, args ...string) []byte {
	tb.Helper()
	cmd := exec.Command("zennet", args...)
	cmd.Env = append(os.Environ(), env...)
	tty, err := pty.Start(cmd)
	if err != nil {
		tb.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(&out, tty) // ends with EIO once zennet exits
		done <- err
	}()
	werr := make(chan error, 1)
	go func() { werr <- cmd.Wait() }()
	select {
	case err := <-werr:
		if err != nil {
			tb.Fatalf("zennet %v: %v\n%q", args, err, out.Bytes())
		}
	case <-time.After(limit):
		cmd.Process.Kill()
		tb.Fatalf("zennet %v still running after %v\n%q", args, limit, out.Bytes())
	}
	tty.Close()
	<-done
	return out.Bytes()
}

// TestNoTerminalQuery: a command that draws no dashboard asks the terminal
// nothing (it used to ask for the background colour at start-up, and so
// waited 5 s on a terminal that does not answer, before even --version).
// BenchmarkVersionOnSilentTerminal measures the time.
func TestNoTerminalQuery(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"--help"}, {"image", "build", "--help"}} {
		out := onSilentTerminal(t, args...)
		if bytes.Contains(out, colourQuery) {
			t.Errorf("zennet %v asked the terminal for its colours:\n%q", args, out)
		}
		if len(out) == 0 {
			t.Errorf("zennet %v wrote nothing", args)
		}
	}
}

// TestProgressOnTerminal: on a terminal, 'zennet -n' counts the hosts
// started while its provider starts them, up to all of them.
func TestProgressOnTerminal(t *testing.T) {
	p := testprovider.Start(t, lease.Capacity{Leases: 4, Memory: 4 << 30, CPUs: 4, Disk: 16 << 30}, nil)
	dir := t.TempDir()
	out := onTerminal(t, []string{"HOME=" + dir, "ZENNET_CONFIG_DIR=" + filepath.Join(dir, "config")},
		5*time.Minute, "-n", "3", "-m", "128M", "--provider", p.Addr, "--for", "1s", "--yes")
	if !bytes.Contains(out, []byte("3 of 3 started")) {
		t.Fatalf("no count of the hosts started up to 3 of 3 on the terminal:\n%q", out)
	}
	if bytes.Contains(out, []byte("4 of 3")) || bytes.Contains(out, []byte("0 of 3")) {
		t.Fatalf("a count out of range:\n%q", out)
	}
}

// BenchmarkVersionOnSilentTerminal times 'zennet --version' on a terminal
// that answers nothing against the same off a terminal (its output to a
// pipe), in alternating runs: issue 20's "every command waited 5 s on a
// terminal that does not answer" is the ratio (goal: about 1).
//
//	go test -run '^$' -bench VersionOnSilentTerminal ./cmd/zennet
func BenchmarkVersionOnSilentTerminal(b *testing.B) {
	var tty, pipe time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		onSilentTerminal(b, "--version")
		tty += time.Since(start)
		start = time.Now()
		if out, err := exec.Command("zennet", "--version").CombinedOutput(); err != nil {
			b.Fatalf("zennet --version: %v\n%s", err, out)
		}
		pipe += time.Since(start)
		n++
	}
	b.ReportMetric(tty.Seconds()/float64(n), "tty-s")
	b.ReportMetric(pipe.Seconds()/float64(n), "pipe-s")
	b.ReportMetric(tty.Seconds()/pipe.Seconds(), "ratio")
	b.Logf("zennet --version: %.3fs on a silent terminal, %.3fs to a pipe: %.2fx", tty.Seconds()/float64(n), pipe.Seconds()/float64(n), tty.Seconds()/pipe.Seconds())
}
