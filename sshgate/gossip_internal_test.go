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
)

// A peer that completes the SSH handshake and then never answers (a hung
// process, a socket some other process holds) does not hold a request past
// its context: the kept connection is closed and the request fails.
func TestRequestToSilentPeer(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := gossh.NewSignerFromKey(priv)
	_, cpriv, _ := ed25519.GenerateKey(rand.Reader)
	clientKey, _ := gossh.NewSignerFromKey(cpriv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
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
	g := NewGossip(GossipConfig{Signer: clientKey})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = g.request(ctx, l.Addr().String(), gossipMsg{Type: "list"})
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("request to a silent peer: err %v after %v", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("err %v does not name the peer", err)
	}
	g.closeConns()
}
