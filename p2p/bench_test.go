package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/crypto/ssh"
	"google.golang.org/protobuf/proto"

	"github.com/zennet/zennet/market"
)

// byteCounter is a gossipsub tracer that counts what a node receives.
type byteCounter struct {
	bytes, rpcs atomic.Int64
}

func (c *byteCounter) RecvRPC(rpc *pubsub.RPC) {
	c.bytes.Add(int64(proto.Size(&rpc.RPC)))
	c.rpcs.Add(1)
}
func (*byteCounter) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*byteCounter) OnClosedOutboundStream(peer.ID)                       {}
func (*byteCounter) Join(string)                                          {}
func (*byteCounter) Leave(string)                                         {}
func (*byteCounter) Graft(peer.ID, string)                                {}
func (*byteCounter) Prune(peer.ID, string)                                {}
func (*byteCounter) ValidateMessage(*pubsub.Message)                      {}
func (*byteCounter) DeliverMessage(*pubsub.Message)                       {}
func (*byteCounter) RejectMessage(*pubsub.Message, string)                {}
func (*byteCounter) DuplicateMessage(*pubsub.Message)                     {}
func (*byteCounter) ThrottlePeer(peer.ID)                                 {}
func (*byteCounter) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*byteCounter) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*byteCounter) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*byteCounter) UndeliverableMessage(*pubsub.Message)                 {}

// BenchmarkMarketScale runs a market of 1,000 provider identities in one
// process on libp2p's in-memory network: 50 provider nodes (linked to
// three seeds and four other providers each), each announcing itself and
// 19 more identities, every one signed by its own key and published as
// its own peer (what 1,000 machines would send, without 1,000 libp2p
// stacks on two cores), and a renter on the topic from the start. It
// measures how long after the first of the 950 publications the renter,
// and every seed, knows 95% of the identities; the bytes each node
// received per announcement; the memory a directory spends per provider;
// and how long a renter that comes afterwards takes to find the provider
// nodes through the DHT. Goals (issue 18): 1,000 known in <= 10 s, <= 2 KiB
// per known provider. Proof of work is 8 bits (the market's default is
// 16) so that minting does not dominate.
func BenchmarkMarketScale(b *testing.B) {
	identities, nodeCount, seeds, neighbours := 1000, 50, 3, 4
	if n, err := strconv.Atoi(os.Getenv("ZENNET_MARKET_PROVIDERS")); err == nil {
		identities = n // a smaller market, by hand
	}
	nodeCount = min(nodeCount, identities)
	for b.Loop() {
		// Measured first, while nothing else allocates.
		perProvider := directoryBytes(b, identities)
		mn := mocknet.New()
		defer mn.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		newHost := func() (host.Host, ed25519.PrivateKey) {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			k, _ := Key(priv)
			h, err := mn.AddPeer(k, mustAddr(b))
			if err != nil {
				b.Fatal(err)
			}
			return h, priv
		}
		var nodes []*Node
		var counters []*byteCounter
		var wg sync.WaitGroup
		defer func() {
			cancel()
			wg.Wait()
			for _, n := range nodes {
				n.Close()
			}
		}()
		run := func(cfg Config) *Node {
			c := &byteCounter{}
			cfg.tracer, cfg.MinBits = c, testBits
			if !cfg.Client {
				cfg.Server = true
			}
			n, err := New(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			nodes, counters = append(nodes, n), append(counters, c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.Run(ctx)
			}()
			return n
		}
		var seedInfos []peer.AddrInfo
		var seedNodes []*Node
		for range seeds {
			h, key := newHost()
			seedNodes = append(seedNodes, run(Config{Key: key, host: h}))
			seedInfos = append(seedInfos, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		}
		for i := 0; i+1 < seeds; i++ {
			mn.LinkPeers(seedInfos[i].ID, seedInfos[i+1].ID)
		}
		// The renter is there from the start.
		rh, rkey := newHost()
		for _, s := range seedInfos {
			mn.LinkPeers(rh.ID(), s.ID)
		}
		renter := run(Config{Key: rkey, host: rh, Client: true, Bootstrap: seedInfos})
		hosts := make([]host.Host, nodeCount)
		keys := make([]ed25519.PrivateKey, nodeCount)
		for i := range nodeCount {
			hosts[i], keys[i] = newHost()
			for _, s := range seedInfos {
				mn.LinkPeers(hosts[i].ID(), s.ID)
			}
		}
		began := time.Now()
		provNodes := make([]*Node, nodeCount)
		for i := range nodeCount {
			boot := append([]peer.AddrInfo(nil), seedInfos[i%seeds])
			for range neighbours {
				j := mrand.IntN(nodeCount)
				if j == i {
					continue
				}
				mn.LinkPeers(hosts[i].ID(), hosts[j].ID())
				boot = append(boot, peer.AddrInfo{ID: hosts[j].ID(), Addrs: hosts[j].Addrs()})
			}
			provNodes[i] = run(Config{Key: keys[i], host: hosts[i], Bootstrap: boot, Announce: offer})
		}
		started := time.Since(began)
		// The other identities' announcements, made beforehand.
		type identity struct {
			key crypto.PrivKey
			id  peer.ID
			msg []byte
		}
		extra := make([][]identity, nodeCount)
		for i := range identities - nodeCount {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			s, _ := ssh.NewSignerFromKey(priv)
			k, _ := Key(priv)
			id, _ := peer.IDFromPrivateKey(k)
			a := offer()
			a.Provider, a.Seq = market.ProviderString(s.PublicKey()), 1
			a.Issued = time.Now().UTC().Truncate(time.Second)
			a.Expires = a.Issued.Add(10 * time.Minute)
			if err := market.Mint(ctx, &a, testBits); err != nil {
				b.Fatal(err)
			}
			if err := a.Sign(s); err != nil {
				b.Fatal(err)
			}
			msg, err := market.EncodeAnnouncement(a)
			if err != nil {
				b.Fatal(err)
			}
			extra[i%nodeCount] = append(extra[i%nodeCount], identity{k, id, msg})
		}
		// Every node on the topic before the burst.
		for _, n := range append(provNodes, renter) {
			for len(n.TopicPeers()) == 0 && time.Since(began) < time.Minute {
				time.Sleep(20 * time.Millisecond)
			}
		}
		time.Sleep(2 * pubsub.GossipSubHeartbeatInterval)
		ready := time.Since(began)
		var before int64
		for _, c := range counters {
			before += c.bytes.Load()
		}
		t0 := time.Now()
		var pub sync.WaitGroup
		for i, n := range provNodes {
			pub.Add(1)
			go func() {
				defer pub.Done()
				for _, x := range extra[i] {
					if err := n.topic.Publish(ctx, x.msg, pubsub.WithSecretKeyAndPeerId(x.key, x.id)); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		pub.Wait()
		want := identities * 95 / 100
		least := func() int {
			l := renter.Directory().Len()
			for _, s := range seedNodes {
				l = min(l, s.Directory().Len())
			}
			return l
		}
		var renterAt time.Duration
		for least() < want && time.Since(t0) < 2*time.Minute {
			if renterAt == 0 && renter.Directory().Len() >= want {
				renterAt = time.Since(t0)
			}
			time.Sleep(20 * time.Millisecond)
		}
		gossiped := time.Since(t0)
		if renterAt == 0 {
			renterAt = gossiped
		}
		if l := least(); l < want {
			for _, s := range append(seedNodes, renter) {
				b.Logf("node: %d known; %+v", s.Directory().Len(), s.Stats())
			}
			b.Errorf("2 min after the announcements the renter and seeds know only %d of %d providers", l, identities)
		}
		var received int64
		for _, c := range counters {
			received += c.bytes.Load()
		}
		perAnnouncement := float64(received-before) / float64(len(counters)) / float64(identities-nodeCount)

		// A renter that comes afterwards: linked to everyone (as the
		// internet is), it knows the seeds only, and looks the provider
		// nodes up in the DHT.
		lh, lkey := newHost()
		for _, h := range mn.Hosts() {
			if h.ID() != lh.ID() {
				mn.LinkPeers(lh.ID(), h.ID())
			}
		}
		late, err := New(ctx, Config{Key: lkey, host: lh, Client: true, Bootstrap: seedInfos, MinBits: testBits})
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, late)
		t1 := time.Now()
		late.bootstrap(ctx)
		// The provider nodes it knows (gossipsub's recent messages bring
		// it some of the other identities too).
		foundNodes := func() int {
			found := 0
			for _, k := range keys {
				s, _ := ssh.NewSignerFromKey(k)
				if _, ok := late.Directory().Get(ssh.FingerprintSHA256(s.PublicKey())); ok {
					found++
				}
			}
			return found
		}
		var errs []error
		for foundNodes() < nodeCount*95/100 && time.Since(t1) < time.Minute {
			dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
			_, errs = late.Discover(dctx, nodeCount+seeds)
			dcancel()
		}
		discovered := time.Since(t1)
		found := foundNodes()
		if found < nodeCount*95/100 {
			b.Errorf("the late renter found %d of %d provider nodes after a minute (%d errors in the last lookup; first: %v)", found, nodeCount, len(errs), first(errs))
		}

		b.ReportMetric(started.Seconds(), "start-s")
		b.ReportMetric(renterAt.Seconds(), "renter-95%-s")
		b.ReportMetric(gossiped.Seconds(), "all-95%-s")
		b.ReportMetric(perAnnouncement, "recv-B/announcement/node")
		b.ReportMetric(perProvider, "dir-B/provider")
		b.ReportMetric(discovered.Seconds(), "late-renter-dht-s")
		b.Logf("%d provider identities on %d nodes (+%d seeds, a renter; on the topic %s after the start): the renter knew 95%% %s after the first of %d publications, every seed too after %s (goal <= 10 s); each node received %.0f bytes per announcement; a directory holds one provider in %.0f bytes (goal <= 2048); a renter arriving afterwards found %d of the %d provider nodes through the DHT in %s",
			identities, nodeCount, seeds, ready.Round(time.Millisecond), renterAt.Round(time.Millisecond), identities-nodeCount, gossiped.Round(time.Millisecond),
			perAnnouncement, perProvider, found, nodeCount, discovered.Round(time.Millisecond))
	}
}

func first(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

var mockPort atomic.Int64

// mustAddr is a distinct address for a mocknet peer.
func mustAddr(b *testing.B) ma.Multiaddr {
	b.Helper()
	p := mockPort.Add(1)
	m, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", p>>16&255, p>>8&255, p&255))
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// directoryBytes is the heap a market.Directory spends per announcement
// it holds, for n announcements.
func directoryBytes(b *testing.B, n int) float64 {
	b.Helper()
	anns := make([]market.Announcement, n)
	for i := range anns {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s, _ := ssh.NewSignerFromKey(priv)
		a := offer()
		a.Provider, a.Seq = market.ProviderString(s.PublicKey()), 1
		a.Issued = time.Now().UTC().Truncate(time.Second)
		a.Expires = a.Issued.Add(10 * time.Minute)
		if err := a.Sign(s); err != nil {
			b.Fatal(err)
		}
		anns[i] = a
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := market.NewDirectory(0)
	for _, a := range anns {
		if _, err := d.Add(a, time.Now(), 0); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(d)
	runtime.KeepAlive(anns)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}
