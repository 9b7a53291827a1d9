package sshgate_test

import (
	"net"
	"os"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testprovider"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
)

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A flood of connections that never authenticate (each says it speaks SSH,
// then nothing) costs the provider a bounded number of descriptors per
// source, each for the login grace at most, and its renters nothing.
func TestHandshakeFlood(t *testing.T) {
	const grace = 2 * time.Second
	p := testprovider.Start(t, lease.Capacity{Leases: 2, Memory: 1 << 30, CPUs: 2, Disk: 8 << 30}, nil, sshgate.WithLoginGrace(grace))
	before := openFDs(t)

	// The attacker, from another loopback address.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	var conns []net.Conn
	for range 100 {
		c, err := d.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("SSH-2.0-flood\r\n"))
		conns = append(conns, c)
	}
	// closed counts the connections the provider has closed.
	closed := func(wait time.Duration) int {
		n := 0
		buf := make([]byte, 4096)
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(wait))
			for {
				if _, err := c.Read(buf); err != nil {
					if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
						n++
					}
					break
				}
			}
		}
		return n
	}
	time.Sleep(300 * time.Millisecond)
	// This process is the provider and the attacker: the attacker's own
	// descriptors are not the provider's.
	held := openFDs(t) - before - len(conns)
	refused := closed(50 * time.Millisecond)
	t.Logf("100 half-open connections from one source: %d closed at once; the provider holds %d descriptors more", refused, held)
	if refused < 80 {
		t.Errorf("only %d of 100 half-open connections from one source were closed at once", refused)
	}
	if held > 40 {
		t.Errorf("the provider holds %d descriptors more during the flood", held)
	}

	// A renter is served meanwhile.
	rentOne(t, p.Addr, newSigner(t))

	// After the grace, every one of them is closed.
	time.Sleep(grace + time.Second)
	if n := closed(100 * time.Millisecond); n != len(conns) {
		t.Errorf("%d of %d half-open connections still open after the login grace", len(conns)-n, len(conns))
	}
}

// An authenticated connection that holds no channel is closed once it has
// held none for the unused timeout (OpenSSH's UnusedConnectionTimeout); one
// that holds a channel is kept however long, and its clock starts again
// when the channel closes.
func TestUnusedConnection(t *testing.T) {
	const unused = 500 * time.Millisecond
	p := testprovider.Start(t, lease.Capacity{Leases: 1, Memory: 1 << 30, CPUs: 1, Disk: 4 << 30}, nil, sshgate.WithUnusedTimeout(unused))
	dial := func() *gossh.Client {
		c, err := gossh.Dial("tcp", p.Addr, &gossh.ClientConfig{User: "zennet", Auth: []gossh.AuthMethod{gossh.PublicKeys(newSigner(t))},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedWithin := func(c *gossh.Client, d time.Duration) bool {
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
			return true
		case <-time.After(d):
			return false
		}
	}
	idle := dial()
	start := time.Now()
	if !closedWithin(idle, 10*unused) {
		t.Fatalf("a connection with no channel was still open after %s", 10*unused)
	}
	if took := time.Since(start); took < unused/2 {
		t.Fatalf("closed after %s, before the timeout of %s", took, unused)
	}
	busy := dial()
	ch, reqs, err := busy.OpenChannel(proto.ChannelNegotiate, nil)
	if err != nil {
		t.Fatal(err)
	}
	go gossh.DiscardRequests(reqs)
	if closedWithin(busy, 4*unused) {
		t.Fatal("a connection holding its negotiation channel was closed as unused")
	}
	ch.Close()
	if !closedWithin(busy, 10*unused) {
		t.Fatalf("still open %s after its last channel closed", 10*unused)
	}
}
