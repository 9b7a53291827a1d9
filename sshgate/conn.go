package sshgate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/coalesce"
)

// conn is a client's SSH connection kept for many channels: the renter's
// connection to a provider, a provider's to another.
//
// x/crypto's Conn.OpenChannel takes no context: it waits until the peer
// answers the open. Worse, when the connection's reader has already stopped
// (the peer hung up an instant before), the channel it registers is never
// answered nor dropped, and OpenChannel waits forever however the
// connection is closed afterwards: a provider once hung six minutes at
// shutdown so. Every channel is therefore opened through openChannel, which
// returns when its context ends or the connection is gone.
type conn struct {
	*gossh.Client
	done chan struct{} // closed when the connection is gone
}

// errConnClosed is returned by openChannel on a connection already gone.
var errConnClosed = errors.New("ssh connection closed")

// dialConn dials addr (with dial, else TCP) and completes the SSH
// handshake as signer, within timeout and ctx. hostKey checks the
// server's key (nil accepts any).
func dialConn(ctx context.Context, addr string, dial func(context.Context, string) (net.Conn, error), signer gossh.Signer, hostKey gossh.HostKeyCallback, timeout time.Duration) (*conn, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if hostKey == nil {
		hostKey = gossh.InsecureIgnoreHostKey()
	}
	raw, err := dialRaw(ctx, addr, dial, timeout)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, addr, err)
	}
	// Busy connections (a tunnel, a bulk copy) share system calls.
	nc := coalesce.New(raw)
	// The handshake is bound by the deadline and by ctx: closing the
	// socket is what stops it.
	nc.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, &gossh.ClientConfig{
		User: "zennet", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: hostKey, Timeout: timeout,
	})
	if !stop() {
		err = context.Cause(ctx)
		if sc != nil {
			sc.Close()
		}
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return newConn(gossh.NewClient(sc, chans, reqs)), nil
}

// dialRaw connects to addr with dial, or over TCP if dial is nil, within
// timeout.
func dialRaw(ctx context.Context, addr string, dial func(context.Context, string) (net.Conn, error), timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if dial != nil {
		return dial(ctx, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func newConn(c *gossh.Client) *conn {
	k := &conn{Client: c, done: make(chan struct{})}
	go func() {
		c.Wait()
		close(k.done)
	}()
	return k
}

// Done is closed when the connection is gone (closed by either side).
func (c *conn) Done() <-chan struct{} { return c.done }

// request sends the global request name and returns the provider's answer
// and its payload, or ctx's cause when ctx ends first (the request's
// answer, when it comes, is dropped), or errConnClosed when the
// connection goes first.
func (c *conn) request(ctx context.Context, name string, payload []byte) (bool, []byte, error) {
	type answer struct {
		ok    bool
		reply []byte
		err   error
	}
	res := make(chan answer, 1)
	go func() {
		ok, reply, err := c.SendRequest(name, true, payload)
		res <- answer{ok, reply, err}
	}()
	select {
	case a := <-res:
		if a.err != nil {
			return false, nil, fmt.Errorf("%w: %v", errConnClosed, a.err)
		}
		return a.ok, a.reply, nil
	case <-c.done:
		return false, nil, errConnClosed
	case <-ctx.Done():
		return false, nil, context.Cause(ctx)
	}
}

// openChannel opens a channel of type name on c. It returns ctx's cause
// when ctx ends first, and errConnClosed when the connection goes first;
// either way it closes the connection (the only way to stop the wait),
// which ends every other channel on it. It does not wait for x/crypto's
// OpenChannel to return (it may never, see conn): a channel opened after
// all is closed at once.
func (c *conn) openChannel(ctx context.Context, name string, extra []byte) (gossh.Channel, <-chan *gossh.Request, error) {
	select {
	case <-c.done:
		return nil, nil, errConnClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, context.Cause(ctx)
	}
	type opened struct {
		ch   gossh.Channel
		reqs <-chan *gossh.Request
		err  error
	}
	res := make(chan opened)
	abandoned := make(chan struct{})
	go func() {
		ch, reqs, err := c.Client.OpenChannel(name, extra)
		select {
		case res <- opened{ch, reqs, err}:
		case <-abandoned:
			if err == nil {
				go gossh.DiscardRequests(reqs)
				ch.Close()
			}
		}
	}()
	select {
	case o := <-res:
		return o.ch, o.reqs, o.err
	case <-ctx.Done():
		close(abandoned)
		go c.Close() // x/crypto's Close may wait on the reader too
		return nil, nil, context.Cause(ctx)
	case <-c.done:
		close(abandoned)
		go c.Close()
		return nil, nil, errConnClosed
	}
}
