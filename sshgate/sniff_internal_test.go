package sshgate

import (
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// emfileOnce is a real listener whose first Accept fails as it does when
// the process is out of descriptors: a fault injected into a real
// listener.
type emfileOnce struct {
	net.Listener
	failed atomic.Bool
}

func (l *emfileOnce) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Running out of descriptors for a moment does not stop the gateway
// listening: the next connection is still served.
func TestSniffListenerOutlivesEMFILE(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newSniffListener(&emfileOnce{Listener: inner}, newStartups(time.Minute), func(c net.Conn) { c.Close() }, func(c net.Conn) { c.Close() })
	defer l.Close()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("SSH-2.0-x\r\n"))
	got := make(chan net.Conn, 1)
	go func() {
		if sc, err := l.Accept(); err == nil {
			got <- sc
		}
	}()
	select {
	case sc := <-got:
		sc.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("after one EMFILE the listener served no more connections")
	}
}
