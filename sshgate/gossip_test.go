package sshgate_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/sshgate"
)

// TestGossipDirectory pushes many signed announcements to a gateway's
// gossip node and fetches its directory back: all of them, in one answer.
func TestGossipDirectory(t *testing.T) {
	// Every announcement names a new peer; the node learns no more than
	// MaxPeers of them, besides the one it was given.
	gs := market.NewNode(market.NodeConfig{Signer: newSigner(t), Transport: sshgate.NewGossipTransport(newSigner(t)),
		Peers: []string{"192.0.2.250:2222"}, MaxPeers: 5})
	addr := startGossipGateway(t, gs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 40
	var envs []market.Envelope
	now := time.Now().UTC().Truncate(time.Second)
	for i := range n {
		s := newSigner(t)
		a := market.Announcement{Provider: market.ProviderString(s.PublicKey()), Address: fmt.Sprintf("192.0.2.%d:2222", i+1),
			Capacity: market.Capacity{Leases: 1, MemoryBytes: 1 << 30, CPUs: 1, DiskBytes: 1 << 30}, Methods: []string{"embedded"},
			Seq: 1, Issued: now, Expires: now.Add(time.Hour)}
		if err := a.Sign(s); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, market.Envelope{Announcement: a})
	}
	taken, _, err := sshgate.Push(ctx, addr, newSigner(t), envs)
	if err != nil || taken != n {
		t.Fatalf("push: %d taken, err %v", taken, err)
	}
	for range 20 {
		got, _, err := sshgate.FetchDirectory(ctx, addr, newSigner(t))
		if err != nil || len(got) != n {
			t.Fatalf("fetch: %d announcements, err %v", len(got), err)
		}
	}
	if peers := gs.Peers(); len(peers) != 6 || peers[0] != "192.0.2.250:2222" {
		t.Fatalf("peers %v: want the configured one and 5 learned", peers)
	}
}

// TestFetchMarket: a provider on the libp2p market tells a HOST:PORT seed's
// renter where its market node is; one that is not says so.
func TestFetchMarket(t *testing.T) {
	gs := market.NewNode(market.NodeConfig{Signer: newSigner(t), Transport: sshgate.NewGossipTransport(newSigner(t))})
	want := []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRtQCQ5mmpHmRKWhKnM4NxToUuSt1N79rNJZDcMvJBhw"}
	on := startGossipGateway(t, gs, sshgate.WithMarket(func() []string { return want }))
	off := startGossipGateway(t, gs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := sshgate.FetchMarket(ctx, on, newSigner(t))
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("FetchMarket = %v, %v; want %v", got, err, want)
	}
	if _, got, err := sshgate.FetchDirectory(ctx, on, newSigner(t)); err != nil || !slices.Equal(got, want) {
		t.Fatalf("FetchDirectory's market = %v, %v; want %v", got, err, want)
	}
	if _, got, err := sshgate.FetchDirectory(ctx, off, newSigner(t)); err != nil || got != nil {
		t.Fatalf("FetchDirectory's market off the market = %v, %v; want none", got, err)
	}
	if _, err := sshgate.FetchMarket(ctx, off, newSigner(t)); !errors.Is(err, sshgate.ErrNoMarket) {
		t.Fatalf("a provider off the market: %v, want %v", err, sshgate.ErrNoMarket)
	}
}

func startGossipGateway(t *testing.T, gs *market.Node, opts ...sshgate.GatewayOption) string {
	t.Helper()
	// A provider's lease manager and billing, behind a second gateway
	// that also serves gossip.
	p := startBilledProvider(t, lease.Capacity{Leases: 1, Memory: 1 << 30, CPUs: 1, Disk: 1 << 30}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := sshgate.NewGateway(newSigner(t), p.leases, p.billing, append([]sshgate.GatewayOption{sshgate.WithGossip(gs)}, opts...)...)
	go gw.Serve(l)
	t.Cleanup(func() { gw.Shutdown(context.Background()) })
	return l.Addr().String()
}

// A peer that completes the SSH handshake and then never answers (a hung
// process, a socket some other process holds) does not hold a request past
// its context: the kept connection is closed and the request fails.
func TestTransportSilentPeer(t *testing.T) {
	addr := startSilentPeer(t)
	tr := sshgate.NewGossipTransport(newSigner(t))
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var err error
	within(t, 5*time.Second, "List", func() { _, err = tr.List(ctx, addr) })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("list from a silent peer: err %v, want the deadline, naming the peer", err)
	}
}

// A node whose peer takes the handshake and never answers stops at once
// when its context ends, though its exchanges with the peer are under way.
func TestNodeStopsWithSilentPeer(t *testing.T) {
	addr := startSilentPeer(t)
	tr := sshgate.NewGossipTransport(newSigner(t))
	defer tr.Close()
	node := market.NewNode(market.NodeConfig{Signer: newSigner(t), Transport: tr, Peers: []string{addr},
		Announce: func() market.Announcement {
			return market.Announcement{Address: "127.0.0.1:1", Methods: []string{"embedded"}}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		node.Run(ctx)
	}()
	time.Sleep(time.Second) // the pull and the push wait on the peer
	cancel()
	within(t, 3*time.Second, "Run after its context ended", func() { <-done })
}

// A provider whose offer does not change announces once, however often it
// looks at it; a change is announced at the next look.
func TestNodeAnnouncesChanges(t *testing.T) {
	seed := market.NewNode(market.NodeConfig{Signer: newSigner(t), Transport: sshgate.NewGossipTransport(newSigner(t))})
	addr := startGossipGateway(t, seed)
	tr := sshgate.NewGossipTransport(newSigner(t))
	defer tr.Close()
	var mu sync.Mutex
	leases := 2
	node := market.NewNode(market.NodeConfig{Signer: newSigner(t), Transport: tr, Peers: []string{addr}, Every: 50 * time.Millisecond,
		Announce: func() market.Announcement {
			mu.Lock()
			defer mu.Unlock()
			return market.Announcement{Address: "192.0.2.9:2222", Capacity: market.Capacity{Leases: leases, MemoryBytes: 1 << 30, CPUs: 1, DiskBytes: 1 << 30},
				Methods: []string{"embedded"}}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		node.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(1500 * time.Millisecond) // thirty looks
	if got := seed.Stats().Accepted; got != 1 {
		t.Fatalf("the seed took %d announcements of an unchanged offer, want 1", got)
	}
	mu.Lock()
	leases = 1
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for seed.Stats().Accepted != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the changed offer did not reach the seed: %+v", seed.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a := seed.Directory().List(time.Now()); len(a) != 1 || a[0].Capacity.Leases != 1 {
		t.Fatalf("the seed knows %+v", a)
	}
}
