package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Exit says why a sandbox stopped on its own.
type Exit struct {
	// OOM is set when the host killed the sandbox for exceeding its memory
	// limit: gVisor has no OOM killer of its own, so an overrun takes the
	// whole sandbox (and only it).
	OOM bool
	// Console is the end of what the sandbox wrote to its console log
	// (runsc's own errors, a Sentry panic): for the provider's log. The
	// guest lets go of the console at once (DetachConsole).
	Console string
}

// Reason is one sentence for logs and the renter.
func (e Exit) Reason() string {
	if e.OOM {
		return "memory limit exceeded: the sandbox used more than its memory plus overhead and was killed"
	}
	return "the sandbox stopped"
}

// Pid returns the host pid of sandbox id's sandbox process.
func (r *Runtime) Pid(id string) (int, error) {
	b, err := os.ReadFile(filepath.Join(r.bundleDir(id), "pid"))
	if err != nil {
		return 0, fmt.Errorf("sandbox %s pid: %w", id, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Wait blocks until sandbox id's sandbox process exits, or ctx ends (then
// it returns ctx's error). It holds a pidfd, so a reused pid cannot fool it.
func (r *Runtime) Wait(ctx context.Context, id string) (Exit, error) {
	pid, err := r.Pid(id)
	if err != nil {
		return Exit{}, err
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return r.exit(id), nil
	}
	if err != nil {
		return Exit{}, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 250)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return Exit{}, fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			return r.exit(id), nil
		}
		if ctx.Err() != nil {
			return Exit{}, ctx.Err()
		}
	}
}

func (r *Runtime) exit(id string) Exit {
	e := Exit{Console: strings.TrimSpace(r.Logs(id, 1024))}
	f, err := os.Open(filepath.Join(r.CgroupDir("memory", id), "memory.oom_control"))
	if err != nil {
		return e
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == "oom_kill" && v != "0" {
			e.OOM = true
		}
	}
	return e
}
