package sshgate

import (
	"net"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
)

// DefaultUnusedTimeout closes a connection that has had no channel open
// for this long, as OpenSSH's UnusedConnectionTimeout does: a renter's
// connection holds its negotiation channel for as long as it rents, so
// only connections that hold nothing are closed.
const DefaultUnusedTimeout = 10 * time.Minute

// WithUnusedTimeout sets how long a connection may stay open with no
// channel (default DefaultUnusedTimeout).
func WithUnusedTimeout(d time.Duration) GatewayOption {
	return func(g *Gateway) { g.unusedTimeout = d }
}

type unusedKey struct{}

// unused closes its connection once it has had no channel open for d.
type unused struct {
	conn net.Conn
	d    time.Duration

	mu    sync.Mutex
	open  int
	timer *time.Timer
}

// watchUnused starts the clock of c, kept in ctx for the channel
// handlers, and returns c with a Close that stops it.
func watchUnused(ctx ssh.Context, c net.Conn, d time.Duration) net.Conn {
	u := &unused{conn: c, d: d}
	u.timer = time.AfterFunc(d, u.expire)
	ctx.SetValue(unusedKey{}, u)
	return &unusedConn{Conn: c, u: u}
}

func (u *unused) expire() {
	u.mu.Lock()
	idle := u.open == 0
	u.mu.Unlock()
	if idle {
		u.conn.Close()
	}
}

// opened counts a channel open; its closed resets the clock once none is.
func (u *unused) opened() (closed func()) {
	u.mu.Lock()
	u.open++
	u.timer.Stop()
	u.mu.Unlock()
	return sync.OnceFunc(func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.open--; u.open == 0 {
			u.timer.Reset(u.d)
		}
	})
}

type unusedConn struct {
	net.Conn
	u *unused
}

func (c *unusedConn) Close() error {
	c.u.timer.Stop()
	return c.Conn.Close()
}

// usedBy returns ctx's connection's clock, if it has one.
func usedBy(ctx ssh.Context) *unused {
	if ctx == nil {
		return nil
	}
	u, _ := ctx.Value(unusedKey{}).(*unused)
	return u
}
