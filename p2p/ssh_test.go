package p2p

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestSSHStreams: a renter's dialer keeps 200 connections open at once to
// a node's SSH listener (a renter with many ssh sessions to one provider;
// libp2p's default would refuse past 64 streams of one protocol from one
// peer), each carrying its own bytes both ways, and the path is direct.
func TestSSHStreams(t *testing.T) {
	n := start(t, Config{})
	l, err := n.ListenSSH()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	d, err := NewDialer()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr := n.Addrs()[0].String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const conns = 200
	open := make([]net.Conn, conns)
	for i := range open {
		if open[i], err = d.Dial(ctx, addr); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, c := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			want := bytes.Repeat([]byte{byte(i)}, 64<<10)
			go c.Write(want)
			got := make([]byte, len(want))
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a connection's echo: %v", err)
	}
	if p, ok := d.Path(addr); !ok || p.Relay != "" || p.Punched {
		t.Fatalf("path %v (%v), want direct", p, ok)
	}
}
