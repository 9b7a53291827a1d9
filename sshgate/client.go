package sshgate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
)

// ErrUnreachable wraps failures to reach a provider at all.
var ErrUnreachable = errors.New("provider unreachable")

// ClientConfig configures Dial.
type ClientConfig struct {
	Signer          gossh.Signer
	HostKeyCallback gossh.HostKeyCallback
	Timeout         time.Duration
	// Dial, if not nil, connects to an address (the gateway's, for the
	// connection and for each lease stream) instead of TCP: a provider's
	// market multiaddr, its gateway served over libp2p (p2p.Dialer).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Client is a renter's connection to one provider.
type Client struct {
	Addr string
	// HostKey is the provider's host key, as verified at the handshake;
	// usage reports are signed with it.
	HostKey gossh.PublicKey
	conn    *conn
	ch      gossh.Channel
	renter  string                                          // the renter's key fingerprint
	dial    func(context.Context, string) (net.Conn, error) // nil: TCP
	w       *proto.Writer

	reqMu   sync.Mutex // one request/response exchange at a time
	offered int        // hosts of the live offer, guarded by reqMu
	// owed are the replies of requests whose caller gave up waiting (its
	// context ended), oldest first: each the number of messages still to
	// come, or one error instead. They still come, and the next request
	// must not take one for its own. Guarded by reqMu.
	owed    []int
	replies chan proto.Message
	events  chan Event
	done    chan struct{}
	err     error
}

// Event is something the provider tells the renter unasked, in the order
// it was sent: exactly one field is set.
type Event struct {
	Usage  *Usage
	Ended  *proto.Ended
	Credit *proto.Credit
	State  *proto.LeaseState
}

// Usage is a usage report, decoded but not yet checked (meter.Check does
// that, with the client's HostKey), with the provider's payment request
// for the bill up to it, if any.
type Usage struct {
	Report  meter.Report
	Request *pay.Request
	// Final marks the lease's last report.
	Final bool
}

// Dial connects to a provider's gateway and opens the negotiation channel,
// within cfg.Timeout and ctx. The client outlives ctx: ctx bounds only
// the dial.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	var hostKey gossh.PublicKey
	conn, err := dialConn(ctx, addr, cfg.Dial, cfg.Signer, func(host string, remote net.Addr, key gossh.PublicKey) error {
		if err := cfg.HostKeyCallback(host, remote, key); err != nil {
			return err
		}
		hostKey = key
		return nil
	}, cfg.Timeout)
	if errors.Is(err, ErrUnreachable) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("ssh handshake with provider %s: %w", addr, err)
	}
	ch, creqs, err := conn.openChannel(ctx, proto.ChannelNegotiate, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open negotiation with provider %s: %w", addr, err)
	}
	go gossh.DiscardRequests(creqs)
	c := &Client{
		Addr: addr, HostKey: hostKey, conn: conn, ch: ch, dial: cfg.Dial, w: proto.NewWriter(ch), renter: gossh.FingerprintSHA256(cfg.Signer.PublicKey()),
		replies: make(chan proto.Message, 64), events: make(chan Event, 1024), done: make(chan struct{}),
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
		var ev Event
		switch m.Type {
		case proto.TypeEnded:
			ev.Ended = m.Ended
		case proto.TypeCredit:
			ev.Credit = m.Credit
		case proto.TypeState:
			ev.State = m.State
		case proto.TypeUsage:
			u, err := decodeUsage(m)
			if err != nil {
				c.err = fmt.Errorf("provider %s sent a malformed usage report: %w", c.Addr, err)
				c.conn.Close()
				return
			}
			ev.Usage = u
		default:
			c.replies <- m
			continue
		}
		c.events <- ev
	}
}

func decodeUsage(m proto.Message) (*Usage, error) {
	rep, err := meter.Decode(m.Usage)
	if err != nil {
		return nil, err
	}
	u := &Usage{Report: rep, Final: m.Final}
	if m.PayRequest != nil {
		req, err := pay.DecodeRequest(m.PayRequest)
		if err != nil {
			return nil, err
		}
		if req.Lease != rep.Lease || req.Seq != rep.Seq {
			return nil, fmt.Errorf("payment request for %s report %d rides on %s report %d", req.Lease, req.Seq, rep.Lease, rep.Seq)
		}
		u.Request = &req
	}
	return u, nil
}

// Events delivers what the provider tells unasked: usage reports with
// payment requests, credits for payments, pauses and resumes, and leases it
// ended. They must be drained: a renter that stops reading them stalls the
// connection.
func (c *Client) Events() <-chan Event { return c.events }

// Pay sends the provider a proof of payment; its Credit comes back as an
// Event.
func (c *Client) Pay(p pay.Proof) error {
	b, err := pay.EncodeProof(p)
	if err != nil {
		return err
	}
	return c.w.Send(proto.Message{Type: proto.TypePayment, Payment: bytes.TrimSpace(b)})
}

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

// next returns the reply to the request under way, of which remaining
// messages are still to come (counted as owed if ctx ends first).
func (c *Client) next(ctx context.Context, remaining int) (proto.Message, error) {
	select {
	case m := <-c.replies:
		if m.Type == proto.TypeError {
			return m, m.Error
		}
		return m, nil
	case <-c.done:
		return proto.Message{}, c.err
	case <-ctx.Done():
		c.owed = append(c.owed, remaining)
		return proto.Message{}, ctx.Err()
	}
}

// settle discards the replies owed to requests given up on, before a new
// request is sent; a provider that does not send them within a minute is
// hung up on, since its replies can no longer be told apart. Leases granted
// to an accept given up on are released, not left running unknown to the
// renter. Called with reqMu held.
func (c *Client) settle() error {
	if len(c.owed) == 0 {
		return nil
	}
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	var abandoned []string
	for len(c.owed) > 0 {
		select {
		case m := <-c.replies:
			switch {
			case m.Type == proto.TypeStarting:
				// not a reply: the leases or the error still come
			case m.Type == proto.TypeError:
				c.owed[0] = 0
			case m.Type == proto.TypeLease && m.Lease != nil:
				abandoned = append(abandoned, m.Lease.ID)
				c.owed[0]--
			default:
				c.owed[0]--
			}
			if c.owed[0] <= 0 {
				c.owed = c.owed[1:]
			}
			if len(c.owed) == 0 && len(abandoned) > 0 {
				if err := c.w.Send(proto.Message{Type: proto.TypeRelease, Release: &proto.Release{IDs: abandoned}}); err != nil {
					return err
				}
				abandoned = nil
				c.owed = append(c.owed, 1)
			}
		case <-c.done:
			return c.err
		case <-t.C:
			c.conn.Close()
			return fmt.Errorf("provider %s did not answer an earlier request within a minute", c.Addr)
		}
	}
	return nil
}

// Rent asks for d and takes what the provider offers, up to d.Count hosts,
// if accept agrees to the offer's terms and names the payment method.
func (c *Client) Rent(ctx context.Context, d proto.Demand, accept func(proto.Offer) (method string, err error)) (proto.Offer, []proto.Lease, error) {
	return c.RentJoin(ctx, d, accept, nil)
}

// RentJoin is Rent, with the hosts put on a session network: join, if not
// nil, says where for the n hosts taken.
func (c *Client) RentJoin(ctx context.Context, d proto.Demand, accept func(proto.Offer) (method string, err error), join func(n int) *proto.ClusterJoin) (proto.Offer, []proto.Lease, error) {
	offer, err := c.Offer(ctx, d)
	if err != nil {
		return offer, nil, err
	}
	n := min(offer.Count, d.Count)
	method, err := accept(offer)
	if err != nil {
		return offer, nil, fmt.Errorf("provider %s: %w", c.Addr, err)
	}
	var j *proto.ClusterJoin
	if join != nil {
		j = join(n)
	}
	leases, err := c.AcceptJoin(ctx, n, method, j)
	if err == nil && n < d.Count {
		err = fmt.Errorf("%w: offered %d of %d hosts", proto.ErrCapacity, n, d.Count)
	}
	return offer, leases, err
}

// Offer asks for d and returns the provider's offer: how many of the hosts
// it can give now, on what terms, until the offer's expiry.
func (c *Client) Offer(ctx context.Context, d proto.Demand) (proto.Offer, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if err := c.settle(); err != nil {
		return proto.Offer{}, err
	}
	if err := c.w.Send(proto.Message{Type: proto.TypeDemand, Demand: &d}); err != nil {
		return proto.Offer{}, err
	}
	m, err := c.next(ctx, 1)
	if err != nil {
		return proto.Offer{}, err
	}
	if m.Type != proto.TypeOffer {
		return proto.Offer{}, fmt.Errorf("provider %s answered a demand with %q", c.Addr, m.Type)
	}
	offer := *m.Offer
	if offer.Count < 1 || !d.Limits.Satisfies(offer.Limits) {
		return offer, fmt.Errorf("provider %s offered other terms than demanded", c.Addr)
	}
	c.offered = offer.Count
	return offer, nil
}

// Accept takes n hosts of the last offer, paid by method, and returns
// their leases as they are granted.
func (c *Client) Accept(ctx context.Context, n int, method string) ([]proto.Lease, error) {
	return c.AcceptJoin(ctx, n, method, nil)
}

// AcceptJoin is Accept, with the hosts put on a session network if join
// is not nil.
func (c *Client) AcceptJoin(ctx context.Context, n int, method string, join *proto.ClusterJoin) ([]proto.Lease, error) {
	return c.AcceptProgress(ctx, n, method, join, nil)
}

// AcceptProgress is AcceptJoin, calling started (if not nil) with how
// many of the n hosts have started, as the provider says so (at most
// five times a second, and when the last has).
func (c *Client) AcceptProgress(ctx context.Context, n int, method string, join *proto.ClusterJoin, started func(k, n int)) ([]proto.Lease, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if err := c.settle(); err != nil {
		return nil, err
	}
	if n < 1 || n > c.offered {
		return nil, fmt.Errorf("accept %d hosts of provider %s's offer of %d", n, c.Addr, c.offered)
	}
	c.offered = 0
	if err := c.w.Send(proto.Message{Type: proto.TypeAccept, Accept: &proto.Accept{Count: n, Method: method, Cluster: join, Progress: started != nil}}); err != nil {
		return nil, err
	}
	leases := make([]proto.Lease, 0, n)
	for len(leases) < n {
		// The provider grants every host or none: n leases, or one error.
		m, err := c.next(ctx, n-len(leases))
		if err != nil {
			return leases, err
		}
		if m.Type == proto.TypeStarting && len(leases) == 0 && m.Starting.Count == n {
			if started != nil {
				started(m.Starting.Started, n)
			}
			continue
		}
		if m.Type != proto.TypeLease {
			return leases, fmt.Errorf("provider %s sent %q while granting leases", c.Addr, m.Type)
		}
		leases = append(leases, *m.Lease)
	}
	return leases, nil
}

// SetMembership hands the provider a session's signed membership (package
// cluster's encoding) and returns what it now holds and how it reaches the
// session's other providers.
func (c *Client) SetMembership(ctx context.Context, membership []byte) (proto.ClusterStatus, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if err := c.settle(); err != nil {
		return proto.ClusterStatus{}, err
	}
	if err := c.w.Send(proto.Message{Type: proto.TypeMembership, Membership: membership}); err != nil {
		return proto.ClusterStatus{}, err
	}
	m, err := c.next(ctx, 1)
	if err != nil {
		return proto.ClusterStatus{}, err
	}
	if m.Type != proto.TypeCluster {
		return proto.ClusterStatus{}, fmt.Errorf("provider %s answered a membership with %q", c.Addr, m.Type)
	}
	return *m.Cluster, nil
}

// OpenClusterRelay opens a relay of one of the renter's sessions on this
// provider: the frames it sends the session's hosts on provider peer come
// out of it, and what is written to it goes to this provider's hosts as if
// from peer. The renter pipes two of them together when two providers
// cannot reach each other.
func (c *Client) OpenClusterRelay(ctx context.Context, session, peer string) (io.ReadWriteCloser, error) {
	extra := gossh.Marshal(clusterChannel{Renter: c.renter, Session: session, Peer: peer})
	ch, reqs, err := c.conn.openChannel(ctx, ChannelClusterRelay, extra)
	if err != nil {
		return nil, err
	}
	go gossh.DiscardRequests(reqs)
	return ch, nil
}

// Release ends leases and waits until the provider confirms their sandboxes
// are destroyed.
func (c *Client) Release(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if err := c.settle(); err != nil {
		return err
	}
	if err := c.w.Send(proto.Message{Type: proto.TypeRelease, Release: &proto.Release{IDs: ids}}); err != nil {
		return err
	}
	m, err := c.next(ctx, 1)
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

// OpenLease opens a stream to lease id's sandbox SSH server. If ctx ends
// before the provider answers, the connection is closed (see conn).
func (c *Client) OpenLease(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	ch, reqs, err := c.conn.openChannel(ctx, proto.ChannelLease, gossh.Marshal(struct{ ID string }{id}))
	if err != nil {
		return nil, err
	}
	go gossh.DiscardRequests(reqs)
	return ch, nil
}

// ErrNoStream: the provider gives no lease stream for this lease (an
// older provider, a host with no network, a paused or unknown lease);
// OpenLease gives the host's SSH, or says why not.
var ErrNoStream = errors.New("no lease stream")

// OpenStream connects to lease id's host on a TCP connection of its own to
// the provider (proto.RequestLeaseStream): the host's end-to-end SSH with
// no second SSH layer around it, which moves bulk data at several times
// less cost than a lease channel. It returns ErrNoStream (wrapped) when
// the provider gives none.
func (c *Client) OpenStream(ctx context.Context, id string) (net.Conn, error) {
	ok, ticket, err := c.conn.request(ctx, proto.RequestLeaseStream, gossh.Marshal(struct{ ID string }{id}))
	if err != nil {
		return nil, err
	}
	if !ok || len(ticket) != proto.TicketSize {
		return nil, fmt.Errorf("%w: %s", ErrNoStream, ticket)
	}
	addr := c.conn.RemoteAddr().String()
	if c.dial != nil {
		addr = c.Addr
	}
	raw, err := dialRaw(ctx, addr, c.dial, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("lease stream to %s: %w", c.Addr, err)
	}
	// The magic and the ticket go with the host's SSH bytes that follow.
	if _, err := raw.Write(append([]byte(proto.StreamMagic), ticket...)); err != nil {
		raw.Close()
		return nil, fmt.Errorf("lease stream to %s: %w", c.Addr, err)
	}
	return raw, nil
}

// Close drops the connection; the provider ends every lease it holds for
// this client.
func (c *Client) Close() error { return c.conn.Close() }

// Forward accepts connections on l and joins each to a new stream to lease
// id until l is closed. ctx bounds the opening of each stream.
func (c *Client) Forward(ctx context.Context, l net.Listener, id string, onErr func(error)) {
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer nc.Close()
			if st, err := c.OpenStream(ctx, id); err == nil {
				splice(nc, st)
				return
			}
			st, err := c.OpenLease(ctx, id)
			if err != nil {
				if onErr != nil {
					onErr(fmt.Errorf("lease %s: %w", id, err))
				}
				return
			}
			splice(nc, st)
		}()
	}
}
