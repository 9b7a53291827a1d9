package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"
	"golang.org/x/crypto/ssh"
	"golang.org/x/time/rate"

	"github.com/zennet/zennet/internal/peeraddr"
	"github.com/zennet/zennet/market"
)

// Names on the wire.
const (
	// Topic is the gossipsub topic of announcements: each message is one
	// announcement (market.EncodeAnnouncement) published by its provider.
	Topic = "zennet/announce/1"
	// Namespace is what providers advertise in the DHT: a renter finds
	// providers by looking it up, then asks each for its announcement.
	Namespace = "zennet/providers/1"
	// DHTPrefix keeps the market's DHT apart from IPFS's and others'.
	DHTPrefix = protocol.ID("/zennet")
	// AnnouncementProtocol is the stream on which a provider answers with
	// its current announcement and closes: how a node learns a provider
	// it connects to without waiting for its next announcement.
	AnnouncementProtocol = protocol.ID("/zennet/announcement/1")
)

// Bounds.
const (
	// fetchTimeout bounds asking a peer for its announcement.
	fetchTimeout = 10 * time.Second
	// bootstrapTimeout bounds each dial of a bootstrap peer.
	bootstrapTimeout = 10 * time.Second
	// firstPeerWait bounds the wait for a peer on the topic before the
	// first announcement.
	firstPeerWait = 5 * time.Second
	// maxFetches bounds the announcements asked of new peers at once.
	maxFetches = 8
	// A peer may bring announcements of providers new to the node at
	// newRate a second after a burst of newBurst; past that they are
	// ignored (not kept, not forwarded) and the peer's score falls by one
	// for each, recovering with a half-life of penaltyHalfLife. Honest
	// traffic is below it: renewals of known providers do not count, and
	// a new node, or a market of a thousand providers started at once,
	// hears at most a thousand new ones from one mesh peer (a burst of 100
	// lost a third of such a market's announcements at its seeds:
	// BenchmarkMarketScale). A flood of cheap identities from one peer
	// goes past it.
	newRate, newBurst = 20, 1000
	penaltyHalfLife   = time.Minute
	// Connection manager: trimmed to low once above high.
	connLow, connHigh = 64, 256
)

// Config configures a Node.
type Config struct {
	// Key is the node's ed25519 key: its SSH host key (a provider's) or
	// SSH key (a renter's). Its peer ID is derived from it (PeerID).
	Key ed25519.PrivateKey
	// Listen are the multiaddrs to listen on (default: every interface,
	// TCP and QUIC, ports chosen by the system).
	Listen []string
	// Bootstrap are the peers to join the market through (--seed).
	Bootstrap []peer.AddrInfo
	// Resolve, if not nil, finds more bootstrap peers each time the node
	// bootstraps (a provider's HOST:PORT peers, asked where their market
	// nodes are), within the context it is given.
	Resolve func(context.Context) []peer.AddrInfo
	// Announce returns the node's current offer, unsigned and unstamped
	// (market.Originator.Next); nil makes a node that relays and learns
	// but does not sell (a seed or a renter).
	Announce func() market.Announcement
	// MinBits is the proof of work asked of announcements.
	MinBits uint
	// Every is how often the node looks at its offer (default a minute);
	// Validity how long an announcement lasts (default ten minutes).
	Every, Validity time.Duration
	// Directory receives the announcements accepted (default a new one of
	// market.MaxEntries).
	Directory *market.Directory
	// Client makes a node that does not listen and is a DHT client only:
	// a renter looking for providers.
	Client bool
	// Server makes the node a DHT server whatever its reachability (seeds;
	// nodes on one machine or LAN, as in tests); otherwise it serves once
	// AutoNAT finds it unreachable (behind a NAT), and is a client then.
	Server bool
	// Relay, if not nil, makes the node a circuit relay for others (a
	// provider's --relay), within its limits.
	Relay *Relay
	Log   *slog.Logger

	// host, if set, is used instead of a host of the node's own (tests
	// and benchmarks: libp2p's in-memory mocknet); tracer sees gossipsub's
	// messages.
	host   host.Host
	tracer pubsub.RawTracer
}

// Stats counts what the topic's validator decided.
type Stats struct {
	// Accepted were new and valid: added to the directory and forwarded.
	Accepted int64
	// Ignored were valid but not new (a Seq already known): neither kept
	// nor forwarded, and the peer is not penalised.
	Ignored int64
	// Throttled were of providers new to the node, from a peer past its
	// rate of those (see newRate).
	Throttled int64
	// Rejected failed a check (undecodable, forged, published by a peer
	// other than its provider, expired, too little work): dropped, and
	// the peer that sent it penalised by gossipsub's scoring.
	Rejected int64
}

// Node is a market node on libp2p.
type Node struct {
	cfg   Config
	h     host.Host
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	dir   *market.Directory
	kad   *dht.IpfsDHT
	disc  *drouting.RoutingDiscovery
	orig  *market.Originator // nil when not selling
	log   *slog.Logger

	accepted, ignored, rejected, throttled atomic.Int64
	lonely                                 atomic.Bool   // the last publication had no peer on the topic
	reach                                  atomic.Int32  // network.Reachability, as AutoNAT last said
	sshOn                                  atomic.Bool   // ListenSSH was called
	kick, kickAdv                          chan struct{} // announce, advertise now: the node's addresses changed

	mu     sync.Mutex
	closed bool
	scores map[peer.ID]float64 // gossipsub's, refreshed every second
	limits map[peer.ID]*peerLimit
}

// peerLimit is what a peer may still bring of new providers, and its
// penalty for what it brought past that.
type peerLimit struct {
	rate    *rate.Limiter
	penalty float64
	at      time.Time // of penalty
}

// New starts a node's host and joins the topic; Run announces and keeps
// it going, Close stops it.
func New(ctx context.Context, cfg Config) (*Node, error) {
	key, err := Key(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	if cfg.Validity <= 0 {
		cfg.Validity = 10 * time.Minute
	}
	if cfg.Directory == nil {
		cfg.Directory = market.NewDirectory(0)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, dir: cfg.Directory, log: cfg.Log.With("subsystem", "p2p"), kick: make(chan struct{}, 1), kickAdv: make(chan struct{}, 1)}
	if cfg.Announce != nil {
		signer, err := ssh.NewSignerFromKey(cfg.Key)
		if err != nil {
			return nil, err
		}
		n.orig = market.NewOriginator(signer, cfg.Validity)
	}
	h := cfg.host
	if h == nil {
		if h, err = newHost(key, cfg); err != nil {
			return nil, err
		}
	}
	n.h = h
	// A node is a DHT server unless AutoNAT finds it unreachable: one on a
	// LAN or loopback (reachability unknown) serves its market.
	mode := dht.ModeAutoServer
	switch {
	case cfg.Client:
		mode = dht.ModeClient
	case cfg.Server:
		mode = dht.ModeServer
	}
	n.kad, err = dht.New(h, dht.Mode(mode), dht.ProtocolPrefix(DHTPrefix), dht.DisableValues(),
		dht.BootstrapPeers(cfg.Bootstrap...))
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("start the market's DHT: %w", err)
	}
	n.disc = drouting.NewRoutingDiscovery(n.kad)
	opts := []pubsub.Option{pubsub.WithMessageIdFn(MessageID),
		pubsub.WithMaxMessageSize(market.MaxAnnouncementSize + 4096),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithPeerExchange(true),
		// A market that starts at once (or a node that joins one) moves a
		// burst of announcements: past these queues gossipsub drops
		// messages (with the defaults of 32, a renter of
		// BenchmarkMarketScale never heard 28% of a burst of 1,000).
		pubsub.WithPeerOutboundQueueSize(1024),
		pubsub.WithValidateQueueSize(1024),
		pubsub.WithPeerScore(scoreParams(n.appScore), scoreThresholds()),
		pubsub.WithPeerScoreInspect(func(s map[peer.ID]float64) {
			n.mu.Lock()
			n.scores = s
			n.mu.Unlock()
		}, time.Second)}
	if cfg.tracer != nil {
		opts = append(opts, pubsub.WithRawTracer(cfg.tracer))
	}
	n.ps, err = pubsub.NewGossipSub(ctx, h, opts...)
	if err == nil {
		err = n.ps.RegisterTopicValidator(Topic, n.validate)
	}
	if err == nil {
		n.topic, err = n.ps.Join(Topic)
	}
	if err == nil {
		n.sub, err = n.topic.Subscribe()
	}
	if err != nil {
		n.kad.Close()
		h.Close()
		return nil, fmt.Errorf("join the market's topic: %w", err)
	}
	h.SetStreamHandler(AnnouncementProtocol, n.serveAnnouncement)
	return n, nil
}

// newHost starts the node's own libp2p host: listening where cfg says
// (not at all for a client), its connections trimmed by a manager.
func newHost(key crypto.PrivKey, cfg Config) (host.Host, error) {
	cm, err := connmgr.NewConnManager(connLow, connHigh)
	if err != nil {
		return nil, err
	}
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}
	}
	rm, err := resourceManager()
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{libp2p.Identity(key), libp2p.ListenAddrStrings(listen...), libp2p.ConnectionManager(cm), libp2p.UserAgent("zennet"),
		libp2p.ResourceManager(rm)}
	if cfg.Client {
		// A client dials through relays too: providers behind NATs are
		// reached at relayed addresses.
		opts[1], opts = libp2p.NoListenAddrs, append(opts, libp2p.EnableRelay())
	}
	var self atomic.Pointer[host.Host]
	if !cfg.Client {
		opts = append(opts, natOptions(cfg, &self)...)
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("start the market's libp2p host on %v: %w", listen, err)
	}
	self.Store(&h)
	return h, nil
}

// MessageID names a message by its author and content: the same
// announcement relayed by many peers is one message. The author is part
// of it because gossipsub remembers a message as seen before validating
// it: were the content alone the ID, a peer that sent a provider's
// announcement as its own first (rejected) would make the provider's own
// message a duplicate, dropped unseen.
//
// Peers of the topic that are not Nodes (tests' raw peers) use it too.
func MessageID(m *pb.Message) string {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(m.From))))
	h.Write(m.From)
	h.Write(m.Data)
	return string(h.Sum(nil))
}

// scoreParams are gossipsub's peer scoring for the topic: a peer that
// forwards announcements failing the validator loses score fast (each
// counts squared) and is graylisted; one that delivers new ones first
// gains a little; app is what a peer loses for a flood of new providers
// (Node.appScore). Peers on one address are not penalised for it: a
// provider's machine may run several nodes, and tests run on loopback.
func scoreParams(app func(peer.ID) float64) *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		AppSpecificScore:     app,
		AppSpecificWeight:    1,
		DecayInterval:        time.Second,
		DecayToZero:          0.01,
		RetainScore:          10 * time.Minute,
		Topics: map[string]*pubsub.TopicScoreParams{Topic: {
			SkipAtomicValidation:           true,
			TopicWeight:                    1,
			TimeInMeshWeight:               0.01,
			TimeInMeshQuantum:              time.Second,
			TimeInMeshCap:                  300,
			FirstMessageDeliveriesWeight:   0.5,
			FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
			FirstMessageDeliveriesCap:      20,
			InvalidMessageDeliveriesWeight: -10,
			InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
		}},
	}
}

// scoreThresholds: below -10 a peer gets no gossip, below -50 none of our
// own publications, below -100 nothing it sends is looked at.
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{GossipThreshold: -10, PublishThreshold: -50, GraylistThreshold: -100,
		AcceptPXThreshold: 5, OpportunisticGraftThreshold: 2}
}

// validate is the topic's validator: an announcement is forwarded only if
// it decodes, was published by the peer its provider key names, passes
// market.Check (signature, times, work) and is new to the directory, which
// takes it.
func (n *Node) validate(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	now := time.Now()
	a, err := market.DecodeAnnouncement(m.Data)
	if err == nil && !n.mayBringNew(from, a.Provider, now) {
		n.throttled.Add(1)
		return pubsub.ValidationIgnore
	}
	added := false
	if err == nil {
		added, err = n.check(m.GetFrom(), a, now)
	}
	switch {
	case err != nil:
		n.rejected.Add(1)
		n.log.Info("announcement refused", "from", from, "author", m.GetFrom(), "err", err)
		return pubsub.ValidationReject
	case !added:
		n.ignored.Add(1)
		return pubsub.ValidationIgnore
	}
	n.accepted.Add(1)
	return pubsub.ValidationAccept
}

// mayBringNew says whether peer from may bring an announcement of
// provider: yes unless the directory does not hold that provider and the
// peer is past its rate of new ones, which then counts against its score.
// Our own messages are never held back.
func (n *Node) mayBringNew(from peer.ID, provider string, now time.Time) bool {
	if from == n.h.ID() {
		return true
	}
	if _, known := n.dir.Get(provider); known {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.limits == nil {
		n.limits = map[peer.ID]*peerLimit{}
	}
	l := n.limits[from]
	if l == nil {
		if len(n.limits) >= 4*connHigh {
			n.pruneLimitsLocked(now)
		}
		l = &peerLimit{rate: rate.NewLimiter(newRate, newBurst)}
		n.limits[from] = l
	}
	if l.rate.AllowN(now, 1) {
		return true
	}
	l.penalty = decayed(l.penalty, l.at, now) + 1
	l.at = now
	return false
}

// decayed is penalty p, set at, as of now.
func decayed(p float64, at, now time.Time) float64 {
	if p == 0 {
		return 0
	}
	return p * math.Exp2(-now.Sub(at).Seconds()/penaltyHalfLife.Seconds())
}

// pruneLimitsLocked forgets the peers whose limit is full again and whose
// penalty has all but gone.
func (n *Node) pruneLimitsLocked(now time.Time) {
	for id, l := range n.limits {
		if l.rate.TokensAt(now) >= newBurst && decayed(l.penalty, l.at, now) < 0.01 {
			delete(n.limits, id)
		}
	}
}

// appScore is gossipsub's application-specific score of a peer: minus its
// penalty for bringing new providers past its rate.
func (n *Node) appScore(id peer.ID) float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.limits[id]
	if l == nil {
		return 0
	}
	return -decayed(l.penalty, l.at, time.Now())
}

// check checks that a, an announcement authored by the peer author, is
// that peer's own, and adds it to the directory: false and no error when
// it is valid but not new.
func (n *Node) check(author peer.ID, a market.Announcement, now time.Time) (bool, error) {
	k, err := a.ProviderKey()
	if err != nil {
		return false, err
	}
	id, err := PeerID(k)
	if err != nil {
		return false, err
	}
	if id != author {
		return false, fmt.Errorf("%w: announcement of %s (peer %s) sent as peer %s's own", market.ErrInvalid, a.Fingerprint(), id, author)
	}
	if peeraddr.Is(a.Address) {
		if err := checkAddress(a.Address, id); err != nil {
			return false, fmt.Errorf("%w: %v", market.ErrInvalid, err)
		}
	}
	return n.dir.Add(a, now, n.cfg.MinBits)
}

// serveAnnouncement answers a peer with the node's latest announcement.
func (n *Node) serveAnnouncement(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(fetchTimeout))
	if n.orig == nil {
		s.Reset()
		return
	}
	a, ok := n.orig.Last()
	if !ok {
		s.Reset()
		return
	}
	b, err := market.EncodeAnnouncement(a)
	if err != nil {
		s.Reset()
		return
	}
	s.Write(b)
}

// ErrNoAnnouncement is returned by Fetch from a peer that sells nothing.
var ErrNoAnnouncement = errors.New("the peer has no announcement")

// Fetch asks peer id for its announcement and adds it to the directory,
// with the checks of the topic: an announcement of another provider is
// refused. It returns what the directory holds for the peer.
func (n *Node) Fetch(ctx context.Context, id peer.ID) (market.Announcement, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	s, err := n.h.NewStream(network.WithAllowLimitedConn(ctx, "announcement"), id, AnnouncementProtocol)
	if errors.As(err, new(msmux.ErrNotSupported[protocol.ID])) {
		return market.Announcement{}, fmt.Errorf("%w: %s does not serve announcements", ErrNoAnnouncement, id)
	}
	if err != nil {
		return market.Announcement{}, fmt.Errorf("ask %s for its announcement: %w", id, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	s.CloseWrite()
	b, err := io.ReadAll(io.LimitReader(s, market.MaxAnnouncementSize+2))
	if err != nil {
		if len(b) == 0 {
			return market.Announcement{}, fmt.Errorf("%w: %s: %v", ErrNoAnnouncement, id, err)
		}
		return market.Announcement{}, fmt.Errorf("read %s's announcement: %w", id, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return market.Announcement{}, fmt.Errorf("%w: %s", ErrNoAnnouncement, id)
	}
	a, err := market.DecodeAnnouncement(b)
	if err == nil {
		_, err = n.check(id, a, time.Now())
	}
	if err != nil {
		return market.Announcement{}, fmt.Errorf("%s's announcement: %w", id, err)
	}
	// What the directory holds for the provider: this one, or a newer one
	// the topic brought meanwhile.
	if held, ok := n.dir.Get(a.Provider); ok {
		return held, nil
	}
	return a, nil
}

// idKey is the SSH fingerprint of a peer's key.
func (n *Node) idKey(id peer.ID) (string, error) {
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return "", err
	}
	raw, err := pk.Raw()
	if err != nil {
		return "", err
	}
	sk, err := ssh.NewPublicKey(ed25519.PublicKey(raw))
	if err != nil {
		return "", err
	}
	return ssh.FingerprintSHA256(sk), nil
}

// Run joins the market through the bootstrap peers, announces the node
// whenever its offer changes (or half its validity has passed), and
// expires old announcements, until ctx ends.
func (n *Node) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if _, err := n.sub.Next(ctx); err != nil {
				return // the validator has kept what was new
			}
		}
	}()
	events, err := n.topic.EventHandler()
	if err != nil {
		n.log.Warn("topic events", "err", err)
	} else {
		defer events.Cancel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.peerEvents(ctx, events)
		}()
	}
	// A bootstrap peer that takes the connection and never answers holds
	// its dial for bootstrapTimeout: the others go on meanwhile.
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.bootstrap(ctx)
	}()
	if n.orig != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			n.advertise(ctx)
		}()
		go func() {
			defer wg.Done()
			n.watchAddrs(ctx, func() {
				for _, k := range []chan struct{}{n.kick, n.kickAdv} {
					select {
					case k <- struct{}{}:
					default:
					}
				}
			})
		}()
	}
	// The first announcement waits a moment for a peer on the topic, and
	// then for gossipsub's first heartbeat: a message published before
	// the peer's stream is set up goes to nobody (seen here: a peer was
	// listed on the topic and the message still did not reach it).
	if n.orig != nil && len(n.cfg.Bootstrap) > 0 {
		wait, cancel := context.WithTimeout(ctx, firstPeerWait)
		for len(n.topic.ListPeers()) == 0 && wait.Err() == nil {
			select {
			case <-wait.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		select {
		case <-wait.Done():
		case <-time.After(pubsub.GossipSubHeartbeatInterval):
		}
		cancel()
	}
	t := time.NewTicker(n.cfg.Every)
	defer t.Stop()
	for {
		if err := n.announce(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("announce", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		case <-t.C:
			n.dir.Expire(time.Now())
			if len(n.h.Network().Peers()) == 0 {
				n.bootstrap(ctx)
			}
		}
	}
}

// peerEvents handles peers joining the topic: a provider whose last
// announcement reached no one publishes it again, and the node asks each
// new peer for its own announcement (a provider that announced before we
// were on the topic is otherwise not heard of until its offer changes).
func (n *Node) peerEvents(ctx context.Context, events *pubsub.TopicEventHandler) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxFetches)
	for {
		ev, err := events.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type != pubsub.PeerJoin {
			continue
		}
		if n.lonely.Load() {
			if err := n.republish(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("announce", "err", err)
			}
		}
		if fp, err := n.idKey(ev.Peer); err != nil {
			continue
		} else if _, known := n.dir.Get(fp); known {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := n.Fetch(ctx, ev.Peer); err != nil && !errors.Is(err, ErrNoAnnouncement) {
				n.log.Debug("fetch announcement", "peer", ev.Peer, "err", err)
			}
		}()
	}
}

// advertise keeps the node advertised in the DHT as a provider until ctx
// ends: again before each advertisement's TTL runs out, and soon after a
// failure (an empty routing table at start).
func (n *Node) advertise(ctx context.Context) {
	wait := time.Second
	for {
		ttl, err := n.disc.Advertise(ctx, Namespace)
		if err != nil {
			n.log.Debug("advertise", "err", err)
			wait = min(wait*2, time.Minute)
		} else {
			wait = 7 * ttl / 8
		}
		select {
		case <-ctx.Done():
			return
		case <-n.kickAdv:
			wait = time.Second
		case <-time.After(wait):
		}
	}
}

// Discover finds up to limit providers through the DHT and asks each for
// its announcement, which goes into the directory as through the topic.
// It returns the announcements got and, for the providers that gave
// none, why.
func (n *Node) Discover(ctx context.Context, limit int) ([]market.Announcement, []error) {
	// A node that has just connected to its bootstrap peers has them in
	// its routing table once identify has said they serve the DHT.
	for n.kad.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			return nil, []error{fmt.Errorf("look up providers in the DHT: no DHT peer reached: %w", ctx.Err())}
		case <-time.After(50 * time.Millisecond):
		}
	}
	found, err := n.disc.FindPeers(ctx, Namespace, discovery.Limit(limit))
	if err != nil {
		return nil, []error{fmt.Errorf("look up providers in the DHT: %w", err)}
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		anns []market.Announcement
		errs []error
	)
	sem := make(chan struct{}, maxFetches)
	for pi := range found {
		if pi.ID == n.h.ID() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, fetchTimeout)
			defer cancel()
			err := n.h.Connect(cctx, pi)
			var a market.Announcement
			if err == nil {
				a, err = n.Fetch(cctx, pi.ID)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("provider %s: %w", pi.ID, err))
				return
			}
			anns = append(anns, a)
		}()
	}
	wg.Wait()
	return anns, errs
}

// ParsePeers parses multiaddrs that end in /p2p/ID (a seed's, a
// bootstrap peer's).
func ParsePeers(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %v (a market address looks like /ip4/192.0.2.1/tcp/4001/p2p/12D3KooW…)", s, err)
		}
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			return nil, fmt.Errorf("%q: %v: a market address ends in /p2p/ID (a provider's is in its provider.json, \"market\")", s, err)
		}
		mas = append(mas, a)
	}
	return peer.AddrInfosFromP2pAddrs(mas...)
}

// SplitAddrs sorts the values of --peer or --seed: multiaddrs (beginning
// with "/", ending in /p2p/ID) are market peers; the rest must be
// HOST:PORT, a provider's SSH gateway (asked where its market node is).
func SplitAddrs(values []string) (hostPorts []string, peers []peer.AddrInfo, err error) {
	var mas []string
	for _, v := range values {
		if peeraddr.Is(v) {
			mas = append(mas, v)
		} else if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			return nil, nil, fmt.Errorf("%q is neither HOST:PORT nor a market multiaddr (/ip4/…/tcp/…/p2p/ID)", v)
		} else {
			hostPorts = append(hostPorts, v)
		}
	}
	if peers, err = ParsePeers(mas); err != nil {
		return nil, nil, err
	}
	return hostPorts, peers, nil
}

// Find joins the market through boot as a client with a key of its own,
// finds up to limit providers through the DHT, adds their announcements to
// dir (those with at least minBits of work), and leaves. It returns how
// many it added and, for what it could not reach or use, why.
func Find(ctx context.Context, boot []peer.AddrInfo, dir *market.Directory, minBits uint, limit int) (int, []error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return 0, []error{err}
	}
	before := dir.Len()
	n, err := New(ctx, Config{Key: key, Client: true, Bootstrap: boot, Directory: dir, MinBits: minBits})
	if err != nil {
		return 0, []error{err}
	}
	defer n.Close()
	n.bootstrap(ctx)
	if len(n.Peers()) == 0 {
		return 0, []error{fmt.Errorf("no market peer reachable of %d given", len(boot))}
	}
	_, errs := n.Discover(ctx, limit)
	return dir.Len() - before, errs
}

// bootstrap connects to the bootstrap peers, each within its bound.
func (n *Node) bootstrap(ctx context.Context) {
	peers := n.cfg.Bootstrap
	if n.cfg.Resolve != nil {
		rctx, cancel := context.WithTimeout(ctx, bootstrapTimeout)
		peers = append(slices.Clip(peers), n.cfg.Resolve(rctx)...)
		cancel()
	}
	var wg sync.WaitGroup
	for _, pi := range peers {
		if pi.ID == n.h.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, bootstrapTimeout)
			defer cancel()
			if err := n.h.Connect(ctx, pi); err != nil {
				n.log.Info("bootstrap peer unreachable", "peer", pi.ID, "addrs", pi.Addrs, "err", err)
			}
		}()
	}
	wg.Wait()
}

// announce publishes the node's announcement when a new one is due.
func (n *Node) announce(ctx context.Context) error {
	if n.orig == nil {
		return nil
	}
	offer, ok := n.offer()
	if !ok {
		return nil
	}
	a, err := n.orig.Next(ctx, offer, n.cfg.MinBits, time.Now())
	if err != nil || a == nil {
		return err
	}
	return n.publish(ctx, *a)
}

// republish publishes a new announcement of the node's offer, its last
// having reached no one (the same one again would be a message gossipsub
// has seen, and drops).
func (n *Node) republish(ctx context.Context) error {
	if n.orig == nil {
		return nil
	}
	offer, ok := n.offer()
	if !ok {
		return nil
	}
	a, err := n.orig.Renew(ctx, offer, n.cfg.MinBits, time.Now())
	if err != nil {
		return err
	}
	return n.publish(ctx, *a)
}

// offer is the node's offer to announce, at the address renters reach:
// the gateway's HOST:PORT that Config.Announce gives, unless the node is
// unreachable (AutoNAT) or was given none, and serves SSH over libp2p
// (ListenSSH): then its SSHAddress. False when it has no address yet.
func (n *Node) offer() (market.Announcement, bool) {
	a := n.cfg.Announce()
	if n.sshOn.Load() && (a.Address == "" || n.Reachability() == network.ReachabilityPrivate) {
		if addr := n.SSHAddress(); addr != "" {
			a.Address = addr
		}
	}
	return a, a.Address != ""
}

func (n *Node) publish(ctx context.Context, a market.Announcement) error {
	b, err := market.EncodeAnnouncement(a)
	if err != nil {
		return err
	}
	n.lonely.Store(len(n.topic.ListPeers()) == 0)
	return n.topic.Publish(ctx, b)
}

// Connect connects to a peer.
func (n *Node) Connect(ctx context.Context, pi peer.AddrInfo) error { return n.h.Connect(ctx, pi) }

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Addrs are the node's addresses, each ending in /p2p/ID: what a seed
// gives as --seed.
func (n *Node) Addrs() []ma.Multiaddr {
	out, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()})
	return out
}

// AddrInfo is the node's peer ID and addresses.
func (n *Node) AddrInfo() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }

// Peers are the peers connected now.
func (n *Node) Peers() []peer.ID { return n.h.Network().Peers() }

// TopicPeers are the peers known to be on the announcement topic.
func (n *Node) TopicPeers() []peer.ID { return n.topic.ListPeers() }

// Directory is what the node knows.
func (n *Node) Directory() *market.Directory { return n.dir }

// Announced is the address of the node's last announcement ("" before
// the first, and for a node that does not sell).
func (n *Node) Announced() string {
	if n.orig == nil {
		return ""
	}
	a, ok := n.orig.Last()
	if !ok {
		return ""
	}
	return a.Address
}

// Stats returns the validator's counts.
func (n *Node) Stats() Stats {
	return Stats{Accepted: n.accepted.Load(), Ignored: n.ignored.Load(), Rejected: n.rejected.Load(), Throttled: n.throttled.Load()}
}

// Score is gossipsub's score of a peer, as of the last second: below
// zero it is being penalised for what it sent.
func (n *Node) Score(id peer.ID) float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.scores[id]
}

// Close leaves the topic and closes the host and its connections.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.sub.Cancel()
	n.topic.Close()
	n.kad.Close()
	return n.h.Close()
}
