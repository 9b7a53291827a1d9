package market

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Transport carries a Node's requests to its peers, named by the
// addresses their announcements give (host:port). Each call returns when
// its ctx ends, whatever the peer does. sshgate's GossipTransport is the
// one zennet uses.
type Transport interface {
	// Push offers envelopes (at most MaxBatch) to peer.
	Push(ctx context.Context, peer string, envs []Envelope) (Ack, error)
	// List asks peer for every announcement it knows.
	List(ctx context.Context, peer string) (Listing, error)
}

// Ack is a node's answer to a push.
type Ack struct {
	// Accepted counts the envelopes taken.
	Accepted int
	// MinBits is the proof of work the node asks of announcements.
	MinBits uint
}

// Listing is a node's answer to a list: every announcement it knows (see
// Relay.Snapshot).
type Listing struct {
	Envelopes []Envelope
	MinBits   uint
}

// NodeConfig configures a Node.
type NodeConfig struct {
	// Signer is the node's key: it signs its announcements.
	Signer ssh.Signer
	// Transport reaches the peers.
	Transport Transport
	// Announce returns the node's current announcement, unsigned and
	// unstamped (Address, Capacity, prices, methods); nil makes a node
	// that relays but does not sell (a seed).
	Announce func() Announcement
	// Peers are the nodes to gossip with at first (--peer); more are
	// learned from the announcements received.
	Peers []string
	// MinBits is the proof of work asked of announcements received.
	MinBits uint
	// Every is how often the node announces itself again (default one
	// minute); Validity how long an announcement lasts (default ten
	// minutes).
	Every, Validity time.Duration
	// Fanout bounds the peers each announcement is sent to (default
	// DefaultFanout).
	Fanout int
	// MaxPeers bounds the peers learned from announcements, besides
	// Peers (default DefaultMaxPeers): every learned peer is dialled, so
	// announcements naming many addresses must not make the node dial
	// without end.
	MaxPeers int
	Log      *slog.Logger
}

// DefaultMaxPeers is NodeConfig.MaxPeers' default: enough for every
// provider of a market of a few hundred to be two hops away.
const DefaultMaxPeers = 128

// Node is a provider's (or a seed's) node of the market: it keeps the
// directory of announcements, answers peers' pushes (Take) and lists
// (List), announces itself every NodeConfig.Every, and relays what it
// learns, within the Relay's bounds (each announcement forwarded once per
// node, to at most Fanout peers, at most DefaultMaxHops times).
type Node struct {
	cfg   NodeConfig
	relay *Relay
	log   *slog.Logger
	self  string // our Provider string

	mu    sync.Mutex
	peers []string
	bits  map[string]uint // what each peer asks
	// down holds the peers whose last exchange failed: skipped until
	// the time given, a wait that doubles with each failure.
	down  map[string]backoff
	orig  *Originator
	own   *Envelope             // the latest announcement of ours
	queue map[string][]Envelope // to push, by peer, at the next flush
	wg    sync.WaitGroup
	rnd   *rand.Rand
}

// NewNode returns a market node.
func NewNode(cfg NodeConfig) *Node {
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	if cfg.Validity <= 0 {
		cfg.Validity = 10 * time.Minute
	}
	if cfg.Fanout <= 0 {
		cfg.Fanout = DefaultFanout
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Log.With("subsystem", "gossip"), bits: map[string]uint{}, queue: map[string][]Envelope{},
		down: map[string]backoff{},
		rnd:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	n.orig = NewOriginator(cfg.Signer, cfg.Validity)
	n.self = n.orig.Provider()
	n.relay = NewRelay(NewDirectory(0), RelayConfig{MinBits: cfg.MinBits,
		OnReject: func(from string, a *Announcement, err error) {
			n.log.Info("announcement refused", "from", from, "address", a.Address, "err", err)
		}})
	for _, p := range cfg.Peers {
		n.addPeer(p)
	}
	return n
}

// Directory returns what the node knows.
func (n *Node) Directory() *Directory { return n.relay.Directory() }

// Stats returns the relay's counts.
func (n *Node) Stats() RelayStats { return n.relay.Stats() }

// addPeer adds a peer and reports whether it is new.
func (n *Node) addPeer(addr string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr == "" || slices.Contains(n.peers, addr) {
		return false
	}
	if len(n.peers) >= len(n.cfg.Peers)+n.cfg.MaxPeers && !slices.Contains(n.cfg.Peers, addr) {
		n.log.Debug("peer not added: enough peers", "address", addr, "peers", len(n.peers))
		return false
	}
	n.peers = append(n.peers, addr)
	return true
}

// Peers returns the nodes it gossips with.
func (n *Node) Peers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.peers)
}

// Run announces the node and keeps the directory until ctx ends, then
// waits for its exchanges under way (each ends with ctx).
func (n *Node) Run(ctx context.Context) {
	defer n.wg.Wait()
	// First learn what the peers know (peer exchange), then announce.
	for _, p := range n.Peers() {
		n.goPull(ctx, p)
	}
	t := time.NewTicker(n.cfg.Every)
	defer t.Stop()
	// Pushes to a peer go out in batches, one request per peer per
	// flush however many announcements it gets meanwhile.
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-flush.C:
				n.flush(ctx)
			}
		}
	}()
	for {
		if n.cfg.Announce != nil {
			if err := n.announce(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("announce", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.relay.Expire(time.Now())
			// Peer exchange with one peer a round: what was missed while
			// a peer was down, or before we knew it, comes back.
			n.mu.Lock()
			ps := Targets(n.upPeersLocked(), "", 1, n.rnd)
			n.mu.Unlock()
			for _, p := range ps {
				n.goPull(ctx, p)
			}
		}
	}
}

// announce sends the node's announcement when its originator says a new
// one is due (Originator.Next).
func (n *Node) announce(ctx context.Context) error {
	n.mu.Lock()
	bits := n.cfg.MinBits
	for _, b := range n.bits {
		bits = max(bits, b)
	}
	n.mu.Unlock()
	a, err := n.orig.Next(ctx, n.cfg.Announce(), bits, time.Now())
	if err != nil || a == nil {
		return err
	}
	env, err := n.relay.Originate(*a, time.Now())
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.own = &env
	n.mu.Unlock()
	n.send("", []Envelope{env})
	return nil
}

// backoff is a failing peer's state.
type backoff struct {
	until time.Time
	wait  time.Duration
}

// Waits before a failing peer is tried again.
const (
	minBackoff = time.Second
	maxBackoff = 2 * time.Minute
)

// failed records an exchange with peer that failed (ok false) or not.
func (n *Node) failed(peer string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ok {
		delete(n.down, peer)
		return
	}
	b := n.down[peer]
	b.wait = min(max(2*b.wait, minBackoff), maxBackoff)
	b.until = time.Now().Add(b.wait)
	n.down[peer] = b
}

// upPeersLocked returns the peers not backing off.
func (n *Node) upPeersLocked() []string {
	now := time.Now()
	up := make([]string, 0, len(n.peers))
	for _, p := range n.peers {
		if b, ok := n.down[p]; !ok || now.After(b.until) {
			up = append(up, p)
		}
	}
	return up
}

// send queues envelopes for up to Fanout peers other than from, among
// those not backing off: a peer that is down does not take the place of
// one that would pass the announcements on.
func (n *Node) send(from string, envs []Envelope) {
	if len(envs) == 0 {
		return
	}
	n.mu.Lock()
	targets := Targets(n.upPeersLocked(), from, n.cfg.Fanout, n.rnd)
	n.mu.Unlock()
	for _, p := range targets {
		n.queuePush(p, envs)
	}
}

// flushEvery is how often queued pushes go out.
const flushEvery = 250 * time.Millisecond

// queuePush queues envelopes for a peer until the next flush.
func (n *Node) queuePush(p string, envs []Envelope) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := append(n.queue[p], envs...)
	if len(q) > MaxBatch {
		q = q[len(q)-MaxBatch:]
	}
	n.queue[p] = q
}

// flush pushes what is queued, one request per peer, each in the
// background.
func (n *Node) flush(ctx context.Context) {
	n.mu.Lock()
	q := n.queue
	n.queue = map[string][]Envelope{}
	n.mu.Unlock()
	for p, envs := range q {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.push(ctx, p, envs)
		}()
	}
}

// Timeouts of one exchange with a peer.
const (
	pushTimeout = 10 * time.Second
	pullTimeout = 30 * time.Second
)

// push sends envelopes to one peer.
func (n *Node) push(ctx context.Context, p string, envs []Envelope) {
	ctx, cancel := context.WithTimeoutCause(ctx, pushTimeout, fmt.Errorf("%s: no answer in %s", p, pushTimeout))
	defer cancel()
	ack, err := n.cfg.Transport.Push(ctx, p, envs)
	n.failed(p, err == nil)
	if err != nil {
		n.log.Debug("push", "peer", p, "err", err)
		return
	}
	n.mu.Lock()
	n.bits[p] = ack.MinBits
	n.mu.Unlock()
}

// goPull pulls from peer in the background.
func (n *Node) goPull(ctx context.Context, peer string) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.pull(ctx, peer)
	}()
}

// pull asks a peer for its directory and takes what it knows.
func (n *Node) pull(ctx context.Context, peer string) {
	ctx, cancel := context.WithTimeoutCause(ctx, pullTimeout, fmt.Errorf("%s: no answer in %s", peer, pullTimeout))
	defer cancel()
	l, err := n.cfg.Transport.List(ctx, peer)
	n.failed(peer, err == nil)
	if err != nil {
		n.log.Info("peer exchange", "peer", peer, "err", err)
		return
	}
	n.mu.Lock()
	n.bits[peer] = l.MinBits
	n.mu.Unlock()
	n.take(peer, l.Envelopes)
}

// Take receives envelopes a peer pushed, from its address as the
// transport sees it, and returns the node's answer.
func (n *Node) Take(from string, envs []Envelope) Ack {
	return Ack{Accepted: n.take(from, envs), MinBits: n.cfg.MinBits}
}

// List answers a peer's list: every announcement the node knows.
func (n *Node) List() Listing {
	return Listing{Envelopes: n.relay.Snapshot(time.Now()), MinBits: n.cfg.MinBits}
}

// dialable reports whether the node may learn addr as a peer: an address
// of this machine (loopback, unspecified) only when the node's own
// market is on this machine (its own announcement or a given peer is
// such an address), so that an announcement cannot make a node on the
// network dial its own local services.
func (n *Node) dialable(addr string) bool {
	if !localAddress(addr) {
		return true
	}
	if n.cfg.Announce != nil && localAddress(n.cfg.Announce().Address) {
		return true
	}
	return slices.ContainsFunc(n.cfg.Peers, localAddress)
}

// localAddress reports whether host:port names this machine.
func localAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// MinBits is the proof of work the node asks of announcements.
func (n *Node) MinBits() uint { return n.cfg.MinBits }

// take receives envelopes from a peer, learns the peers they name and
// forwards what is new.
func (n *Node) take(from string, envs []Envelope) int {
	accepted, forward := n.relay.Receive(from, envs, time.Now())
	for _, a := range accepted {
		if a.Provider != n.self && n.dialable(a.Address) && n.addPeer(a.Address) {
			// A new peer hears of us at once.
			n.mu.Lock()
			own := n.own
			n.mu.Unlock()
			if own != nil {
				n.queuePush(a.Address, []Envelope{*own})
			}
		}
	}
	n.send(from, forward)
	return len(accepted)
}
