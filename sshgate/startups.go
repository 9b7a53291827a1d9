package sshgate

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Connections that have not authenticated yet are bounded, as OpenSSH's
// LoginGraceTime and MaxStartups bound them: each gets loginGrace to
// complete its handshake (or, for a lease stream, to present its ticket),
// and one source address may hold at most maxStartups such connections at
// once; more are closed as they come. A flood of half-open connections
// thus costs the provider a bounded number of descriptors and goroutines
// per source, each for a bounded time, and never its other renters.
const (
	defaultLoginGrace = 60 * time.Second
	maxStartups       = 16
)

// startups counts the unauthenticated connections of a gateway.
type startups struct {
	grace time.Duration

	mu       sync.Mutex
	bySource map[string]int
	byRemote map[string]*graceConn
}

func newStartups(grace time.Duration) *startups {
	return &startups{grace: grace, bySource: map[string]int{}, byRemote: map[string]*graceConn{}}
}

// admit returns c under its login grace, or nil (c closed) when its source
// holds maxStartups unauthenticated connections already.
func (s *startups) admit(c net.Conn) *graceConn {
	source := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(source); err == nil {
		source = host
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bySource[source] >= maxStartups {
		c.Close()
		return nil
	}
	s.bySource[source]++
	g := &graceConn{Conn: c, s: s, source: source, remote: c.RemoteAddr().String(), deadline: time.Now().Add(s.grace)}
	s.byRemote[g.remote] = g
	c.SetDeadline(g.deadline)
	return g
}

// authenticated lifts the grace of the connection from remote: it has
// proved its key.
func (s *startups) authenticated(remote net.Addr) {
	s.mu.Lock()
	g := s.byRemote[remote.String()]
	s.mu.Unlock()
	if g != nil {
		g.release()
		g.Conn.SetDeadline(time.Time{})
	}
}

// graceConn is a connection counted by startups until it authenticates or
// closes.
type graceConn struct {
	net.Conn
	s        *startups
	source   string
	remote   string
	deadline time.Time
	once     sync.Once
	released atomic.Bool
}

// SetDeadline and its kin keep the grace's deadline until the connection
// authenticates (gliderlabs/ssh sets the deadline of every connection it
// reads, to none when it has no timeouts of its own).
func (g *graceConn) SetDeadline(t time.Time) error      { return g.Conn.SetDeadline(g.clamp(t)) }
func (g *graceConn) SetReadDeadline(t time.Time) error  { return g.Conn.SetReadDeadline(g.clamp(t)) }
func (g *graceConn) SetWriteDeadline(t time.Time) error { return g.Conn.SetWriteDeadline(g.clamp(t)) }

func (g *graceConn) clamp(t time.Time) time.Time {
	if !g.released.Load() && (t.IsZero() || t.After(g.deadline)) {
		return g.deadline
	}
	return t
}

func (g *graceConn) release() {
	g.once.Do(func() {
		g.released.Store(true)
		g.s.mu.Lock()
		defer g.s.mu.Unlock()
		if g.s.bySource[g.source]--; g.s.bySource[g.source] <= 0 {
			delete(g.s.bySource, g.source)
		}
		if g.s.byRemote[g.remote] == g {
			delete(g.s.byRemote, g.remote)
		}
	})
}

func (g *graceConn) Close() error {
	g.release()
	return g.Conn.Close()
}

// CloseWrite half-closes the underlying connection when it can.
func (g *graceConn) CloseWrite() error { return closeWrite(g.Conn) }
