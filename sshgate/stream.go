package sshgate

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
)

// Lease streams (proto.RequestLeaseStream): a renter's SSH connection to
// a host on a TCP connection of its own, joined to the host's agent with
// no SSH layer of the gateway's around it. The bytes are the renter's
// end-to-end SSH with the host (the host's pinned key, the renter's own
// key), so a second encryption added nothing but cost: each byte was
// encrypted and decrypted twice more, and passed through the channel's
// window and two more goroutines.
//
// The ticket is what authorizes a stream: the renter asks for it on its
// authenticated connection, the gateway connects to the lease's agent
// then (so a paused, ended or foreign lease fails there, with the
// channel's answers) and keeps that connection under the ticket for
// ticketTTL. A ticket is used once. It crosses the network in the clear,
// but whoever copies it gets only what connecting to the host's SSH server
// gives: the server still asks for the renter's key.

// sniffTimeout bounds how long a new connection may take to say what it is
// (its first bytes: SSH's version line or StreamMagic).
const sniffTimeout = 10 * time.Second

// pendingStream is an agent connection waiting for its ticket's stream.
type pendingStream struct {
	id    string
	agent net.Conn
}

// streams holds the gateway's lease stream tickets and its live streams
// (lease and cluster).
type streams struct {
	tickets *tickets[pendingStream]
	mu      sync.Mutex
	live    map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

func newStreams() *streams {
	return &streams{
		tickets: newTickets(func(p pendingStream) { p.agent.Close() }),
		live:    map[net.Conn]struct{}{},
	}
}

// track counts c as live until untrack; false if the gateway is closing.
func (s *streams) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.live[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *streams) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	s.wg.Done()
}

// close drops every ticket and live stream and waits for their handlers.
func (s *streams) close() {
	s.tickets.close()
	s.mu.Lock()
	s.closed = true
	for c := range s.live {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// leaseStreamRequest answers proto.RequestLeaseStream: a ticket for a
// stream to one of the asking renter's leases, or false (with the reason)
// when the lease cannot have one; the renter then opens a lease channel,
// which gives the full answer.
func (g *Gateway) leaseStreamRequest(ctx ssh.Context, _ *ssh.Server, req *gossh.Request) (bool, []byte) {
	sc, _ := ctx.Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	owner := VerifiedKey(sc)
	var extra struct{ ID string }
	if owner == nil || gossh.Unmarshal(req.Payload, &extra) != nil || !proto.ValidLeaseID(extra.ID) {
		return false, []byte("malformed lease stream request")
	}
	agent, err := g.leases.Dial(ctx, extra.ID, owner)
	switch {
	case errors.Is(err, sandbox.ErrNoNetwork), errors.Is(err, lease.ErrPaused), errors.Is(err, proto.ErrNotFound), errors.Is(err, lease.ErrTooManyConns):
		return false, []byte("no stream for this lease")
	case err != nil:
		g.log.Warn("lease stream: the resident agent did not answer", "lease", extra.ID, "err", err)
		return false, []byte("no stream for this lease")
	}
	t, err := g.streams.tickets.issue(pendingStream{id: extra.ID, agent: agent})
	if err != nil {
		agent.Close()
		return false, []byte(err.Error())
	}
	g.track(sc)
	return true, t[:]
}

// serveStream serves a connection that began with proto.StreamMagic: it
// reads the ticket and joins the connection to the ticket's agent
// connection until either end closes. A bad ticket gets the connection
// closed, nothing more.
func (g *Gateway) serveStream(c net.Conn) {
	if !g.streams.track(c) {
		c.Close()
		return
	}
	defer g.streams.untrack(c)
	defer c.Close()
	var t ticket
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	if _, err := io.ReadFull(c, t[:]); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	if g, ok := c.(*graceConn); ok {
		g.release() // a ticket is its proof
	}
	p, ok := g.streams.tickets.redeem(t)
	if !ok {
		g.log.Info("lease stream refused: unknown or used ticket", "remote", c.RemoteAddr().String())
		return
	}
	start := time.Now()
	splice(c, p.agent)
	g.log.Debug("lease stream closed", "lease", p.id, "duration", time.Since(start).Round(time.Millisecond))
}

// splice copies both ways between a renter's side and the agent's until
// both directions end, half-closing each destination as its source ends,
// then closes both: the lease streams, the lease channels and the
// renter's forwarder all join their two ends so.
func splice(renter, agent io.ReadWriteCloser) {
	defer renter.Close()
	defer agent.Close()
	done := make(chan struct{})
	go func() {
		io.CopyBuffer(agent, renter, make([]byte, stdioBuffer))
		closeWrite(agent) // the agent sees the end of its input; its answer still comes
		close(done)
	}()
	io.CopyBuffer(renter, agent, make([]byte, stdioBuffer))
	closeWrite(renter)
	<-done
}

// closeWrite half-closes c when it can, else closes it.
func closeWrite(c io.Closer) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// sniffListener hands the SSH server the connections that speak SSH and
// serves lease streams itself. Telling them apart takes the first bytes a
// client sends, which every SSH client sends unasked (its version line).
type sniffListener struct {
	net.Listener
	startups *startups
	stream   func(net.Conn) // lease streams
	cluster  func(net.Conn) // cluster streams
	conns    chan net.Conn
	done     chan struct{}
	once     sync.Once
	err      error // Accept's, once conns is closed
}

func newSniffListener(l net.Listener, st *startups, stream, cluster func(net.Conn)) *sniffListener {
	s := &sniffListener{Listener: l, startups: st, stream: stream, cluster: cluster, conns: make(chan net.Conn), done: make(chan struct{})}
	go s.accept()
	return s
}

func (s *sniffListener) accept() {
	var tempDelay time.Duration
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			// Only a closed listener stops it: out of descriptors
			// (EMFILE), say, it waits and tries again, as net/http does.
			if !errors.Is(err, net.ErrClosed) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(tempDelay):
					continue
				case <-s.done:
				}
			}
			s.err = err
			close(s.conns)
			return
		}
		tempDelay = 0
		if g := s.startups.admit(c); g != nil {
			go s.sniff(g)
		}
	}
}

func (s *sniffListener) sniff(c *graceConn) {
	head := make([]byte, len(proto.StreamMagic))
	c.SetReadDeadline(time.Now().Add(min(sniffTimeout, time.Until(c.deadline))))
	n, err := io.ReadFull(c, head)
	// The rest of the handshake (the ticket, or SSH's) within the grace.
	c.SetDeadline(c.deadline)
	if err == nil && bytes.Equal(head, []byte(proto.StreamMagic)) {
		s.stream(c)
		return
	}
	if err == nil && bytes.Equal(head, []byte(proto.ClusterStreamMagic)) {
		s.cluster(c)
		return
	}
	if n == 0 {
		c.Close()
		return
	}
	// Anything else goes to the SSH server, which answers it as SSH
	// (a short or wrong version line gets its error).
	select {
	case s.conns <- &prefixConn{Conn: c, prefix: head[:n]}:
	case <-s.done:
		c.Close()
	}
}

func (s *sniffListener) Accept() (net.Conn, error) {
	c, ok := <-s.conns
	if !ok {
		if s.err != nil {
			return nil, s.err
		}
		return nil, net.ErrClosed
	}
	return c, nil
}

func (s *sniffListener) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.Listener.Close()
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the underlying connection when it can.
func (c *prefixConn) CloseWrite() error { return closeWrite(c.Conn) }
