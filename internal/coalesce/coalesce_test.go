package coalesce

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	a, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestRoundTrip: every byte written, in many writes of every size, is read
// back in order through both directions' wrappers, and Close sends what
// was still gathered.
func TestRoundTrip(t *testing.T) {
	a, b := tcpPair(t)
	wa, wb := New(a), New(b)
	want := make([]byte, 8<<20)
	rand.Read(want)
	var got bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(&got, wb) })
	for off, n := 0, 1; off < len(want); off, n = off+n, n*7%65521+1 {
		n = min(n, len(want)-off)
		if _, err := wa.Write(want[off : off+n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := wa.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes back, not the %d written", got.Len(), len(want))
	}
}

// slowConn counts its writes and takes a millisecond over each, as a
// system call does on a busy machine.
type slowConn struct {
	net.Conn
	writes atomic.Int64
}

func (s *slowConn) Write(p []byte) (int, error) {
	s.writes.Add(1)
	time.Sleep(time.Millisecond)
	return s.Conn.Write(p)
}

// TestGathers: writes that come while one is on its way go out together.
func TestGathers(t *testing.T) {
	a, b := tcpPair(t)
	slow := &slowConn{Conn: a}
	w := New(slow)
	go io.Copy(io.Discard, b)
	const writes = 200
	for range writes {
		if _, err := w.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if n := slow.writes.Load(); n > writes/10 {
		t.Fatalf("%d writes went out in %d calls; want at most %d", writes, n, writes/10)
	}
}

// TestWriteError: once the connection fails, Write says so.
func TestWriteError(t *testing.T) {
	a, b := tcpPair(t)
	w := New(a)
	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := w.Write(make([]byte, 64<<10)); err != nil {
			w.Close()
			if _, err := w.Write([]byte("x")); err == nil {
				t.Fatal("a write after Close succeeded")
			}
			return
		}
	}
	t.Fatal("writes to a connection whose peer closed never failed")
}
