package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// The resident agent is its sandbox's first process (PID 1, 'serve --init'),
// where a shell used to start it (sh, setsid, then the agent, and a sleep
// the shell waited on). Three fewer programs to load under gVisor took a
// fifth off the CPU a host costs until it answers ssh, more under load
// (docs/architecture.md, the start-up figures). A
// first process has three duties the shell had:
//
//   - let go of the stdio runsc gave it, the sandbox's console log on the
//     host: kept, any guest process could reopen it through /proc/1/fd/1
//     and grow a host file without limit (sandbox.DetachConsole);
//   - reap the orphans the guest's processes leave, which are reparented to
//     it: unreaped, their zombies fill the host's process table;
//   - outlive the signals a guest sends it: gVisor stops the sandbox when
//     its first process exits. Every signal that can be caught is (SIGKILL
//     cannot: a renter that sends it stops its own host).

// children are the processes the agent started itself (sessions), whose
// exit statuses are os/exec's to take; every other child is an orphan the
// reaper takes. nil unless becomeInit ran.
var children *reaper

type reaper struct {
	// starting is held shared while children start, at once, and
	// exclusively while the reaper tells an orphan from a child just
	// started, which would not be in own yet.
	starting sync.RWMutex
	mu       sync.Mutex // guards own
	own      map[int]bool
	poke     chan struct{}
}

// becomeInit makes this process fit to be its sandbox's first process: stdio on
// /dev/null, orphans reaped, every signal it can catch ignored. It returns
// once the reaper runs.
func becomeInit() error {
	if err := detachStdio(); err != nil {
		return err
	}
	startReaper()
	return nil
}

// detachStdio points stdin, stdout and stderr at /dev/null.
func detachStdio() error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	for fd := range 3 {
		if err := syscall.Dup3(int(null.Fd()), fd, 0); err != nil {
			return fmt.Errorf("init: stdio to %s: %w", os.DevNull, err)
		}
	}
	null.Close()
	return nil
}

// startReaper makes this process reap the orphans it is given (as the
// first process, or a subreaper) and catch every signal it can.
func startReaper() {
	r := &reaper{own: map[int]bool{}, poke: make(chan struct{}, 1)}
	sigs := make(chan os.Signal, 64)
	// Every signal is caught, so none stops the first process; a caught
	// signal is back to its default in the programs the agent starts.
	signal.Notify(sigs)
	// But for the runtime's own preemption signal, which is ignored by
	// default and would wake the reaper for nothing many times a second.
	signal.Reset(syscall.SIGURG)
	children = r
	go r.run(sigs)
}

func (r *reaper) run(sigs <-chan os.Signal) {
	for {
		select {
		case s := <-sigs:
			if s != syscall.SIGCHLD {
				continue
			}
		case <-r.poke:
		}
		r.reap()
	}
}

// reap takes every exited child that is not the agent's own. Those are
// os/exec's: while the first one found is waiting for os/exec's Wait, the
// rest wait for the poke its Wait gives (waitChild).
func (r *reaper) reap() {
	for {
		pid, err := exitedChild()
		if err != nil || pid == 0 {
			return
		}
		r.starting.Lock()
		r.mu.Lock()
		own := r.own[pid]
		r.mu.Unlock()
		if !own {
			var ws syscall.WaitStatus
			for {
				_, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
				if !errors.Is(err, syscall.EINTR) {
					break
				}
			}
		}
		r.starting.Unlock()
		if own {
			return
		}
	}
}

// exitedChild returns the pid of a child that has exited, leaving it to be
// reaped (waitid with WNOWAIT), or 0 when none has.
func exitedChild() (int, error) {
	// siginfo_t as the kernel fills it for a child: si_pid follows
	// si_signo, si_errno, si_code and their padding to 8 bytes.
	var info struct {
		signo, errno, code, _ int32
		pid                   int32
		_                     [108]byte
	}
	const pAll = 0
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pAll, 0, uintptr(unsafe.Pointer(&info)),
			syscall.WEXITED|syscall.WNOHANG|syscall.WNOWAIT, 0, 0)
		switch e {
		case 0:
			return int(info.pid), nil
		case syscall.EINTR:
			continue
		default:
			return 0, e
		}
	}
}

// startChild starts cmd with start (cmd.Start, or a pty's), as one of the
// agent's own children when it is the first process: the reaper does not
// take its exit status from os/exec. Sessions start at once; the reaper
// waits for those starting.
func startChild(cmd *exec.Cmd, start func() error) error {
	r := children
	if r == nil {
		return start()
	}
	r.starting.RLock()
	defer r.starting.RUnlock()
	if err := start(); err != nil {
		return err
	}
	r.mu.Lock()
	r.own[cmd.Process.Pid] = true
	r.mu.Unlock()
	return nil
}

// waitChild waits for cmd, started by startChild, and lets the reaper take
// the orphans that exited meanwhile.
func waitChild(cmd *exec.Cmd) error {
	err := cmd.Wait()
	if r := children; r != nil {
		r.mu.Lock()
		delete(r.own, cmd.Process.Pid)
		r.mu.Unlock()
		select {
		case r.poke <- struct{}{}:
		default:
		}
	}
	return err
}

// ServeInit is the resident agent as the sandbox's first process: becomeInit,
// then ListenAndServe on addr for good. Should the listener fail, it
// listens again, since the sandbox ends with its first process.
func ServeInit(cfg Config, addr string) error {
	if err := becomeInit(); err != nil {
		return err
	}
	for {
		err := ListenAndServe(cfg, addr)
		if cfg.Log != nil {
			cfg.Log.Error("the ssh listener failed; listening again", "addr", addr, "err", err)
		}
		time.Sleep(time.Second)
	}
}
