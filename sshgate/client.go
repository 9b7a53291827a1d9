package sshgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/proto"
)

// ErrUnreachable wraps failures to reach a provider at all.
var ErrUnreachable = errors.New("provider unreachable")

// ClientConfig configures Dial.
type ClientConfig struct {
	Signer          gossh.Signer
	HostKeyCallback gossh.HostKeyCallback
	Timeout         time.Duration
}

// Client is a renter's connection to one provider.
type Client struct {
	Addr string
	// HostKey is the provider's host key, as verified at the handshake;
	// usage reports are signed with it.
	HostKey gossh.PublicKey
	conn    *gossh.Client
	ch      gossh.Channel
	w       *proto.Writer

	reqMu   sync.Mutex // one request/response exchange at a time
	replies chan proto.Message
	ended   chan proto.Ended
	usage   chan meter.Report
	done    chan struct{}
	err     error
}

// Dial connects to a provider's gateway and opens the negotiation channel.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, addr, err)
	}
	nc.SetDeadline(time.Now().Add(cfg.Timeout))
	var hostKey gossh.PublicKey
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, &gossh.ClientConfig{
		User: "zennet",
		Auth: []gossh.AuthMethod{gossh.PublicKeys(cfg.Signer)},
		HostKeyCallback: func(host string, remote net.Addr, key gossh.PublicKey) error {
			if err := cfg.HostKeyCallback(host, remote, key); err != nil {
				return err
			}
			hostKey = key
			return nil
		},
		Timeout: cfg.Timeout,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ssh handshake with provider %s: %w", addr, err)
	}
	nc.SetDeadline(time.Time{})
	conn := gossh.NewClient(sc, chans, reqs)
	ch, creqs, err := conn.OpenChannel(proto.ChannelNegotiate, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open negotiation with provider %s: %w", addr, err)
	}
	go gossh.DiscardRequests(creqs)
	c := &Client{
		Addr: addr, HostKey: hostKey, conn: conn, ch: ch, w: proto.NewWriter(ch),
		replies: make(chan proto.Message, 64), ended: make(chan proto.Ended, 64),
		usage: make(chan meter.Report, 1024), done: make(chan struct{}),
	}
	go c.read()
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	r := proto.NewReader(c.ch)
	for {
		m, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("provider %s closed the connection", c.Addr)
			}
			c.err = err
			return
		}
		switch m.Type {
		case proto.TypeEnded:
			c.ended <- *m.Ended
			continue
		case proto.TypeUsage:
			rep, err := meter.Decode(m.Usage)
			if err != nil {
				c.err = fmt.Errorf("provider %s sent a malformed usage report: %w", c.Addr, err)
				c.conn.Close()
				return
			}
			c.usage <- rep
			continue
		}
		c.replies <- m
	}
}

// Ended delivers the leases the provider ended on its own.
func (c *Client) Ended() <-chan proto.Ended { return c.ended }

// Usage delivers the provider's usage reports, decoded but not yet checked
// (meter.Check does that, with HostKey). They must be drained: a renter that
// stops reading them stalls the connection.
func (c *Client) Usage() <-chan meter.Report { return c.usage }

// Done is closed when the connection to the provider is gone.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why Done closed.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

func (c *Client) next(ctx context.Context) (proto.Message, error) {
	select {
	case m := <-c.replies:
		if m.Type == proto.TypeError {
			return m, m.Error
		}
		return m, nil
	case <-c.done:
		return proto.Message{}, c.err
	case <-ctx.Done():
		return proto.Message{}, ctx.Err()
	}
}

// Rent asks for d and takes what the provider offers, up to d.Count hosts.
func (c *Client) Rent(ctx context.Context, d proto.Demand) ([]proto.Lease, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if err := c.w.Send(proto.Message{Type: proto.TypeDemand, Demand: &d}); err != nil {
		return nil, err
	}
	m, err := c.next(ctx)
	if err != nil {
		return nil, err
	}
	if m.Type != proto.TypeOffer {
		return nil, fmt.Errorf("provider %s answered a demand with %q", c.Addr, m.Type)
	}
	n := min(m.Offer.Count, d.Count)
	if n < 1 || !d.Limits.Satisfies(m.Offer.Limits) {
		return nil, fmt.Errorf("provider %s offered other terms than demanded", c.Addr)
	}
	if err := c.w.Send(proto.Message{Type: proto.TypeAccept, Accept: &proto.Accept{Count: n}}); err != nil {
		return nil, err
	}
	leases := make([]proto.Lease, 0, n)
	for len(leases) < n {
		m, err := c.next(ctx)
		if err != nil {
			return leases, err
		}
		if m.Type != proto.TypeLease {
			return leases, fmt.Errorf("provider %s sent %q while granting leases", c.Addr, m.Type)
		}
		leases = append(leases, *m.Lease)
	}
	if n < d.Count {
		return leases, fmt.Errorf("%w: offered %d of %d hosts", proto.ErrCapacity, n, d.Count)
	}
	return leases, nil
}

// Release ends leases and waits until the provider confirms their sandboxes
// are destroyed.
func (c *Client) Release(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if err := c.w.Send(proto.Message{Type: proto.TypeRelease, Release: &proto.Release{IDs: ids}}); err != nil {
		return err
	}
	m, err := c.next(ctx)
	if err != nil {
		return err
	}
	if m.Type != proto.TypeReleased {
		return fmt.Errorf("provider %s answered a release with %q", c.Addr, m.Type)
	}
	if len(m.Released.IDs) != len(ids) {
		return fmt.Errorf("provider %s released %d of %d leases", c.Addr, len(m.Released.IDs), len(ids))
	}
	return nil
}

// OpenLease opens a stream to lease id's sandbox SSH server.
func (c *Client) OpenLease(id string) (io.ReadWriteCloser, error) {
	ch, reqs, err := c.conn.OpenChannel(proto.ChannelLease, gossh.Marshal(struct{ ID string }{id}))
	if err != nil {
		return nil, err
	}
	go gossh.DiscardRequests(reqs)
	return ch, nil
}

// Close drops the connection; the provider ends every lease it holds for
// this client.
func (c *Client) Close() error { return c.conn.Close() }

// Forward accepts connections on l and joins each to a new stream to lease
// id until l is closed.
func (c *Client) Forward(l net.Listener, id string, onErr func(error)) {
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer nc.Close()
			st, err := c.OpenLease(id)
			if err != nil {
				if onErr != nil {
					onErr(fmt.Errorf("lease %s: %w", id, err))
				}
				return
			}
			defer st.Close()
			join(nc, st)
		}()
	}
}

// join copies both ways until either side ends, then closes both.
func join(a net.Conn, b io.ReadWriteCloser) {
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(b, a)
		if cw, ok := b.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(a, b)
		if tc, ok := a.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}
