package sshgate

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/internal/peeraddr"
	"github.com/zennet/zennet/proto"
)

// Channel types of the session networks. Their extra data is a
// clusterChannel (SSH wire format).
const (
	// ChannelCluster carries one session's frames between two of its
	// providers, each authenticated by its host key: the dialer's as its
	// client key, the other's as the server's.
	ChannelCluster = "zennet-cluster-v1@zennet"
	// ChannelClusterRelay carries one session's frames between a provider
	// and the session's renter, which passes them on to the provider Peer
	// when the two cannot reach each other.
	ChannelClusterRelay = "zennet-cluster-relay-v1@zennet"
)

// clusterChannel names the session (and, on a relay, the provider at the
// other end) of a cluster channel.
type clusterChannel struct {
	Renter, Session, Peer string
}

// Bounds of the tunnels.
const (
	// maxFrame is the largest frame a tunnel carries: a tap's 64 KiB and
	// an Ethernet header.
	maxFrame = 1<<16 + 14
	// tunnelQueue frames wait to be written to a tunnel; more are dropped,
	// as a switch drops what its port cannot take.
	tunnelQueue = 512
	// tunnelDial bounds dialling another provider.
	tunnelDial = 5 * time.Second
)

// ClusterTransport is a provider's tunnels to the other providers of its
// renters' sessions (cluster.Peers and cluster.Tunnels): one SSH connection
// per provider, authenticated both ways by the host keys the membership
// names, and a channel per session on it. A session's frames from a peer
// reach the fabric only if the membership puts their source on that peer.
type ClusterTransport struct {
	signer gossh.Signer
	self   string
	fabric *cluster.Fabric
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	// dial reaches a provider at a market multiaddr (behind a NAT); nil
	// leaves such providers to the renter's relay.
	dial func(context.Context, string) (net.Conn, error)

	mu            sync.Mutex
	conns         map[string]*conn               // dialled, by provider fingerprint
	dialing       map[string]chan struct{}       // dials under way
	tunnels       map[tunnelKey]map[*tunnel]bool // live, by peer and session
	seq           uint64                         // tunnels registered
	registered    chan struct{}                  // closed and made anew by each register
	streamTickets *tickets[*pendingClusterStream]
	wg            sync.WaitGroup
}

type tunnelKey struct {
	peer string
	key  cluster.SessionKey
}

// tunnel is one way of a session to a peer: an SSH channel, direct or
// relayed, or a cluster stream (cluster_stream.go).
type tunnel struct {
	ch     gossh.Channel // nil for a stream
	stream net.Conn      // nil for a channel
	q      chan []byte
	// A stream's sealing and writing, by Send or the writer goroutine,
	// hold wmu.
	wmu     sync.Mutex
	send    *sealer
	out     []byte
	relayed bool
	seq     uint64        // registration order
	done    chan struct{} // closed by close
	once    sync.Once
}

// rank orders a session's ways to a peer: a stream, a direct channel, a
// relayed one.
func (tn *tunnel) rank() int {
	switch {
	case tn.stream != nil:
		return 2
	case !tn.relayed:
		return 1
	}
	return 0
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 4+maxFrame); return &b }}

// NewClusterTransport returns the tunnels of the provider whose host key
// is signer, delivering into fabric (and set as its peers).
func NewClusterTransport(signer gossh.Signer, fabric *cluster.Fabric, log *slog.Logger) *ClusterTransport {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &ClusterTransport{signer: signer, self: gossh.FingerprintSHA256(signer.PublicKey()), fabric: fabric,
		log: log.With("subsystem", "cluster"), conns: map[string]*conn{}, dialing: map[string]chan struct{}{},
		tunnels: map[tunnelKey]map[*tunnel]bool{}, registered: make(chan struct{}), streamTickets: newTickets[*pendingClusterStream](nil)}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	fabric.SetPeers(t)
	return t
}

// WithDial makes t reach providers at market multiaddrs with dial (the
// provider's libp2p node): set before t is used.
func (t *ClusterTransport) WithDial(dial func(context.Context, string) (net.Conn, error)) *ClusterTransport {
	t.dial = dial
	return t
}

// Close closes every tunnel and connection and waits for their goroutines.
func (t *ClusterTransport) Close() {
	t.cancel()
	t.streamTickets.close()
	t.mu.Lock()
	for _, c := range t.conns {
		c.Close()
	}
	for _, set := range t.tunnels {
		for tn := range set {
			tn.close()
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// Send queues a frame for the session's tunnel to provider: a stream if
// there is, else a direct channel, else a relayed one. It never blocks.
func (t *ClusterTransport) Send(provider string, key cluster.SessionKey, frame []byte) bool {
	if len(frame) > maxFrame {
		return false
	}
	t.mu.Lock()
	var best *tunnel
	for tn := range t.tunnels[tunnelKey{provider, key}] {
		// The best way, and of equals the oldest: a flow's frames all
		// take one, never alternate between two (both providers dial,
		// so a pair of them may have two of each) and arrive reordered.
		if best == nil || tn.rank() > best.rank() || tn.rank() == best.rank() && tn.seq < best.seq {
			best = tn
		}
	}
	t.mu.Unlock()
	if best == nil {
		return false
	}
	// A stream whose writer is idle takes the frame at once, in this
	// goroutine: no hand-off, which is most of a frame's cost here.
	if best.stream != nil && len(best.q) == 0 && best.wmu.TryLock() {
		ok := best.writeNow(frame)
		best.wmu.Unlock()
		return ok
	}
	bp := framePool.Get().(*[]byte)
	b := (*bp)[:4+len(frame)]
	binary.BigEndian.PutUint32(b, uint32(len(frame)))
	copy(b[4:], frame)
	select {
	case best.q <- b:
		return true
	default:
		framePool.Put(bp)
		return false
	}
}

// Ensure makes sure the session has a tunnel to each of peers' providers,
// dialling those it has none to, and says each one's path. Tunnels of the
// session to providers no longer in it are closed.
func (t *ClusterTransport) Ensure(key cluster.SessionKey, peers []cluster.Member) []proto.ClusterPeer {
	keep := map[string]bool{}
	for _, p := range peers {
		keep[p.Provider] = true
	}
	t.mu.Lock()
	for tk, set := range t.tunnels {
		if tk.key == key && !keep[tk.peer] {
			for tn := range set {
				tn.close()
			}
		}
	}
	t.mu.Unlock()
	out := make([]proto.ClusterPeer, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		out[i] = proto.ClusterPeer{Provider: p.Provider, Path: proto.PathDown}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.ensure(key, p); err != nil {
				t.log.Info("no direct tunnel", "peer", p.Provider, "endpoint", p.Endpoint, "session", key.String(), "err", err)
			}
			out[i].Path = t.path(key, p.Provider)
		}()
	}
	wg.Wait()
	return out
}

// path is the best path the session has to peer.
func (t *ClusterTransport) path(key cluster.SessionKey, peer string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	path := proto.PathDown
	for tn := range t.tunnels[tunnelKey{peer, key}] {
		if tn.rank() > 0 {
			return proto.PathDirect
		}
		path = proto.PathRelayed
	}
	return path
}

// ensure dials peer's provider, if this session has no direct tunnel to
// it, and opens one; and opens a cluster stream beside it if it has none.
func (t *ClusterTransport) ensure(key cluster.SessionKey, p cluster.Member) error {
	parent, streamed := t.direct(key, p.Provider)
	if streamed {
		return nil
	}
	c, err := t.connect(p)
	if err != nil {
		return err
	}
	if parent == nil {
		ctx, cancel := context.WithTimeout(t.ctx, tunnelDial)
		ch, reqs, err := c.openChannel(ctx, ChannelCluster, gossh.Marshal(clusterChannel{Renter: key.Renter, Session: key.Session}))
		cancel()
		if err != nil {
			return err
		}
		go gossh.DiscardRequests(reqs)
		if parent = t.run(ch, p.Provider, key, false, func() {}); parent == nil {
			return t.ctx.Err()
		}
	}
	if err := t.openStream(c, parent, key, p); err != nil {
		t.log.Info("no cluster stream: the session's frames go over the SSH channel", "peer", p.Provider, "session", key.String(), "err", err)
	}
	return nil
}

// direct returns a direct channel of the session to peer, if it has one,
// and whether it has a stream too.
func (t *ClusterTransport) direct(key cluster.SessionKey, peer string) (parent *tunnel, streamed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tn := range t.tunnels[tunnelKey{peer, key}] {
		switch {
		case tn.stream != nil:
			streamed = true
		case !tn.relayed:
			parent = tn
		}
	}
	return parent, streamed
}

// connect returns the kept connection to a peer provider, dialling it if
// need be: its host key must have the fingerprint the membership names.
func (t *ClusterTransport) connect(p cluster.Member) (*conn, error) {
	for {
		t.mu.Lock()
		if c := t.conns[p.Provider]; c != nil {
			select {
			case <-c.Done():
				delete(t.conns, p.Provider)
			default:
				t.mu.Unlock()
				return c, nil
			}
		}
		if wait, ok := t.dialing[p.Provider]; ok {
			t.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-t.ctx.Done():
				return nil, t.ctx.Err()
			}
		}
		done := make(chan struct{})
		t.dialing[p.Provider] = done
		t.mu.Unlock()
		hostKey := func(_ string, _ net.Addr, key gossh.PublicKey) error {
			if fp := gossh.FingerprintSHA256(key); fp != p.Provider {
				return fmt.Errorf("host key %s is not the session's provider %s", fp, p.Provider)
			}
			return nil
		}
		dial, err := t.dialFor(p.Endpoint)
		var c *conn
		if err == nil {
			c, err = dialConn(t.ctx, p.Endpoint, dial, t.signer, hostKey, tunnelDial)
		}
		t.mu.Lock()
		delete(t.dialing, p.Provider)
		close(done)
		if err == nil {
			t.conns[p.Provider] = c
		}
		t.mu.Unlock()
		return c, err
	}
}

// Serve serves a cluster channel another provider (ChannelCluster) or a
// session's renter (ChannelClusterRelay) opened on the gateway. A provider
// must be a member of the session by the membership held here; a relay
// must come from the session's renter, for a member provider.
//
// hold, if not nil, is called once the channel is accepted; what it
// returns is called when the tunnel goes down.
func (t *ClusterTransport) Serve(conn *gossh.ServerConn, nc gossh.NewChannel, hold func() (release func())) {
	from := VerifiedKey(conn)
	var cc clusterChannel
	if from == nil || gossh.Unmarshal(nc.ExtraData(), &cc) != nil {
		nc.Reject(gossh.ConnectionFailed, "malformed cluster channel")
		return
	}
	key := cluster.SessionKey{Renter: cc.Renter, Session: cc.Session}
	fp := gossh.FingerprintSHA256(from)
	peer, relayed := fp, nc.ChannelType() == ChannelClusterRelay
	if relayed {
		if fp != key.Renter {
			nc.Reject(gossh.Prohibited, "only the session's renter relays its frames")
			return
		}
		peer = cc.Peer
	}
	if peer == t.self || !t.fabric.Serves(key, peer) {
		nc.Reject(gossh.Prohibited, "no such session here, or the provider is not in it")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go gossh.DiscardRequests(reqs)
	release := func() {}
	if hold != nil {
		release = hold()
	}
	t.run(ch, peer, key, relayed, release)
}

// run starts a tunnel's reader and writer and registers it; nil once
// the transport is closed.
func (t *ClusterTransport) run(ch gossh.Channel, peer string, key cluster.SessionKey, relayed bool, release func()) *tunnel {
	tn := &tunnel{ch: ch, q: make(chan []byte, tunnelQueue), relayed: relayed, done: make(chan struct{})}
	tk := tunnelKey{peer, key}
	t.mu.Lock()
	if t.ctx.Err() != nil {
		t.mu.Unlock()
		ch.Close()
		release()
		return nil
	}
	t.register(tk, tn)
	t.wg.Add(2)
	t.mu.Unlock()
	t.log.Info("tunnel up", "peer", peer, "session", key.String(), "relayed", relayed)
	go func() {
		defer t.wg.Done()
		defer release()
		defer t.unregister(tk, tn)
		err := readFrames(ch, func(frame []byte) error {
			if err := t.fabric.FromPeer(peer, key, frame); err != nil {
				t.log.Debug("frame from peer dropped", "peer", peer, "err", err)
			}
			return nil
		})
		t.log.Info("tunnel down", "peer", peer, "session", key.String(), "err", err)
	}()
	go func() {
		defer t.wg.Done()
		for {
			select {
			case b, ok := <-tn.q:
				if !ok {
					return
				}
				_, err := ch.Write(b)
				b = b[:cap(b)]
				framePool.Put(&b)
				if err != nil {
					tn.close()
					return
				}
			case <-tn.done:
				return
			case <-t.ctx.Done():
				return
			}
		}
	}()
	return tn
}

func (tn *tunnel) close() {
	tn.once.Do(func() {
		close(tn.done)
		if tn.ch != nil {
			tn.ch.Close()
		}
		if tn.stream != nil {
			tn.stream.Close()
		}
	})
}

// readFrames reads length-prefixed frames from r until it fails, handing
// each to fn (which must not keep it).
func readFrames(r io.Reader, fn func([]byte) error) error {
	// Whatever has arrived is read at once: a busy tunnel's frames come
	// several to a read, not one read (and one wait) per SSH packet.
	r = bufio.NewReaderSize(r, 4*maxFrame)
	buf := make([]byte, maxFrame)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n < 14 || n > maxFrame {
			return fmt.Errorf("frame of %d bytes", n)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return err
		}
		if err := fn(buf[:n]); err != nil {
			return err
		}
	}
}

// clusterChannelHandler serves the gateway's cluster channels.
func (g *Gateway) clusterChannel(_ *ssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx ssh.Context) {
	if g.tunnels == nil {
		nc.Reject(gossh.UnknownChannelType, "this provider has no session networks")
		return
	}
	var hold func() func()
	if u := usedBy(ctx); u != nil {
		hold = u.opened // the tunnel lives on after this returns
	}
	g.tunnels.Serve(conn, nc, hold)
}

// clusterStreamRequest answers proto.RequestClusterStream (cluster_stream.go).
func (g *Gateway) clusterStreamRequest(ctx ssh.Context, _ *ssh.Server, req *gossh.Request) (bool, []byte) {
	if g.tunnels == nil {
		return false, []byte("this provider has no session networks")
	}
	sc, _ := ctx.Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	return g.tunnels.streamRequest(VerifiedKey(sc), req.Payload)
}

// serveClusterStream serves a connection that began with
// proto.ClusterStreamMagic. A bad ticket or first record gets it closed,
// nothing more.
func (g *Gateway) serveClusterStream(c net.Conn) {
	if g.tunnels == nil || !g.streams.track(c) {
		c.Close()
		return
	}
	defer g.streams.untrack(c)
	proven := func() {
		if gc, ok := c.(*graceConn); ok {
			gc.release() // the ticket and a record that opened are its proof
		}
	}
	if err := g.tunnels.ServeStream(c, proven); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		g.log.Info("cluster stream ended", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// register adds a tunnel to tk's, with t.mu held.
func (t *ClusterTransport) register(tk tunnelKey, tn *tunnel) {
	if t.tunnels[tk] == nil {
		t.tunnels[tk] = map[*tunnel]bool{}
	}
	t.seq++
	tn.seq = t.seq
	t.tunnels[tk][tn] = true
	close(t.registered)
	t.registered = make(chan struct{})
}

// dialFor is how t reaches a provider at endpoint: its libp2p dial for a
// market multiaddr, nil (TCP) for a host:port.
func (t *ClusterTransport) dialFor(endpoint string) (func(context.Context, string) (net.Conn, error), error) {
	if !peeraddr.Is(endpoint) {
		return nil, nil
	}
	if t.dial == nil {
		return nil, fmt.Errorf("%w: %s: this provider has no way to dial a market address", ErrUnreachable, endpoint)
	}
	return t.dial, nil
}

// unregister takes a tunnel off tk's and closes it.
func (t *ClusterTransport) unregister(tk tunnelKey, tn *tunnel) {
	t.mu.Lock()
	delete(t.tunnels[tk], tn)
	if len(t.tunnels[tk]) == 0 {
		delete(t.tunnels, tk)
	}
	t.mu.Unlock()
	tn.close()
}
