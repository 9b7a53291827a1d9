package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/market"
)

// testBits is the proof of work the test's nodes ask: enough to tell a
// stamp from none (a random one has a 1 in 256 chance), quick to mint.
const testBits = 8

func newKey(t *testing.T) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, s
}

func offer() market.Announcement {
	return market.Announcement{Address: "127.0.0.1:2222", Capacity: market.Capacity{Leases: 2, MemoryBytes: 1 << 30, CPUs: 2, DiskBytes: 10 << 30},
		PricePerWorkMsat: 10, Methods: []string{"embedded"}}
}

// start runs a node on loopback until the test ends.
func start(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key, _ = newKey(t)
	}
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	if cfg.Log == nil && testing.Verbose() {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if cfg.MinBits == 0 {
		cfg.MinBits = testBits
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5 s of its context's end")
		}
		n.Close()
	})
	return n
}

// eventually polls cond for up to 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20 s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPeerIDBoundToSSHKey(t *testing.T) {
	priv, signer := newKey(t)
	k, err := Key(priv)
	if err != nil {
		t.Fatal(err)
	}
	want, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := PeerID(signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("PeerID(ssh key) = %s, the libp2p key's ID is %s", got, want)
	}
	_, other := newKey(t)
	if o, _ := PeerID(other.PublicKey()); o == want {
		t.Fatal("two keys, one peer ID")
	}
	if _, err := Key(priv[:10]); err == nil {
		t.Fatal("a short key was taken")
	}
}

// TestAnnouncementsSpread: a provider's announcement reaches a renter that
// knows only the seed, and the renter can ask the provider for it.
func TestAnnouncementsSpread(t *testing.T) {
	seed := start(t, Config{})
	boot := []peer.AddrInfo{seed.AddrInfo()}
	provKey, provSigner := newKey(t)
	renter := start(t, Config{Bootstrap: boot})
	eventually(t, "the renter joins the topic at the seed", func() bool { return len(seed.TopicPeers()) >= 1 })
	prov := start(t, Config{Key: provKey, Bootstrap: boot, Announce: offer})
	fp := ssh.FingerprintSHA256(provSigner.PublicKey())
	eventually(t, "the renter learns the provider's announcement through the seed", func() bool {
		_, ok := renter.Directory().Get(fp)
		return ok
	})
	// The renter may have it straight from the provider (the mesh links
	// them once they know each other): the seed takes it too, soon.
	eventually(t, "the seed holds the announcement", func() bool {
		_, ok := seed.Directory().Get(fp)
		return ok
	})
	for _, n := range []*Node{seed, renter} {
		if st := n.Stats(); st.Rejected != 0 {
			t.Errorf("honest traffic rejected: %+v", st)
		}
	}
	// A node that has not heard the topic asks the provider directly.
	late := start(t, Config{})
	if err := late.Connect(context.Background(), prov.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	a, err := late.Fetch(context.Background(), prov.ID())
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint() != fp || a.Address != offer().Address {
		t.Fatalf("fetched %s at %s, want %s", a.Fingerprint(), a.Address, fp)
	}
	// One that sells nothing says so.
	if err := late.Connect(context.Background(), seed.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if _, err := late.Fetch(context.Background(), seed.ID()); !errors.Is(err, ErrNoAnnouncement) {
		t.Fatalf("a seed's answer: %v, want %v", err, ErrNoAnnouncement)
	}
}

// attacker is a libp2p host on the topic with no validator of its own:
// it publishes whatever it is told, signed as itself.
func attacker(t *testing.T, boot *Node) (host.Host, *pubsub.Topic) {
	t.Helper()
	priv, _ := newKey(t)
	k, err := Key(priv)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageIdFn(MessageID))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(Topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topic.Subscribe(); err != nil {
		t.Fatal(err)
	}
	before := len(boot.TopicPeers())
	if err := h.Connect(ctx, boot.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the attacker joins the topic", func() bool {
		return len(boot.TopicPeers()) > before && slices.Contains(topic.ListPeers(), boot.ID())
	})
	// As Run does before its first announcement: a message published
	// before the peer's stream is set up reaches nobody.
	time.Sleep(pubsub.GossipSubHeartbeatInterval)
	return h, topic
}

// signed is offer() signed by s, minted at bits, issued at issued.
func signed(t *testing.T, s ssh.Signer, seq uint64, issued time.Time, validity time.Duration, bits uint) market.Announcement {
	t.Helper()
	return signedAt(t, s, offer().Address, seq, issued, validity, bits)
}

// signedAt is signed with the gateway's address addr.
func signedAt(t *testing.T, s ssh.Signer, addr string, seq uint64, issued time.Time, validity time.Duration, bits uint) market.Announcement {
	t.Helper()
	a := offer()
	a.Address = addr
	issued = issued.UTC().Truncate(time.Second)
	a.Provider, a.Seq, a.Issued, a.Expires = market.ProviderString(s.PublicKey()), seq, issued, issued.Add(validity)
	if err := market.Mint(context.Background(), &a, bits); err != nil {
		t.Fatal(err)
	}
	if err := a.Sign(s); err != nil {
		t.Fatal(err)
	}
	return a
}

func publish(t *testing.T, topic *pubsub.Topic, a market.Announcement) {
	t.Helper()
	b, err := market.EncodeAnnouncement(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := topic.Publish(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestAnnouncementsRefused: what fails the validator is dropped by the
// first honest node, never forwarded, and counted against its sender,
// which gossipsub's scoring soon stops listening to.
func TestAnnouncementsRefused(t *testing.T) {
	seed := start(t, Config{})
	renter := start(t, Config{Bootstrap: []peer.AddrInfo{seed.AddrInfo()}})
	eventually(t, "the renter joins the topic at the seed", func() bool { return len(seed.TopicPeers()) >= 1 })
	now := time.Now()
	_, victim := newKey(t) // a provider an attacker speaks for
	cases := []struct {
		name string
		make func(own ssh.Signer) market.Announcement
	}{
		{"another provider's, signed by it, sent as the attacker's own", func(ssh.Signer) market.Announcement {
			return signed(t, victim, 1, now, 10*time.Minute, testBits)
		}},
		{"signed by a key that is not the sending peer's", func(ssh.Signer) market.Announcement {
			_, other := newKey(t)
			return signed(t, other, 1, now, 10*time.Minute, testBits)
		}},
		{"expired", func(own ssh.Signer) market.Announcement {
			return signed(t, own, 1, now.Add(-time.Hour), 10*time.Minute, testBits)
		}},
		{"too little work", func(own ssh.Signer) market.Announcement {
			a := signed(t, own, 1, now, 10*time.Minute, 0)
			for market.Work(&a) >= testBits { // no work asked may still give some
				a = signed(t, own, a.Seq+1, now, 10*time.Minute, 0)
			}
			return a
		}},
		{"at a market address of another peer (renters would dial it)", func(own ssh.Signer) market.Announcement {
			id, err := PeerID(victim.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			return signedAt(t, own, "/ip4/192.0.2.1/tcp/4001/p2p/"+id.String(), 1, now, 10*time.Minute, testBits)
		}},
		{"changed after signing", func(own ssh.Signer) market.Announcement {
			a := signed(t, own, 1, now, 10*time.Minute, testBits)
			a.Capacity.CPUs = 64
			return a
		}},
	}
	for i, c := range cases {
		mh, topic := attacker(t, seed)
		publish(t, topic, c.make(ed25519Signer(t, mh)))
		eventually(t, c.name+": refused by the seed", func() bool { return seed.Stats().Rejected >= int64(i+1) })
	}

	// A peer that keeps sending what fails is graylisted: even its valid
	// announcement is then not looked at, while an honest provider's is.
	mh, topic := attacker(t, seed)
	mine := ed25519Signer(t, mh)
	for seq := range uint64(4) {
		a := signed(t, mine, seq+1, now, 10*time.Minute, testBits)
		a.Capacity.Leases = 1000 // after signing
		publish(t, topic, a)
	}
	eventually(t, "the flooding peer graylisted at the seed", func() bool {
		return seed.Score(mh.ID()) < scoreThresholds().GraylistThreshold
	})
	t.Logf("score at the seed of a peer that sent 4 forgeries: %.0f (graylisted below %.0f)", seed.Score(mh.ID()), scoreThresholds().GraylistThreshold)
	valid := signed(t, mine, 10, now, 10*time.Minute, testBits)
	publish(t, topic, valid)
	provKey, prov := newKey(t)
	start(t, Config{Key: provKey, Bootstrap: []peer.AddrInfo{seed.AddrInfo()}, Announce: offer})
	eventually(t, "an honest provider's announcement reaches the renter", func() bool {
		_, ok := renter.Directory().Get(ssh.FingerprintSHA256(prov.PublicKey()))
		return ok
	})
	if _, ok := renter.Directory().Get(valid.Fingerprint()); ok {
		t.Error("the graylisted peer's announcement reached the renter")
	}
	if st := renter.Stats(); st.Rejected != 0 {
		t.Errorf("the seed forwarded refused announcements to the renter: %+v", st)
	}
	// The renter may have had it straight from the provider: the seed
	// takes it too, soon, and nothing else.
	eventually(t, "the seed holds the honest provider's announcement", func() bool {
		_, ok := seed.Directory().Get(ssh.FingerprintSHA256(prov.PublicKey()))
		return ok
	})
	if n := seed.Directory().Len(); n != 1 {
		t.Errorf("the seed holds %d announcements, want the honest provider's only", n)
	}
}

// ed25519Signer is the SSH signer of a libp2p host's own key.
func ed25519Signer(t *testing.T, h host.Host) ssh.Signer {
	t.Helper()
	raw, err := h.Peerstore().PrivKey(h.ID()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(ed25519.PrivateKey(raw))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDiscover: a renter that joins after every provider announced (so
// it hears none on the topic) finds them through the DHT and asks each
// for its announcement, fetching only as many as it asks for.
func TestDiscover(t *testing.T) {
	seed := start(t, Config{Server: true})
	boot := []peer.AddrInfo{seed.AddrInfo()}
	const providers = 6
	want := map[string]bool{}
	for range providers {
		key, signer := newKey(t)
		start(t, Config{Key: key, Bootstrap: boot, Announce: offer}) // DHT clients, as behind a NAT
		want[ssh.FingerprintSHA256(signer.PublicKey())] = true
	}
	eventually(t, "the seed holds every provider's announcement", func() bool { return seed.Directory().Len() == providers })
	// Gossipsub offers a peer that joins the messages of its last few
	// heartbeats (its message cache): the renter joins after they are
	// gone, so that what it knows comes from the DHT alone.
	time.Sleep(time.Duration(pubsub.GossipSubHistoryLength+1) * pubsub.GossipSubHeartbeatInterval)
	renter := start(t, Config{Bootstrap: boot})
	var got []market.Announcement
	eventually(t, "the renter discovers every provider through the DHT", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		anns, errs := renter.Discover(ctx, providers)
		for _, err := range errs {
			t.Log(err)
		}
		if len(anns) == providers {
			got = anns
			return true
		}
		return false
	})
	for _, a := range got {
		if !want[a.Fingerprint()] {
			t.Errorf("discovered %s, not one of the providers", a.Fingerprint())
		}
		delete(want, a.Fingerprint())
	}
	if st := renter.Stats(); st.Accepted != 0 {
		t.Errorf("the renter took %d announcements from the topic; this test means the DHT", st.Accepted)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if anns, _ := renter.Discover(ctx, 2); len(anns) > 2 {
		t.Errorf("asked for 2 providers, fetched %d", len(anns))
	}
}

// TestFloodThrottled: a peer that brings announcements of new providers
// far faster than a market makes them (here three times its burst, valid,
// each of a fresh identity published as that identity, with the least
// work asked, at once) has what is past its rate ignored and its score lowered, while
// an honest provider's announcement still arrives.
func TestFloodThrottled(t *testing.T) {
	seed := start(t, Config{})
	renter := start(t, Config{Bootstrap: []peer.AddrInfo{seed.AddrInfo()}})
	eventually(t, "the renter joins the topic at the seed", func() bool { return len(seed.TopicPeers()) >= 1 })
	mh, topic := attacker(t, seed)
	const flood = 3 * newBurst
	type msg struct {
		b   []byte
		opt pubsub.PubOpt
	}
	var msgs []msg
	for range flood {
		priv, s := newKey(t)
		b, err := market.EncodeAnnouncement(signed(t, s, 1, time.Now(), 10*time.Minute, testBits))
		if err != nil {
			t.Fatal(err)
		}
		k, _ := Key(priv)
		id, _ := peer.IDFromPrivateKey(k)
		msgs = append(msgs, msg{b, pubsub.WithSecretKeyAndPeerId(k, id)})
	}
	began := time.Now()
	for _, m := range msgs {
		if err := topic.Publish(context.Background(), m.b, m.opt); err != nil {
			t.Fatal(err)
		}
		// Paced so that the attacker's own queue to the seed (32 RPCs)
		// does not drop them: the flood must reach the seed.
		time.Sleep(200 * time.Microsecond)
	}
	// The flood is over at the seed when its counts stop moving (the
	// attacker's queue may drop some, and gossipsub stops listening to a
	// graylisted peer).
	var last Stats
	var still time.Time
	eventually(t, "the flood reaches the seed and ends", func() bool {
		st := seed.Stats()
		if st != last || st.Throttled == 0 {
			last, still = st, time.Now()
			return false
		}
		return time.Since(still) > time.Second
	})
	elapsed := time.Since(began) - time.Second
	provKey, prov := newKey(t)
	start(t, Config{Key: provKey, Bootstrap: []peer.AddrInfo{seed.AddrInfo()}, Announce: offer})
	eventually(t, "an honest provider's announcement reaches the renter", func() bool {
		_, ok := renter.Directory().Get(ssh.FingerprintSHA256(prov.PublicKey()))
		return ok
	})
	st := seed.Stats()
	t.Logf("seed after a flood of %d in %s: %+v; the flooding peer's score %.0f", flood, elapsed.Round(time.Millisecond), st, seed.Score(mh.ID()))
	if bound := int64(newBurst + newRate*elapsed.Seconds() + 1); st.Accepted > bound+1 { // +1: the honest provider
		t.Errorf("the seed took %d of the flood, more than its rate allows (%d)", st.Accepted-1, bound)
	}
	if st.Throttled == 0 {
		t.Error("nothing was throttled")
	}
	eventually(t, "the flooding peer's score below zero at the seed", func() bool { return seed.Score(mh.ID()) < 0 })
	if got := renter.Directory().Len(); got > int(st.Accepted) {
		t.Errorf("the renter holds %d announcements, more than the seed took (%d)", got, st.Accepted)
	}
}

// TestCheckAddress: a provider's market address must end in its own peer
// ID, whatever relay it goes through.
func TestCheckAddress(t *testing.T) {
	_, a := newKey(t)
	_, b := newKey(t)
	own, err := PeerID(a.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	other, err := PeerID(b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + own.String(), true},
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + other.String() + "/p2p-circuit/p2p/" + own.String(), true},
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + other.String(), false},
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + own.String() + "/p2p-circuit/p2p/" + other.String(), false},
		{"/ip4/192.0.2.1/tcp/4001", false},
		{"/ip4/192.0.2.1/tcp/notaport/p2p/" + own.String(), false},
	} {
		if err := checkAddress(tt.addr, own); (err == nil) != tt.ok {
			t.Errorf("checkAddress(%s) = %v, want ok %v", tt.addr, err, tt.ok)
		}
	}
}

// TestAnnouncesChanges: a provider whose offer does not change announces
// once however often it looks at it; a change is announced at the next
// look.
func TestAnnouncesChanges(t *testing.T) {
	seed := start(t, Config{})
	var mu sync.Mutex
	leases := 2
	start(t, Config{Bootstrap: []peer.AddrInfo{seed.AddrInfo()}, Every: 50 * time.Millisecond, Announce: func() market.Announcement {
		mu.Lock()
		defer mu.Unlock()
		a := offer()
		a.Capacity.Leases = leases
		return a
	}})
	eventually(t, "the first announcement reaches the seed", func() bool { return seed.Stats().Accepted == 1 })
	time.Sleep(1500 * time.Millisecond) // thirty looks
	if st := seed.Stats(); st.Accepted != 1 {
		t.Fatalf("the seed took %d announcements of an unchanged offer, want 1", st.Accepted)
	}
	mu.Lock()
	leases = 1
	mu.Unlock()
	eventually(t, "the changed offer reaches the seed", func() bool { return seed.Stats().Accepted == 2 })
	if a := seed.Directory().List(time.Now()); len(a) != 1 || a[0].Capacity.Leases != 1 {
		t.Fatalf("the seed knows %+v", a)
	}
}
