package sshgate

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/market"
)

// A peer that completes the SSH handshake and then never answers (a hung
// process, a socket some other process holds) does not hold a request past
// its context: the kept connection is closed and the request fails.
func TestRequestToSilentPeer(t *testing.T) {
	_, cpriv, _ := ed25519.GenerateKey(rand.Reader)
	clientKey, _ := gossh.NewSignerFromKey(cpriv)
	addr := startSilent(t)
	g := NewGossip(GossipConfig{Signer: clientKey})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := g.request(ctx, addr, gossipMsg{Type: "list"})
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("request to a silent peer: err %v after %v", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("err %v does not name the peer", err)
	}
	g.closeConns()
}

// A node whose peer takes the handshake and never answers stops at once
// when its context ends, though its exchange with the peer is under way.
func TestRunStopsWithSilentPeer(t *testing.T) {
	_, cpriv, _ := ed25519.GenerateKey(rand.Reader)
	clientKey, _ := gossh.NewSignerFromKey(cpriv)
	addr := startSilent(t)
	g := NewGossip(GossipConfig{Signer: clientKey, Peers: []string{addr}, Announce: func() market.Announcement {
		return market.Announcement{Address: "127.0.0.1:1", Methods: []string{"embedded"}}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Run(ctx)
	}()
	time.Sleep(500 * time.Millisecond) // the pull and the push are waiting on the peer
	cancel()
	start := time.Now()
	select {
	case <-done:
		t.Logf("Run returned %v after its context ended", time.Since(start))
	case <-time.After(3 * time.Second):
		t.Fatal("Run still running 3s after its context ended")
	}
}

// startSilent starts an SSH server that completes the handshake and never
// answers a channel open, and returns its address.
func startSilent(t *testing.T) string {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := gossh.NewSignerFromKey(priv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg := &gossh.ServerConfig{PublicKeyCallback: func(gossh.ConnMetadata, gossh.PublicKey) (*gossh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(hostKey)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _, reqs, err := gossh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				go gossh.DiscardRequests(reqs)
				// Channels are never accepted nor rejected.
			}()
		}
	}()
	return l.Addr().String()
}
