package sshgate_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/sshgate"
)

// TestFetchMarket: a provider on the libp2p market tells a HOST:PORT
// seed's renter where its market node is; one that is not says so.
func TestFetchMarket(t *testing.T) {
	want := []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRtQCQ5mmpHmRKWhKnM4NxToUuSt1N79rNJZDcMvJBhw"}
	on := startMarketGateway(t, sshgate.WithMarket(func() []string { return want }))
	off := startMarketGateway(t)
	empty := startMarketGateway(t, sshgate.WithMarket(func() []string { return nil }))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := sshgate.FetchMarket(ctx, on, newSigner(t))
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("FetchMarket = %v, %v; want %v", got, err, want)
	}
	for _, addr := range []string{off, empty} {
		if _, err := sshgate.FetchMarket(ctx, addr, newSigner(t)); !errors.Is(err, sshgate.ErrNoMarket) {
			t.Fatalf("a provider off the market: %v, want %v", err, sshgate.ErrNoMarket)
		}
	}
	if _, err := sshgate.FetchMarket(ctx, "127.0.0.1:1", newSigner(t)); !errors.Is(err, sshgate.ErrUnreachable) {
		t.Fatalf("nobody listening: %v, want %v", err, sshgate.ErrUnreachable)
	}
}

func startMarketGateway(t *testing.T, opts ...sshgate.GatewayOption) string {
	t.Helper()
	p := startBilledProvider(t, lease.Capacity{Leases: 1, Memory: 1 << 30, CPUs: 1, Disk: 1 << 30}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := sshgate.NewGateway(newSigner(t), p.leases, p.billing, opts...)
	go gw.Serve(l)
	t.Cleanup(func() { gw.Shutdown(context.Background()) })
	return l.Addr().String()
}

// A peer that completes the SSH handshake and then never answers (a hung
// process, a socket some other process holds) does not hold the question
// past its context, and the error names the peer.
func TestFetchMarketSilentPeer(t *testing.T) {
	addr := startSilentPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var err error
	within(t, 5*time.Second, "FetchMarket", func() { _, err = sshgate.FetchMarket(ctx, addr, newSigner(t)) })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("asking a silent peer: err %v, want the deadline, naming the peer", err)
	}
}
