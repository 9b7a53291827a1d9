package agent

import (
	"errors"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A session's stdin and stdout are pipes of the agent's own, sized and
// read for bulk data. Inside gVisor every wake-up of a blocked reader is a
// round trip through the Sentry that costs far more than the bytes it
// moves: 'head -c 200000000 /dev/zero' writes 8 KiB at a time, and with
// os/exec's pipes (64 KiB, read 32 KiB at a time as each write lands) its
// output over ssh came at 21 MB/s. So the pipes hold pipeSize, the agent
// writes stdin in large pieces, and it reads stdout in bulk: after a read
// that found a stream (at least lingerAfter bytes, less than the buffer)
// it waits linger before the next read, while the command writes on
// without waking anyone; output that trickles (a prompt, a log line) goes
// out at once.
const (
	pipeSize    = 1 << 20
	copyBuffer  = 256 << 10
	lingerAfter = 8 << 10
	linger      = time.Millisecond
	// pollEvery is how often a stdout reader that waits for data checks
	// whether it was told to stop.
	pollEvery = 100 * time.Millisecond
)

// stdinPipe returns a pipe for a command's stdin: r for the command, w for
// the agent.
func stdinPipe() (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	if rc, err := w.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
	return r, w, nil
}

// outPipe is a command's stdout: w for the command, read by copyTo.
type outPipe struct {
	fd int // the read end, non-blocking, outside Go's poller
	W  *os.File
}

func newOutPipe() (*outPipe, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, pipeSize)
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, err
	}
	return &outPipe{fd: p[0], W: os.NewFile(uintptr(p[1]), "stdout")}, nil
}

// copyTo copies what the command writes to dst until the pipe's end of
// file, a failed write, or stop is closed (then what is in the pipe is
// left), and closes the read end. The read end is outside Go's poller so
// that nothing wakes while the agent lingers: a write to a pipe nobody
// waits on costs the writer a plain system call.
func (p *outPipe) copyTo(dst io.Writer, stop <-chan struct{}) error {
	defer unix.Close(p.fd)
	buf := make([]byte, copyBuffer)
	for {
		n, err := unix.Read(p.fd, buf)
		switch {
		case n > 0:
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			if n >= lingerAfter && n < len(buf) {
				select {
				case <-time.After(linger):
				case <-stop:
					return nil
				}
			}
		case err == nil: // end of file
			return nil
		case errors.Is(err, unix.EAGAIN):
			for {
				fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
				ready, perr := unix.Poll(fds, int(pollEvery/time.Millisecond))
				if perr != nil && !errors.Is(perr, unix.EINTR) {
					return perr
				}
				if ready > 0 {
					break
				}
				select {
				case <-stop:
					return nil
				default:
				}
			}
		case errors.Is(err, unix.EINTR):
		default:
			return err
		}
	}
}
