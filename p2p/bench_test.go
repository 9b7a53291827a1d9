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

// BenchmarkMarketScale runs a market of 1,000 providers, each a node of
// its own, in one process on libp2p's in-memory network (three seeds;
// each provider linked to the seeds and four other providers), and
// measures: how long until every seed holds 95% of the announcements
// (gossip), how long a renter that comes afterwards takes to know 95% of
// the providers through the DHT, the bytes each node received per
// announcement, and the memory a directory spends per provider it knows.
// Goals (issue 18): 95% known in <= 10 s, <= 2 KiB per known provider.
// Proof of work is 8 bits (the market's default is 16) so that minting
// does not dominate.
func BenchmarkMarketScale(b *testing.B) {
	providers, seeds, neighbours := 1000, 3, 4
	if n, err := strconv.Atoi(os.Getenv("ZENNET_MARKET_PROVIDERS")); err == nil {
		providers = n // a smaller market, by hand
	}
	for b.Loop() {
		// Measured first, while nothing else allocates.
		perProvider := directoryBytes(b, providers)
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
			cfg.tracer, cfg.MinBits, cfg.Server = c, testBits, true
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
		hosts := make([]host.Host, providers)
		keys := make([]ed25519.PrivateKey, providers)
		for i := range providers {
			hosts[i], keys[i] = newHost()
			for _, s := range seedInfos {
				mn.LinkPeers(hosts[i].ID(), s.ID)
			}
		}
		for i := 0; i+1 < seeds; i++ {
			mn.LinkPeers(seedInfos[i].ID, seedInfos[i+1].ID)
		}
		began := time.Now()
		for i := range providers {
			boot := append([]peer.AddrInfo(nil), seedInfos[i%seeds])
			for range neighbours {
				j := mrand.IntN(providers)
				if j == i {
					continue
				}
				mn.LinkPeers(hosts[i].ID(), hosts[j].ID())
				boot = append(boot, peer.AddrInfo{ID: hosts[j].ID(), Addrs: hosts[j].Addrs()})
			}
			run(Config{Key: keys[i], host: hosts[i], Bootstrap: boot, Announce: offer})
		}
		started := time.Since(began)
		want := providers * 95 / 100
		least := func() int {
			l := providers
			for _, s := range seedNodes {
				l = min(l, s.Directory().Len())
			}
			return l
		}
		for least() < want && time.Since(began) < 2*time.Minute {
			time.Sleep(100 * time.Millisecond)
		}
		if l := least(); l < want {
			for _, s := range seedNodes {
				b.Logf("seed: %d known; %+v", s.Directory().Len(), s.Stats())
			}
			b.Errorf("2 min after the start the seeds know only %d of %d providers", l, providers)
		}
		gossiped := time.Since(began)
		var received int64
		for _, c := range counters {
			received += c.bytes.Load()
		}
		perAnnouncement := float64(received) / float64(len(counters)) / float64(providers)

		// A renter that comes afterwards: linked to everyone (as the
		// internet is), it knows the seeds only.
		rh, rkey := newHost()
		for _, h := range mn.Hosts() {
			if h.ID() != rh.ID() {
				mn.LinkPeers(rh.ID(), h.ID())
			}
		}
		renter, err := New(ctx, Config{Key: rkey, host: rh, Client: true, Bootstrap: seedInfos, MinBits: testBits})
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, renter)
		t0 := time.Now()
		renter.bootstrap(ctx)
		// Lookups until the renter knows 95%: the DHT may hold fewer
		// provider records at first than there are providers.
		var errs []error
		for renter.Directory().Len() < want && time.Since(t0) < time.Minute {
			dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
			_, errs = renter.Discover(dctx, providers)
			dcancel()
		}
		discovered := time.Since(t0)
		anns := renter.Directory().List(time.Now())
		if len(anns) < want {
			b.Errorf("the renter knew %d of %d providers after a minute (%d errors in the last lookup; first: %v)", len(anns), providers, len(errs), first(errs))
		}

		b.ReportMetric(started.Seconds(), "start-s")
		b.ReportMetric(gossiped.Seconds(), "gossip-95%-s")
		b.ReportMetric(discovered.Seconds(), "renter-s")
		b.ReportMetric(float64(len(anns))/float64(providers), "renter-found")
		b.ReportMetric(perAnnouncement, "recv-B/announcement/node")
		b.ReportMetric(perProvider, "dir-B/provider")
		b.Logf("%d providers: started in %s; every seed knew 95%% %s after the start; a renter arriving then found %d (%.0f%%) through the DHT in %s (goal <= 10 s); each node received %.0f bytes per announcement; a directory holds one provider in %.0f bytes (goal <= 2048)",
			providers, started.Round(time.Millisecond), gossiped.Round(time.Millisecond), len(anns), 100*float64(len(anns))/float64(providers),
			discovered.Round(time.Millisecond), perAnnouncement, perProvider)
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
