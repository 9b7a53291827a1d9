package cli

// Detach: 'zennet -n N -d' rents through a background holder, a zennet of
// its own (the same command line with --holder) in a new session with no
// terminal, and returns once the hosts are ready, as SkyPilot's
// 'sky launch -d' does. The holder keeps the leases and pays, until
// 'zennet release' (which signals it, as for any session), --for or
// --max-spend.
//
// Until its hosts are ready, the holder's stdout and stderr are pipes to
// the command that started it, which passes them on, so that its events
// and its failure (with its exit code) read as they would without -d.
// Once they are ready the holder records in its session that it is
// detached (a holder that dies is then reported, session.Dead), points
// its stdout and stderr at the log file in the session's directory (what
// it said so far first), and says so on a third pipe (fd 3) with the
// hosts document, which the command prints before it exits 0.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/renter"
)

// holderReady is what a holder says on its ready pipe once its hosts are
// ready: one JSON document.
type holderReady struct {
	Hosts cmdutil.HostsDoc `json:"hosts"`
	Pid   int              `json:"pid"`
	Log   string           `json:"log"`
}

// readyFD is the holder's ready pipe: the first of the command's extra
// files.
const readyFD = 3

// holderStartGrace is how much longer than --timeout the command waits for
// its holder to say that its hosts are ready: the leasing is bounded by
// --timeout, and what follows (prepaid hosts' start, probes, the session
// network) by bounds of its own.
const holderStartGrace = 3 * time.Minute

// holderStopWait bounds the wait for a holder told to stop (Ctrl-C on the
// command that started it) to release what it had rented and exit.
const holderStopWait = time.Minute

// addDetachFlags gives the rent command -d and the hidden --holder.
func addDetachFlags(cmd *cobra.Command, o *rentOptions) {
	cmd.Flags().BoolVarP(&o.Detach, "detach", "d", false, "return once the hosts are ready, and hold them in the background until 'zennet release' (or --for, --max-spend)")
	cmd.Flags().BoolVar(&o.Holder, "holder", false, "be the background holder of 'zennet -n -d' (zennet's own)")
	cmd.Flags().BoolVar(&o.HolderProgress, "holder-progress", false, "as the holder, pass on the progress line (the command's stderr is a terminal)")
	cmd.Flags().MarkHidden("holder")
	cmd.Flags().MarkHidden("holder-progress")
}

// holderArgs is the command line of the holder of cmd: every flag the user
// set, but -d and the output's formatting, with --holder (and
// --holder-progress when the command's stderr is a terminal, the progress
// line for it to show).
func holderArgs(cmd *cobra.Command, o *rentOptions) []string {
	var args []string
	if cmdutil.IsTerminal(o.IO.ErrOut) && !o.JSON {
		args = append(args, "--holder-progress")
	}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "detach", "holder", "holder-progress", "jq", "template":
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				args = append(args, "--"+f.Name+"="+v)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	return append(args, "--holder")
}

// runDetached starts the holder and waits until it says its hosts are
// ready (then prints them and returns nil) or exits (then returns its exit
// code, its failure already passed on). Ctrl-C stops the holder, which
// releases whatever it rented.
func runDetached(ctx context.Context, o *rentOptions, args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find zennet's own binary to start the holder: %w", err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	var pipes [3][2]*os.File // ready, stdout, stderr: read end, write end
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		defer r.Close()
		defer w.Close()
		pipes[i] = [2]*os.File{r, w}
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, pipes[1][1], pipes[2][1]
	cmd.ExtraFiles = []*os.File{pipes[0][1]}
	// A session of its own: no terminal, so no SIGHUP when it closes, and
	// no Ctrl-C meant for the shell's foreground.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the holder: %w", err)
	}
	for i := range pipes {
		pipes[i][1].Close()
	}
	var copies sync.WaitGroup
	for _, c := range []struct {
		w io.Writer
		r *os.File
	}{{o.IO.Out, pipes[1][0]}, {o.IO.ErrOut, pipes[2][0]}} {
		copies.Go(func() { io.Copy(c.w, c.r) })
	}
	// drained waits for the holder's output passed on, for a while: a
	// process it started may hold its pipes open.
	drained := func() {
		done := make(chan struct{})
		go func() { copies.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	readyc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(pipes[0][0], 16<<20))
		readyc <- b
	}()
	exited := make(chan error, 1)
	timer := time.NewTimer(o.Timeout + holderStartGrace)
	defer timer.Stop()
	var b []byte
	select {
	case b = <-readyc:
	case <-ctx.Done():
		err := stopHolder(cmd, exited)
		drained()
		if err != nil {
			return errors.Join(cmdutil.ErrInterrupted, err)
		}
		return cmdutil.ReportedError{Code: cmdutil.ExitInterrupted} // the holder said it
	case <-timer.C:
		err := stopHolder(cmd, exited)
		drained()
		return errors.Join(fmt.Errorf("the holder (pid %d) did not say its hosts were ready within --timeout %s and %s more: stopped it",
			cmd.Process.Pid, o.Timeout, holderStartGrace), err)
	}
	var ready holderReady
	if len(b) == 0 || json.Unmarshal(b, &ready) != nil {
		// It exited (or closed the pipe) before its hosts were ready.
		werr := cmd.Wait()
		drained()
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return fmt.Errorf("the holder (pid %d) was killed by %s before its hosts were ready", cmd.Process.Pid, ws.Signal())
			}
			return cmdutil.ReportedError{Code: ee.ExitCode()}
		}
		if werr != nil {
			return fmt.Errorf("the holder: %w", werr)
		}
		return fmt.Errorf("the holder (pid %d) exited before its hosts were ready, saying nothing", cmd.Process.Pid)
	}
	drained()
	cmd.Process.Release()
	return printHosts(o, ready.Hosts, &ready)
}

// stopHolder asks the holder to stop (SIGTERM: it releases what it
// rented), waits for it a while, and kills it if it has not exited.
func stopHolder(cmd *exec.Cmd, exited chan error) error {
	cmd.Process.Signal(syscall.SIGTERM)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
		return nil
	case <-time.After(holderStopWait):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("the holder (pid %d) did not stop within %s: killed it (its providers end its leases)", cmd.Process.Pid, holderStopWait)
	}
}

// holder is the running holder's side: what it said before its hosts were
// ready (for its log), and its ready pipe.
type holder struct {
	readyPipe *os.File

	mu      sync.Mutex
	early   bytes.Buffer // what it wrote on stderr before the log took over
	logging bool
	// stderr is the pipe to the command's stderr, which shows the
	// progress line when showProgress (the command's is a terminal),
	// until the log takes over.
	stderr       io.Writer
	showProgress bool
}

// progress passes the live progress line on to the command's terminal.
func (h *holder) progress(text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.showProgress && !h.logging {
		fmt.Fprintf(h.stderr, "\r\033[K%s", text)
	}
}

// earlyMax bounds what a holder keeps of its stderr for its log until its
// hosts are ready.
const earlyMax = 1 << 20

// newHolder makes this process the holder that a 'zennet -n -d' started:
// it checks the ready pipe, ignores SIGHUP, and turns a broken pipe into an
// error (the command that started it may be gone: it then releases), and
// keeps what it writes on stderr for its log.
func newHolder(o *rentOptions) (*holder, error) {
	var st unix.Stat_t
	if err := unix.Fstat(readyFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, cmdutil.Usagef("--holder is zennet's own: 'zennet -n N -d' starts it")
	}
	syscall.CloseOnExec(readyFD) // no process it starts holds the command waiting
	signal.Ignore(syscall.SIGHUP)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	h := &holder{readyPipe: os.NewFile(readyFD, "ready"), stderr: o.IO.ErrOut, showProgress: o.HolderProgress && !o.JSON}
	o.IO.ErrOut = &holderStderr{h: h, w: o.IO.ErrOut}
	return h, nil
}

// holderStderr is the holder's stderr until its hosts are ready: written
// through (to the command that started it) and kept for the log.
type holderStderr struct {
	h *holder
	w io.Writer
}

func (s *holderStderr) Write(p []byte) (int, error) {
	s.h.mu.Lock()
	if !s.h.logging && s.h.early.Len()+len(p) <= earlyMax {
		s.h.early.Write(p)
	}
	s.h.mu.Unlock()
	n, err := s.w.Write(p)
	if err != nil {
		return len(p), nil // the command is gone: the log has it
	}
	return n, nil
}

// ready is called with the rental once its hosts are ready: the session
// is recorded as detached, stdout and stderr go to the log from now on,
// and the command that started the holder is told.
func (h *holder) ready(o *rentOptions, r *renter.Rental) error {
	path, err := r.Detach()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the holder's log: %w", err)
	}
	defer logf.Close()
	h.mu.Lock()
	if h.showProgress {
		fmt.Fprint(h.stderr, "\r\033[K") // the progress line, cleared before the hosts are printed
	}
	fmt.Fprintf(logf, "zennet: %s: the log of the holder of session %s (pid %d), from its start\n",
		time.Now().UTC().Format(time.RFC3339), r.SessionID(), os.Getpid())
	logf.Write(h.early.Bytes())
	h.early = bytes.Buffer{}
	h.logging = true
	h.mu.Unlock()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(logf.Fd()), fd, 0); err != nil {
			return fmt.Errorf("point the holder's output at its log: %w", err)
		}
	}
	b, err := json.Marshal(holderReady{Hosts: hostsDoc(r), Pid: os.Getpid(), Log: path})
	if err != nil {
		return err
	}
	_, err = h.readyPipe.Write(append(b, '\n'))
	if cerr := h.readyPipe.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("the command that started this holder is gone (%w): nobody was told of the hosts, so they are released", err)
	}
	fmt.Fprintf(o.IO.ErrOut, "zennet: holding %s in the background; 'zennet release %s' ends the leases\n",
		cmdutil.Plural(len(r.Hosts()), "host"), r.SessionID())
	if o.JSON {
		// The command printed the hosts; the log has the rest of the
		// stream, the events so far first.
		o.startStream("", nil)
	}
	return nil
}
