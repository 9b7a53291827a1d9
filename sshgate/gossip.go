package sshgate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/market"
)

// ChannelGossip carries the market's announcements between nodes: one
// request and one answer per channel, each a line of JSON. A "push" offers
// envelopes (the answer says how many were taken, and the proof of work
// this node asks); a "list" asks for every announcement the node knows.
const ChannelGossip = "zennet-gossip-v1@zennet"

// gossipMsg is a request or an answer on the gossip channel.
type gossipMsg struct {
	Type      string            `json:"type"` // push, list, ack, directory, error
	Envelopes []json.RawMessage `json:"envelopes,omitempty"`
	Accepted  int               `json:"accepted,omitempty"`
	// MinBits is the proof of work the answering node asks of
	// announcements: pushes below it are refused.
	MinBits uint   `json:"min_bits"`
	Message string `json:"message,omitempty"`
}

const maxGossipMessage = market.MaxBatch*market.MaxEnvelopeSize + 4096

// GossipConfig configures a provider's part in the market.
type GossipConfig struct {
	// Signer is the provider's host key: it signs the announcements and
	// authenticates to peers.
	Signer gossh.Signer
	// Announce returns the provider's current announcement, unsigned and
	// unstamped (Provider, Address, Capacity, prices, methods); nil makes
	// a node that relays but does not sell (a seed).
	Announce func() market.Announcement
	// Peers are the nodes to gossip with at first (--peer); more are
	// learned from the announcements received.
	Peers []string
	// MinBits is the proof of work asked of announcements received.
	MinBits uint
	// Every is how often the provider announces itself again (default
	// one minute); Validity how long an announcement lasts (default ten
	// minutes).
	Every, Validity time.Duration
	// Fanout bounds the peers each announcement is sent to (default
	// market.DefaultFanout).
	Fanout int
	// MaxPeers bounds the peers learned from announcements, besides
	// Peers (default DefaultMaxPeers): every learned peer is dialled, so
	// announcements naming many addresses must not make the node dial
	// without end.
	MaxPeers int
	Log      *slog.Logger
}

// Gossip is a provider's node of the market: it keeps the directory of
// announcements, serves it on ChannelGossip, announces itself every
// GossipConfig.Every, and relays what it learns, within the market's
// bounds (each announcement forwarded once per node, to at most Fanout
// peers, at most market.DefaultMaxHops times).
type Gossip struct {
	cfg   GossipConfig
	relay *market.Relay
	log   *slog.Logger
	self  string // our Provider string

	mu      sync.Mutex
	peers   []string
	bits    map[string]uint // what each peer asks
	seq     uint64
	own     *market.Envelope             // the latest announcement of ours
	queue   map[string][]market.Envelope // to push, by peer, at the next flush
	conns   map[string]*conn             // kept to peers
	ctx     context.Context              // Run's: pushes end with it
	wg      sync.WaitGroup
	rnd     *rand.Rand
	running bool
}

// NewGossip returns a provider's gossip node.
func NewGossip(cfg GossipConfig) *Gossip {
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	if cfg.Validity <= 0 {
		cfg.Validity = 10 * time.Minute
	}
	if cfg.Fanout <= 0 {
		cfg.Fanout = market.DefaultFanout
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	g := &Gossip{cfg: cfg, log: cfg.Log.With("subsystem", "gossip"), bits: map[string]uint{}, queue: map[string][]market.Envelope{},
		conns: map[string]*conn{},
		rnd:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	g.self = market.ProviderString(cfg.Signer.PublicKey())
	g.relay = market.NewRelay(market.NewDirectory(0), market.RelayConfig{MinBits: cfg.MinBits,
		OnReject: func(from string, a *market.Announcement, err error) {
			g.log.Info("announcement refused", "from", from, "address", a.Address, "err", err)
		}})
	for _, p := range cfg.Peers {
		g.addPeer(p)
	}
	return g
}

// Directory returns what the node knows.
func (g *Gossip) Directory() *market.Directory { return g.relay.Directory() }

// Stats returns the relay's counts.
func (g *Gossip) Stats() market.RelayStats { return g.relay.Stats() }

// addPeer adds a peer and reports whether it is new.
func (g *Gossip) addPeer(addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if addr == "" || slices.Contains(g.peers, addr) {
		return false
	}
	if len(g.peers) >= len(g.cfg.Peers)+g.cfg.MaxPeers && !slices.Contains(g.cfg.Peers, addr) {
		g.log.Debug("peer not added: enough peers", "address", addr, "peers", len(g.peers))
		return false
	}
	g.peers = append(g.peers, addr)
	return true
}

// DefaultMaxPeers is GossipConfig.MaxPeers' default: enough for every
// provider of a market of a few hundred to be two hops away.
const DefaultMaxPeers = 128

// Peers returns the nodes it gossips with.
func (g *Gossip) Peers() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.peers)
}

// Run announces the provider and keeps the directory until ctx ends.
func (g *Gossip) Run(ctx context.Context) {
	g.mu.Lock()
	g.ctx = ctx
	g.mu.Unlock()
	// First learn what the peers know (peer exchange), then announce.
	for _, p := range g.Peers() {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.pull(ctx, p)
		}()
	}
	t := time.NewTicker(g.cfg.Every)
	defer t.Stop()
	// Pushes to a peer go out in batches, a connection per peer per
	// flush however many announcements it gets meanwhile.
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-flush.C:
				g.flush()
			}
		}
	}()
	for {
		if g.cfg.Announce != nil {
			if err := g.announce(ctx); err != nil && ctx.Err() == nil {
				g.log.Warn("announce", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			g.wg.Wait()
			g.closeConns()
			return
		case <-t.C:
			g.relay.Expire(time.Now())
			// Peer exchange with one peer a round: what was missed while
			// a peer was down, or before we knew it, comes back.
			g.mu.Lock()
			ps := market.Targets(g.peers, "", 1, g.rnd)
			g.mu.Unlock()
			for _, p := range ps {
				g.wg.Add(1)
				go func() {
					defer g.wg.Done()
					g.pull(ctx, p)
				}()
			}
		}
	}
}

// announce mints, signs and sends the provider's announcement.
func (g *Gossip) announce(ctx context.Context) error {
	a := g.cfg.Announce()
	now := time.Now().UTC().Truncate(time.Second)
	g.mu.Lock()
	g.seq = max(g.seq+1, uint64(time.Now().UnixNano()))
	a.Seq = g.seq
	bits := g.cfg.MinBits
	for _, b := range g.bits {
		bits = max(bits, b)
	}
	g.mu.Unlock()
	a.Provider, a.Issued, a.Expires = g.self, now, now.Add(g.cfg.Validity)
	if err := market.Mint(ctx, &a, bits); err != nil {
		return err
	}
	if err := a.Sign(g.cfg.Signer); err != nil {
		return err
	}
	env, err := g.relay.Originate(a, time.Now())
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.own = &env
	g.mu.Unlock()
	g.send("", []market.Envelope{env})
	return nil
}

// send pushes envelopes to up to Fanout peers other than from, in the
// background.
func (g *Gossip) send(from string, envs []market.Envelope) {
	if len(envs) == 0 {
		return
	}
	g.mu.Lock()
	targets := market.Targets(g.peers, from, g.cfg.Fanout, g.rnd)
	g.mu.Unlock()
	for _, p := range targets {
		g.queuePush(p, envs)
	}
}

// flushEvery is how often queued pushes go out.
const flushEvery = 250 * time.Millisecond

// queuePush queues envelopes for a peer until the next flush.
func (g *Gossip) queuePush(p string, envs []market.Envelope) {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := append(g.queue[p], envs...)
	if len(q) > market.MaxBatch {
		q = q[len(q)-market.MaxBatch:]
	}
	g.queue[p] = q
}

// flush pushes what is queued, one request per peer.
func (g *Gossip) flush() {
	g.mu.Lock()
	q := g.queue
	g.queue = map[string][]market.Envelope{}
	g.mu.Unlock()
	for p, envs := range q {
		g.push(p, envs)
	}
}

// push sends envelopes to one peer in the background.
func (g *Gossip) push(p string, envs []market.Envelope) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.mu.Lock()
		parent := g.ctx
		g.mu.Unlock()
		ctx, cancel := context.WithTimeout(parent, 10*time.Second)
		defer cancel()
		ack, err := g.request(ctx, p, gossipMsg{Type: "push", Envelopes: encodeEnvelopes(envs)})
		if err != nil {
			g.log.Debug("push", "peer", p, "err", err)
			return
		}
		g.mu.Lock()
		g.bits[p] = ack.MinBits
		g.mu.Unlock()
	}()
}

// pull asks a peer for its directory and takes what it knows.
func (g *Gossip) pull(ctx context.Context, peer string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ans, err := g.request(ctx, peer, gossipMsg{Type: "list"})
	if err != nil {
		g.log.Info("peer exchange", "peer", peer, "err", err)
		return
	}
	g.mu.Lock()
	g.bits[peer] = ans.MinBits
	g.mu.Unlock()
	envs, _ := decodeEnvelopes(ans.Envelopes)
	g.take(peer, envs)
}

// take receives envelopes from a peer, learns the peers they name and
// forwards what is new.
func (g *Gossip) take(from string, envs []market.Envelope) int {
	accepted, forward := g.relay.Receive(from, envs, time.Now())
	for _, a := range accepted {
		if a.Provider != g.self && g.addPeer(a.Address) {
			// A new peer hears of us at once.
			g.mu.Lock()
			own := g.own
			g.mu.Unlock()
			if own != nil {
				g.queuePush(a.Address, []market.Envelope{*own})
			}
		}
	}
	g.send(from, forward)
	return len(accepted)
}

// serve answers one gossip channel.
func (g *Gossip) serve(ch io.ReadWriter, from string) {
	br := bufio.NewReaderSize(ch, 64<<10)
	line, err := readLine(br, maxGossipMessage)
	if err != nil {
		return
	}
	var req gossipMsg
	if err := json.Unmarshal(line, &req); err != nil {
		writeGossip(ch, gossipMsg{Type: "error", Message: "malformed request: " + err.Error(), MinBits: g.cfg.MinBits})
		return
	}
	switch req.Type {
	case "list":
		writeGossip(ch, gossipMsg{Type: "directory", Envelopes: encodeEnvelopes(g.relay.Snapshot(time.Now())), MinBits: g.cfg.MinBits})
	case "push":
		envs, err := decodeEnvelopes(req.Envelopes)
		if err != nil {
			writeGossip(ch, gossipMsg{Type: "error", Message: err.Error(), MinBits: g.cfg.MinBits})
			return
		}
		n := g.take(from, envs)
		writeGossip(ch, gossipMsg{Type: "ack", Accepted: n, MinBits: g.cfg.MinBits})
	default:
		writeGossip(ch, gossipMsg{Type: "error", Message: fmt.Sprintf("unknown request %q", req.Type), MinBits: g.cfg.MinBits})
	}
}

// Wait waits for the pushes under way.
func (g *Gossip) Wait() { g.wg.Wait() }

func encodeEnvelopes(envs []market.Envelope) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(envs))
	for _, e := range envs {
		if b, err := market.EncodeEnvelope(e); err == nil {
			out = append(out, json.RawMessage(b[:len(b)-1]))
		}
	}
	return out
}

func decodeEnvelopes(raw []json.RawMessage) ([]market.Envelope, error) {
	if len(raw) > market.MaxBatch {
		return nil, fmt.Errorf("%d envelopes, at most %d at once", len(raw), market.MaxBatch)
	}
	var out []market.Envelope
	var errs []error
	for _, r := range raw {
		e, err := market.DecodeEnvelope(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("message exceeds %d bytes", limit)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return line, nil
	}
}

func writeGossip(w io.Writer, m gossipMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// gossipRequest sends one request to the node at addr, on a connection of
// its own, and returns its answer. The node's host key is not pinned: what
// matters is that every announcement is signed by the provider it names.
func gossipRequest(ctx context.Context, addr string, signer gossh.Signer, req gossipMsg) (gossipMsg, error) {
	conn, err := dialGossip(ctx, addr, signer)
	if err != nil {
		return gossipMsg{}, err
	}
	defer conn.Close()
	return requestOn(ctx, conn, addr, req)
}

func dialGossip(ctx context.Context, addr string, signer gossh.Signer) (*conn, error) {
	c, err := dialConn(ctx, addr, signer, nil, 10*time.Second)
	if err != nil && !errors.Is(err, ErrUnreachable) {
		err = fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	return c, err
}

// gossipTimeout bounds one request to a peer, from opening its channel to
// reading the answer.
const gossipTimeout = 30 * time.Second

// requestOn sends one request on a channel of conn. A request that does not
// complete within gossipTimeout, or whose ctx ends, closes conn: a peer
// that stops answering (a process gone while its socket lingers, a
// network that drops packets) must not hold the node's pushes, or its
// shutdown, forever.
func requestOn(ctx context.Context, conn *conn, addr string, req gossipMsg) (gossipMsg, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, gossipTimeout, fmt.Errorf("%s: no answer in %s", addr, gossipTimeout))
	defer cancel()
	ch, creqs, err := conn.openChannel(ctx, ChannelGossip, nil)
	if err != nil {
		return gossipMsg{}, fmt.Errorf("%s: %w", addr, err)
	}
	// The channel is open: closing the connection ends its reads and
	// writes, so it is all a stalled answer needs.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	go gossh.DiscardRequests(creqs)
	defer ch.Close()
	if err := writeGossip(ch, req); err != nil {
		return gossipMsg{}, err
	}
	line, err := readLine(bufio.NewReaderSize(ch, 64<<10), maxGossipMessage)
	if err != nil {
		return gossipMsg{}, fmt.Errorf("%s: %w", addr, err)
	}
	var ans gossipMsg
	if err := json.Unmarshal(line, &ans); err != nil {
		return gossipMsg{}, fmt.Errorf("%s: malformed answer: %w", addr, err)
	}
	if ans.Type == "error" {
		return ans, fmt.Errorf("%s: %s", addr, ans.Message)
	}
	return ans, nil
}

// request sends a request to a peer on the connection kept to it (one
// SSH handshake per peer, not per message), dialling again once if the
// kept connection has gone.
func (g *Gossip) request(ctx context.Context, peer string, req gossipMsg) (gossipMsg, error) {
	for attempt := 0; ; attempt++ {
		g.mu.Lock()
		conn := g.conns[peer]
		if conn != nil && isDone(conn.Done()) {
			// The peer hung up since: dial again.
			delete(g.conns, peer)
			conn = nil
		}
		g.mu.Unlock()
		if conn == nil {
			var err error
			if conn, err = dialGossip(ctx, peer, g.cfg.Signer); err != nil {
				return gossipMsg{}, err
			}
			g.mu.Lock()
			if old := g.conns[peer]; old != nil {
				conn.Close()
				conn = old
			} else {
				g.conns[peer] = conn
			}
			g.mu.Unlock()
		}
		ans, err := requestOn(ctx, conn, peer, req)
		if err == nil || ans.Type == "error" || attempt == 1 || ctx.Err() != nil {
			return ans, err
		}
		g.mu.Lock()
		if g.conns[peer] == conn {
			delete(g.conns, peer)
		}
		g.mu.Unlock()
		conn.Close()
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// closeConns closes the connections kept to peers.
func (g *Gossip) closeConns() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p, c := range g.conns {
		c.Close()
		delete(g.conns, p)
	}
}

// FetchDirectory asks the node at addr for every announcement it knows,
// as a renter's --seed does. The announcements are not checked: add them
// to a market.Directory, which does.
func FetchDirectory(ctx context.Context, addr string, signer gossh.Signer) ([]market.Announcement, error) {
	ans, err := gossipRequest(ctx, addr, signer, gossipMsg{Type: "list"})
	if err != nil {
		return nil, err
	}
	if ans.Type != "directory" {
		return nil, fmt.Errorf("%s answered a list with %q", addr, ans.Type)
	}
	envs, err := decodeEnvelopes(ans.Envelopes)
	out := make([]market.Announcement, len(envs))
	for i, e := range envs {
		out[i] = e.Announcement
	}
	return out, err
}

// gossipChannel is the gateway's handler of ChannelGossip.
func (g *Gateway) gossipChannel(_ *ssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, _ ssh.Context) {
	if g.gossip == nil {
		nc.Reject(gossh.UnknownChannelType, "this provider does not take part in the market")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go gossh.DiscardRequests(reqs)
	g.gossip.serve(ch, conn.RemoteAddr().String())
}

// Push offers envelopes to the node at addr and returns how many it took
// and the proof of work it asks of announcements.
func Push(ctx context.Context, addr string, signer gossh.Signer, envs []market.Envelope) (accepted int, minBits uint, err error) {
	ans, err := gossipRequest(ctx, addr, signer, gossipMsg{Type: "push", Envelopes: encodeEnvelopes(envs)})
	return ans.Accepted, ans.MinBits, err
}
