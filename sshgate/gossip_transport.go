package sshgate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/market"
)

// ChannelGossip carries the market's announcements between nodes: one
// request and one answer per channel, each a line of JSON. A "push" offers
// envelopes (the answer says how many were taken, and the proof of work
// this node asks); a "list" asks for every announcement the node knows
// (with the multiaddrs of the provider's libp2p market node, through which
// a renter given HOST:PORT joins that market); a "market" asks for those
// multiaddrs alone.
const ChannelGossip = "zennet-gossip-v1@zennet"

// gossipMsg is a request or an answer on the gossip channel.
type gossipMsg struct {
	Type      string            `json:"type"` // push, list, market, ack, directory, error
	Envelopes []json.RawMessage `json:"envelopes,omitempty"`
	Accepted  int               `json:"accepted,omitempty"`
	// MinBits is the proof of work the answering node asks of
	// announcements: pushes below it are refused.
	MinBits uint   `json:"min_bits"`
	Message string `json:"message,omitempty"`
	// Market are the answering provider's libp2p market multiaddrs.
	Market []string `json:"market,omitempty"`
}

const maxGossipMessage = market.MaxBatch*market.MaxEnvelopeSize + 4096

// GossipNode is the market node a gateway serves on ChannelGossip: a
// *market.Node.
type GossipNode interface {
	Take(from string, envs []market.Envelope) market.Ack
	List() market.Listing
	MinBits() uint
}

// GossipTransport is the market's transport over SSH (market.Transport):
// each request is a ChannelGossip channel on a connection kept to the peer
// (one SSH handshake per peer, not per message), authenticated with the
// node's key. Peers' host keys are not pinned: what matters is that every
// announcement is signed by the provider it names.
type GossipTransport struct {
	signer gossh.Signer

	mu     sync.Mutex
	conns  map[string]*conn // kept to peers
	closed bool
}

// NewGossipTransport returns a transport that authenticates as signer.
func NewGossipTransport(signer gossh.Signer) *GossipTransport {
	return &GossipTransport{signer: signer, conns: map[string]*conn{}}
}

// Push offers envelopes to peer.
func (t *GossipTransport) Push(ctx context.Context, peer string, envs []market.Envelope) (market.Ack, error) {
	ans, err := t.request(ctx, peer, gossipMsg{Type: "push", Envelopes: encodeEnvelopes(envs)})
	return market.Ack{Accepted: ans.Accepted, MinBits: ans.MinBits}, err
}

// List asks peer for every announcement it knows.
func (t *GossipTransport) List(ctx context.Context, peer string) (market.Listing, error) {
	ans, err := t.request(ctx, peer, gossipMsg{Type: "list"})
	if err != nil {
		return market.Listing{}, err
	}
	envs, _ := decodeEnvelopes(ans.Envelopes)
	return market.Listing{Envelopes: envs, MinBits: ans.MinBits}, nil
}

// Close closes the connections kept to peers; requests after it fail.
func (t *GossipTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for p, c := range t.conns {
		go c.Close()
		delete(t.conns, p)
	}
	return nil
}

var errTransportClosed = errors.New("gossip transport closed")

// request sends a request to a peer on the connection kept to it,
// dialling again once if the kept connection has gone.
func (t *GossipTransport) request(ctx context.Context, peer string, req gossipMsg) (gossipMsg, error) {
	for attempt := 0; ; attempt++ {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return gossipMsg{}, errTransportClosed
		}
		c := t.conns[peer]
		if c != nil && isDone(c.Done()) {
			// The peer hung up since: dial again.
			delete(t.conns, peer)
			c = nil
		}
		t.mu.Unlock()
		if c == nil {
			var err error
			if c, err = dialGossip(ctx, peer, t.signer); err != nil {
				return gossipMsg{}, err
			}
			t.mu.Lock()
			if old := t.conns[peer]; old != nil || t.closed {
				go c.Close()
				if c = old; c == nil {
					t.mu.Unlock()
					return gossipMsg{}, errTransportClosed
				}
			} else {
				t.conns[peer] = c
			}
			t.mu.Unlock()
		}
		ans, err := requestOn(ctx, c, peer, req)
		if err == nil || ans.Type == "error" || attempt == 1 || ctx.Err() != nil {
			return ans, err
		}
		t.mu.Lock()
		if t.conns[peer] == c {
			delete(t.conns, peer)
		}
		t.mu.Unlock()
		go c.Close()
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

func dialGossip(ctx context.Context, addr string, signer gossh.Signer) (*conn, error) {
	c, err := dialConn(ctx, addr, nil, signer, nil, 10*time.Second)
	if err != nil && !errors.Is(err, ErrUnreachable) {
		err = fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	return c, err
}

// requestOn sends one request on a channel of conn and reads the answer.
// If ctx ends first, conn is closed: a peer that stops answering (a
// process gone while its socket lingers, a network that drops packets)
// must not hold the node's pushes, or its shutdown.
func requestOn(ctx context.Context, conn *conn, addr string, req gossipMsg) (gossipMsg, error) {
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
	fail := func(err error) (gossipMsg, error) {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return gossipMsg{}, fmt.Errorf("%s: %w", addr, err)
	}
	if err := writeGossip(ch, req); err != nil {
		return fail(err)
	}
	line, err := readLine(bufio.NewReaderSize(ch, 64<<10), maxGossipMessage)
	if err != nil {
		return fail(err)
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

// gossipRequest sends one request to the node at addr, on a connection of
// its own, and returns its answer.
func gossipRequest(ctx context.Context, addr string, signer gossh.Signer, req gossipMsg) (gossipMsg, error) {
	c, err := dialGossip(ctx, addr, signer)
	if err != nil {
		return gossipMsg{}, err
	}
	defer func() { go c.Close() }()
	return requestOn(ctx, c, addr, req)
}

// FetchDirectory asks the node at addr for every announcement it knows,
// as a renter's --seed does, and returns them with the multiaddrs of the
// node's libp2p market node (none from a node off that market). The
// announcements are not checked: add them to a market.Directory, which
// does.
func FetchDirectory(ctx context.Context, addr string, signer gossh.Signer) ([]market.Announcement, []string, error) {
	ans, err := gossipRequest(ctx, addr, signer, gossipMsg{Type: "list"})
	if err != nil {
		return nil, nil, err
	}
	if ans.Type != "directory" {
		return nil, nil, fmt.Errorf("%s answered a list with %q", addr, ans.Type)
	}
	envs, err := decodeEnvelopes(ans.Envelopes)
	out := make([]market.Announcement, len(envs))
	for i, e := range envs {
		out[i] = e.Announcement
	}
	return out, ans.Market, err
}

// ErrNoMarket is returned by FetchMarket from a provider that is not on
// the libp2p market (an older one).
var ErrNoMarket = errors.New("the provider is not on the libp2p market")

// FetchMarket asks the provider at addr for its libp2p market node's
// multiaddrs.
func FetchMarket(ctx context.Context, addr string, signer gossh.Signer) ([]string, error) {
	ans, err := gossipRequest(ctx, addr, signer, gossipMsg{Type: "market"})
	if ans.Type == "error" { // an older provider, or one off the market
		return nil, fmt.Errorf("%w: %s: %s", ErrNoMarket, addr, ans.Message)
	}
	if err != nil {
		return nil, err
	}
	if ans.Type != "market" || len(ans.Market) == 0 {
		return nil, fmt.Errorf("%w: %s answered %q %s", ErrNoMarket, addr, ans.Type, ans.Message)
	}
	return ans.Market, nil
}

// Push offers envelopes to the node at addr and returns how many it took
// and the proof of work it asks of announcements.
func Push(ctx context.Context, addr string, signer gossh.Signer, envs []market.Envelope) (accepted int, minBits uint, err error) {
	ans, err := gossipRequest(ctx, addr, signer, gossipMsg{Type: "push", Envelopes: encodeEnvelopes(envs)})
	return ans.Accepted, ans.MinBits, err
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
	serveGossip(g.gossip, g.market, ch, conn.RemoteAddr().String())
}

// serveGossip answers one request of a gossip channel; market, if not
// nil, gives the provider's libp2p market multiaddrs (in a directory and
// on their own).
func serveGossip(node GossipNode, market func() []string, ch io.ReadWriter, from string) {
	addrs := func() []string {
		if market == nil {
			return nil
		}
		return market()
	}
	br := bufio.NewReaderSize(ch, 64<<10)
	line, err := readLine(br, maxGossipMessage)
	if err != nil {
		return
	}
	var req gossipMsg
	if err := json.Unmarshal(line, &req); err != nil {
		writeGossip(ch, gossipMsg{Type: "error", Message: "malformed request: " + err.Error(), MinBits: node.MinBits()})
		return
	}
	switch req.Type {
	case "list":
		l := node.List()
		writeGossip(ch, gossipMsg{Type: "directory", Envelopes: encodeEnvelopes(l.Envelopes), MinBits: l.MinBits, Market: addrs()})
	case "market":
		if a := addrs(); len(a) == 0 {
			writeGossip(ch, gossipMsg{Type: "error", Message: "this provider is not on the libp2p market", MinBits: node.MinBits()})
		} else {
			writeGossip(ch, gossipMsg{Type: "market", Market: a, MinBits: node.MinBits()})
		}
	case "push":
		envs, err := decodeEnvelopes(req.Envelopes)
		if err != nil {
			writeGossip(ch, gossipMsg{Type: "error", Message: err.Error(), MinBits: node.MinBits()})
			return
		}
		ack := node.Take(from, envs)
		writeGossip(ch, gossipMsg{Type: "ack", Accepted: ack.Accepted, MinBits: ack.MinBits})
	default:
		writeGossip(ch, gossipMsg{Type: "error", Message: fmt.Sprintf("unknown request %q", req.Type), MinBits: node.MinBits()})
	}
}

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
