package sshgate

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/proto"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// TestClusterStream: two providers' tunnel gets a cluster stream beside
// its channel, frames go both ways on it; a stranger's ticket, a request
// from a provider with no channel of the session, and a record that does
// not open are refused, and the session's frames go over the channel
// again.
func TestClusterStream(t *testing.T) {
	p := newTunnelPair(t)
	waitFor(t, "a stream on both sides", func() bool { a, b := p.streams(); return a == 1 && b == 1 })

	send := func(n int) {
		t.Helper()
		a0, b0 := p.portA.frames.Load(), p.portB.frames.Load()
		for range n {
			p.fa.FromHost("la", ipFrame(p.addrA, p.addrB, cluster.MTU))
			p.fb.FromHost("lb", ipFrame(p.addrB, p.addrA, 1000))
		}
		waitFor(t, "frames delivered both ways", func() bool {
			return p.portB.frames.Load() == b0+int64(n) && p.portA.frames.Load() == a0+int64(n)
		})
	}
	send(50)

	// A ticket nobody was given: the connection is closed, nothing sent.
	c, err := net.Dial("tcp", p.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ticket := make([]byte, proto.TicketSize)
	rand.Read(ticket)
	c.Write(append([]byte(proto.ClusterStreamMagic), ticket...))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a stranger's ticket: read %d, %v; want the connection closed", n, err)
	}
	c.Close()

	// Only a provider with a channel of the session open may ask.
	stranger := testenv.Signer(t)
	share := make([]byte, proto.ClusterKeyShare)
	req := gossh.Marshal(clusterStreamRequest{Renter: p.key.Renter, Session: p.key.Session, Share: share})
	if ok, why := p.tb.streamRequest(stranger.PublicKey(), req); ok {
		t.Fatal("a provider outside the session got a stream ticket")
	} else if len(why) == 0 {
		t.Fatal("refused without a reason")
	}
	if ok, _ := p.tb.streamRequest(stranger.PublicKey(), []byte("junk")); ok {
		t.Fatal("a malformed request got a ticket")
	}

	// A record that does not open (bytes changed on the way) ends the
	// stream; the frames go over the channel.
	p.ta.mu.Lock()
	var conn net.Conn
	for tn := range p.ta.tunnels[tunnelKey{p.fpB, p.key}] {
		if tn.stream != nil {
			conn = tn.stream
		}
	}
	p.ta.mu.Unlock()
	forged := make([]byte, 4+100)
	forged[3] = 100
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(forged); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream gone on both sides", func() bool { a, b := p.streams(); return a == 0 && b == 0 })
	if p.ta.path(p.key, p.fpB) != proto.PathDirect {
		t.Fatal("the channel went with the stream")
	}
	send(50)
}

// FuzzStreamRecord: whatever a stream's peer sends, reading it neither
// panics nor yields a frame that was not sealed with the stream's keys,
// and a record's length is checked before it is read.
func FuzzStreamRecord(f *testing.F) {
	keys := func(dialler bool) (send, recv *sealer) {
		send, recv, err := streamKeys(dialler, make([]byte, 64), make([]byte, proto.TicketSize))
		if err != nil {
			f.Fatal(err)
		}
		return send, recv
	}
	send, _ := keys(true)
	f.Add(send.seal(nil, []byte("a frame of the session")))
	f.Add([]byte{0, 0, 0, 16})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, recv := keys(false)
		frame, err := recv.readRecord(bytes.NewReader(b), make([]byte, maxFrame+16))
		if err != nil {
			return
		}
		sealer, _ := keys(true)
		if want := sealer.seal(nil, frame); !bytes.HasPrefix(b, want) {
			t.Fatalf("opened %d bytes that are not the keys' record of them", len(frame))
		}
	})
}
