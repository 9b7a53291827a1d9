package main

import (
	"bytes"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/creack/pty"
)

// colourQuery is the start of the OSC 11 query of a terminal's background
// colour, which bubbletea v1 sent from its package init, in every command,
// and then waited up to 5 s for a terminal that does not answer.
var colourQuery = []byte("\x1b]11;?")

// onSilentTerminal runs zennet with args on a terminal (a pty) that never
// answers anything, and returns what zennet wrote to it.
func onSilentTerminal(tb testing.TB, args ...string) []byte {
	tb.Helper()
	cmd := exec.Command("zennet", args...)
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
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		tb.Fatalf("zennet %v still running after 30s", args)
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

func BenchmarkVersionOnSilentTerminal(b *testing.B) {
	for b.Loop() {
		onSilentTerminal(b, "--version")
	}
}
