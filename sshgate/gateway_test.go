package sshgate_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/billing"
	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/internal/testprovider"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
	"github.com/zennet/zennet/sshgate"
)

func newSigner(t testing.TB) gossh.Signer { return testenv.Signer(t) }

// startProvider runs a real gateway with real runsc sandboxes on loopback.
func startProvider(t *testing.T) (addr string) {
	addr, _ = startProviderWith(t, lease.Capacity{Leases: 4, Memory: 4 << 30, CPUs: 4, Disk: 16 << 30})
	return addr
}

// startProviderWith runs a provider with capacity c, each sandbox with its
// own user-mode network, as zennet provide does.
func startProviderWith(t testing.TB, c lease.Capacity) (string, *sandbox.Runtime) {
	t.Helper()
	p := startBilledProvider(t, c, nil)
	return p.addr, p.rt
}

// testProvider is a provider started by startBilledProvider.
type testProvider struct {
	addr    string
	rt      *sandbox.Runtime
	leases  *lease.Manager
	billing *billing.Billing
	ledger  *pay.Ledger
}

// payEmbedded accepts any offer, to be paid by the embedded channel.
func payEmbedded(proto.Offer) (string, error) { return pay.MethodEmbedded, nil }

// startBilledProvider runs a provider with capacity c (testprovider.Start)
// whose billing configure may adjust.
func startBilledProvider(t testing.TB, c lease.Capacity, configure func(*billing.Config)) testProvider {
	t.Helper()
	p := testprovider.Start(t, c, configure)
	return testProvider{addr: p.Addr, rt: p.Runtime, leases: p.Leases, billing: p.Billing, ledger: p.Ledger}
}

// rentOne connects to the provider at addr as key and rents one small
// host; the connection closes when the test ends.
func rentOne(t *testing.T, addr string, key gossh.Signer) (*sshgate.Client, proto.Lease) {
	t.Helper()
	ctx := context.Background()
	c, err := sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: key, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, leases, err := c.Rent(ctx, proto.Demand{Count: 1, Limits: proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}}, payEmbedded)
	if err != nil {
		t.Fatal(err)
	}
	return c, leases[0]
}

// offerOnly offers a public key it does not hold: the server sees the key
// in a query, but the client can never sign with it.
type offerOnly struct {
	pub    gossh.PublicKey
	offers atomic.Int32
}

func (o *offerOnly) PublicKey() gossh.PublicKey { return o.pub }
func (o *offerOnly) Sign(io.Reader, []byte) (*gossh.Signature, error) {
	o.offers.Add(1)
	return nil, errors.New("no private key")
}

// TestAuthenticationBypass: gliderlabs' PublicKeyHandler runs for every key
// a client offers. An attacker who offers the victim's public key (accepted
// in the query, since anyone may rent) and then authenticates with its own
// key must be the attacker, not the victim, for every lease operation.
func TestAuthenticationBypass(t *testing.T) {
	addr := startProvider(t)
	ctx := context.Background()
	victim, attacker := newSigner(t), newSigner(t)

	vc, le := rentOne(t, addr, victim)
	id := le.ID

	offered := &offerOnly{pub: victim.PublicKey()}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sc, chans, reqs, err := gossh.NewClientConn(nc, addr, &gossh.ClientConfig{
		User: "zennet",
		// First the victim's key, offered only; then the attacker's own.
		AuthCallback: func() gossh.ClientAuthCallback {
			next := []gossh.AuthMethod{gossh.PublicKeys(offered), gossh.PublicKeys(attacker)}
			return func(*gossh.ClientAuthContext) (gossh.AuthMethod, error) {
				if len(next) == 0 {
					return nil, errors.New("out of keys")
				}
				m := next[0]
				next = next[1:]
				return m, nil
			}
		}(),
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
	})
	if err != nil {
		t.Fatalf("attacker could not log in with its own key: %v", err)
	}
	ac := gossh.NewClient(sc, chans, reqs)
	defer ac.Close()
	if offered.offers.Load() == 0 {
		t.Fatal("the server never accepted the offered victim key, so this test does not exercise the pitfall")
	}

	// The victim's sandbox stays closed to the attacker.
	_, _, err = ac.OpenChannel(proto.ChannelLease, gossh.Marshal(struct{ ID string }{id}))
	var oce *gossh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != gossh.Prohibited {
		t.Fatalf("attacker opened the victim's lease channel: err = %v", err)
	}
	// Nor can the attacker end the victim's lease.
	ch, creqs, err := ac.OpenChannel(proto.ChannelNegotiate, nil)
	if err != nil {
		t.Fatal(err)
	}
	go gossh.DiscardRequests(creqs)
	if err := proto.NewWriter(ch).Send(proto.Message{Type: proto.TypeRelease, Release: &proto.Release{IDs: []string{id}}}); err != nil {
		t.Fatal(err)
	}
	m, err := proto.NewReader(ch).Next()
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != proto.TypeError || !errors.Is(m.Error, proto.ErrNotFound) {
		t.Fatalf("attacker's release of the victim's lease answered %+v, want not-found", m)
	}
	// The victim still reaches its sandbox.
	st, err := vc.OpenLease(ctx, id)
	if err != nil {
		t.Fatalf("victim lost its lease: %v", err)
	}
	banner := make([]byte, 7)
	if _, err := io.ReadFull(st, banner); err != nil || !strings.HasPrefix(string(banner), "SSH-2.0") {
		t.Fatalf("victim's sandbox did not greet: %q, %v", banner, err)
	}
	st.Close()
}

// TestSessionChannelRefused: the gateway is no shell host.
func TestSessionChannelRefused(t *testing.T) {
	addr := startProvider(t)
	c, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{User: "x", Auth: []gossh.AuthMethod{gossh.PublicKeys(newSigner(t))}, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.NewSession()
	if err == nil || !strings.Contains(err.Error(), "this is a zennet provider") {
		t.Fatalf("session on the gateway: err = %v", err)
	}
}

// TestAcceptProgress: an accept that asks for progress hears how many of
// its hosts have started, in order and up to all of them, and then gets
// every lease; one that does not ask gets none of it.
func TestAcceptProgress(t *testing.T) {
	addr := startProvider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: newSigner(t), HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		for range c.Events() {
		}
	}()
	d := proto.Demand{Count: 3, Limits: proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}}
	if _, err := c.Offer(ctx, d); err != nil {
		t.Fatal(err)
	}
	var heard []int
	leases, err := c.AcceptProgress(ctx, 3, pay.MethodEmbedded, nil, func(k, n int) {
		if n != 3 {
			t.Errorf("progress of %d hosts, want 3", n)
		}
		heard = append(heard, k)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 3 {
		t.Fatalf("%d leases, want 3", len(leases))
	}
	if len(heard) == 0 || heard[len(heard)-1] != 3 || !slices.IsSorted(heard) || heard[0] < 1 || len(slices.Compact(slices.Clone(heard))) != len(heard) {
		t.Fatalf("heard started counts %v, want increasing from 1 up to 3", heard)
	}
	// Without asking: the next accept's replies are its leases only, and
	// the connection stays in step (a later request gets its own answer).
	d.Count = 1
	if _, err := c.Offer(ctx, d); err != nil {
		t.Fatal(err)
	}
	if leases, err := c.Accept(ctx, 1, pay.MethodEmbedded); err != nil || len(leases) != 1 {
		t.Fatalf("accept without progress: %d leases, %v", len(leases), err)
	}
	// (The provider is full now: a capacity error is its answer.)
	if _, err := c.Offer(ctx, d); err != nil && !errors.Is(err, proto.ErrCapacity) {
		t.Fatalf("an offer after: %v", err)
	}
}
