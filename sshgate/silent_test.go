package sshgate_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
)

// startSilentPeer starts an SSH server that completes the handshake,
// accepts channels of the types in accept, and never answers any other
// channel open: a hung process, a socket some other process holds. It
// returns its address.
func startSilentPeer(t *testing.T, accept ...string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg := &gossh.ServerConfig{PublicKeyCallback: func(gossh.ConnMetadata, gossh.PublicKey) (*gossh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(newSigner(t))
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			go func() {
				_, chans, reqs, err := gossh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				go gossh.DiscardRequests(reqs)
				for nch := range chans {
					if !slices.Contains(accept, nch.ChannelType()) {
						continue // never accepted nor rejected
					}
					ch, creqs, err := nch.Accept()
					if err != nil {
						return
					}
					go gossh.DiscardRequests(creqs)
					t.Cleanup(func() { ch.Close() })
				}
			}()
		}
	}()
	return l.Addr().String()
}

// within fails the test unless f returns within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		t.Logf("%s returned after %v", what, time.Since(start).Round(time.Millisecond))
	case <-time.After(d):
		t.Fatalf("%s still waiting after %v", what, d)
	}
}

// A renter dialling a provider that takes the handshake and never answers
// the negotiation channel gives up when its context ends: x/crypto's
// OpenChannel alone would wait forever.
func TestDialSilentProvider(t *testing.T) {
	addr := startSilentPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var err error
	within(t, 5*time.Second, "Dial", func() {
		_, err = sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: newSigner(t), HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent provider: err %v, want the deadline", err)
	}
}

// A lease channel the provider never answers is given up when its
// context ends, and the connection with it.
// A lease channel the provider never answers is given up when its
// context ends, and the connection with it.
func TestOpenLeaseSilentProvider(t *testing.T) {
	addr := startSilentPeer(t, proto.ChannelNegotiate)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: newSigner(t), HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	octx, ocancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer ocancel()
	within(t, 5*time.Second, "OpenLease", func() { _, err = c.OpenLease(octx, "lease") })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OpenLease on a silent provider: err %v, want the deadline", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection to the silent provider is still open")
	}
}
