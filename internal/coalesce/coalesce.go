// Package coalesce wraps a stream connection so that it makes fewer
// system calls under load: reads come from a large buffer, and writes are
// gathered while the previous one is on its way and go out together. An
// SSH transport (golang.org/x/crypto/ssh) writes and flushes every packet
// of at most 32 KiB on its own and reads each in two calls; through this,
// a busy tunnel's packets share calls. An idle connection sends each write
// at once: nothing waits for more to gather.
package coalesce

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"
)

const (
	// readBuffer is read from the connection at most at once.
	readBuffer = 256 << 10
	// maxPending is the most a writer may have gathered before Write
	// waits for it to go out.
	maxPending = 1 << 20
	// closeFlush bounds how long Close waits for gathered bytes to go.
	closeFlush = 2 * time.Second
)

// Conn is a net.Conn whose reads are buffered and whose writes are
// gathered (see the package). Write returns once its bytes are gathered; an
// error of the write that carried them is returned by a later Write, and
// Close sends what is gathered before it closes.
type Conn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte
	spare   []byte
	err     error
	closing bool
	done    chan struct{} // closed when the writer has stopped
}

// New wraps c.
func New(c net.Conn) *Conn {
	w := &Conn{Conn: c, r: bufio.NewReaderSize(c, readBuffer), done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	go w.writer()
	return w
}

// Read reads from the buffer, filling it with one call when it is empty.
func (w *Conn) Read(p []byte) (int, error) { return w.r.Read(p) }

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("coalesce: connection closed")

// Write gathers p to be written.
func (w *Conn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.pending) >= maxPending && w.err == nil && !w.closing {
		w.cond.Wait()
	}
	switch {
	case w.err != nil:
		return 0, w.err
	case w.closing:
		return 0, ErrClosed
	}
	w.pending = append(w.pending, p...)
	w.cond.Broadcast()
	return len(p), nil
}

// writer writes whatever has gathered, in one call each time, until the
// connection fails or is closed with nothing left to send.
func (w *Conn) writer() {
	defer close(w.done)
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.pending) == 0 && !w.closing {
			w.cond.Wait()
		}
		if len(w.pending) == 0 {
			return
		}
		out := w.pending
		w.pending = w.spare[:0]
		w.mu.Unlock()
		_, err := w.Conn.Write(out)
		w.mu.Lock()
		w.spare = out[:0]
		w.cond.Broadcast()
		if err != nil {
			w.err = err
			w.pending = nil
			return
		}
	}
}

// Close sends what is gathered (for at most a few seconds) and closes the
// connection.
func (w *Conn) Close() error {
	w.mu.Lock()
	w.closing = true
	w.cond.Broadcast()
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-time.After(closeFlush):
	}
	return w.Conn.Close()
}
