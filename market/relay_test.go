package market

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testenv"
)

func TestRelayReceive(t *testing.T) {
	s := testenv.Signer(t)
	r := NewRelay(NewDirectory(0), RelayConfig{MinBits: 4})
	now := t0.Add(time.Minute)
	a := announce(t, s, 1, t0, 4)

	acc, fwd := r.Receive("peer1", []Envelope{{Announcement: a, Hops: 0}}, now)
	if len(acc) != 1 || len(fwd) != 1 || fwd[0].Hops != 1 {
		t.Fatalf("first receive: %d accepted, %v forward", len(acc), fwd)
	}
	// The same again, from anyone, with any hop count: not forwarded.
	for _, h := range []int{0, 1, 3} {
		if acc, fwd := r.Receive("peer2", []Envelope{{Announcement: a, Hops: h}}, now); len(acc)+len(fwd) != 0 {
			t.Fatalf("duplicate accepted or forwarded: %v %v", acc, fwd)
		}
	}
	// At MaxHops: kept, not forwarded. Beyond: dropped.
	b := announce(t, testenv.Signer(t), 1, t0, 4)
	if acc, fwd := r.Receive("peer1", []Envelope{{Announcement: b, Hops: DefaultMaxHops}}, now); len(acc) != 1 || len(fwd) != 0 {
		t.Fatalf("at MaxHops: %d accepted, %d forwarded", len(acc), len(fwd))
	}
	c := announce(t, testenv.Signer(t), 1, t0, 4)
	if acc, fwd := r.Receive("peer1", []Envelope{{Announcement: c, Hops: DefaultMaxHops + 1}, {Announcement: c, Hops: -1}}, now); len(acc)+len(fwd) != 0 {
		t.Fatal("beyond MaxHops accepted")
	}
	st := r.Stats()
	if st.Accepted != 2 || st.Duplicate != 3 || st.TooFar != 2 || st.Rejected != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRelayForgeryDoesNotShadow(t *testing.T) {
	s := testenv.Signer(t)
	var rejected []string
	r := NewRelay(NewDirectory(0), RelayConfig{OnReject: func(from string, a *Announcement, err error) {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("rejected for %v", err)
		}
		rejected = append(rejected, from)
	}})
	real := announce(t, s, 5, t0, 0)
	forged := real
	forged.Address = "mallory.example:22"
	acc, fwd := r.Receive("mallory", []Envelope{{Announcement: forged}}, t0)
	if len(acc)+len(fwd) != 0 || len(rejected) != 1 || rejected[0] != "mallory" {
		t.Fatalf("forgery: %v %v, rejected %v", acc, fwd, rejected)
	}
	acc, fwd = r.Receive("alice", []Envelope{{Announcement: real}}, t0)
	if len(acc) != 1 || len(fwd) != 1 || acc[0].Address != real.Address {
		t.Fatal("the real announcement was shadowed by a forgery of the same seq")
	}
	// Expired and too weak ones are rejected too.
	weak := announce(t, testenv.Signer(t), 1, t0, 0)
	r2 := NewRelay(NewDirectory(0), RelayConfig{MinBits: 30})
	if acc, _ := r2.Receive("x", []Envelope{{Announcement: weak}}, t0); len(acc) != 0 || r2.Stats().Rejected != 1 {
		t.Fatal("weak announcement accepted")
	}
}

func TestRelaySeenExpires(t *testing.T) {
	s := testenv.Signer(t)
	r := NewRelay(NewDirectory(0), RelayConfig{})
	a := announce(t, s, 1, t0, 0) // valid one hour
	if _, fwd := r.Receive("p", []Envelope{{Announcement: a}}, t0); len(fwd) != 1 {
		t.Fatal("not forwarded")
	}
	r.Expire(t0.Add(2 * time.Hour))
	r.mu.Lock()
	n := len(r.seen)
	r.mu.Unlock()
	if n != 0 || r.Directory().Len() != 0 {
		t.Fatalf("after expiry: %d seen, %d in the directory", n, r.Directory().Len())
	}
	// A new announcement by the same provider goes through.
	b := announce(t, s, 2, t0.Add(2*time.Hour), 0)
	if acc, fwd := r.Receive("p", []Envelope{{Announcement: b}}, t0.Add(2*time.Hour)); len(acc) != 1 || len(fwd) != 1 {
		t.Fatal("the next announcement was not accepted")
	}
}

func TestRelayOriginateAndSnapshot(t *testing.T) {
	s := testenv.Signer(t)
	r := NewRelay(NewDirectory(0), RelayConfig{MinBits: 20})
	a := announce(t, s, 1, t0, 0)
	e, err := r.Originate(a, t0)
	if err != nil || e.Hops != 0 {
		t.Fatalf("Originate = %v, %v", e, err)
	}
	if _, err := r.Originate(a, t0); err == nil {
		t.Fatal("originated the same seq twice")
	}
	// Peers sending it back: not forwarded again.
	if acc, fwd := r.Receive("p", []Envelope{{Announcement: a, Hops: 2}}, t0); len(acc)+len(fwd) != 0 {
		t.Fatal("own announcement forwarded again")
	}
	snap := r.Snapshot(t0)
	if len(snap) != 1 || snap[0].Hops != DefaultMaxHops {
		t.Fatalf("Snapshot = %v", snap)
	}
	// A peer taking the snapshot keeps it and forwards nothing.
	peer := NewRelay(NewDirectory(0), RelayConfig{})
	if acc, fwd := peer.Receive("r", snap, t0); len(acc) != 1 || len(fwd) != 0 {
		t.Fatalf("snapshot: %d accepted, %d forwarded", len(acc), len(fwd))
	}
}

func TestRelayBatchBound(t *testing.T) {
	r := NewRelay(NewDirectory(0), RelayConfig{})
	s := testenv.Signer(t)
	a := announce(t, s, 1, t0, 0)
	envs := make([]Envelope, MaxBatch+10)
	for i := range envs {
		envs[i] = Envelope{Announcement: a}
	}
	r.Receive("p", envs, t0)
	if st := r.Stats(); st.Overflow != 10 || st.Accepted != 1 || st.Duplicate != MaxBatch-1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestGossipBound runs gossip over a random network of relays and checks
// the bound: each node forwards an announcement at most once, to at most
// fanout peers, within MaxHops relays.
func TestGossipBound(t *testing.T) {
	const nodes, degree, fanout = 60, 6, DefaultFanout
	rnd := rand.New(rand.NewPCG(1, 2))
	names := make([]string, nodes)
	relays := map[string]*Relay{}
	for i := range names {
		names[i] = fmt.Sprintf("n%02d", i)
		relays[names[i]] = NewRelay(NewDirectory(0), RelayConfig{MinBits: 4})
	}
	peers := map[string][]string{}
	link := func(a, b string) {
		if a != b && !slices.Contains(peers[a], b) {
			peers[a] = append(peers[a], b)
			peers[b] = append(peers[b], a)
		}
	}
	for i := range names {
		link(names[i], names[(i+1)%nodes]) // a ring, connected
		for len(peers[names[i]]) < degree {
			link(names[i], names[rnd.IntN(nodes)])
		}
	}
	type msg struct {
		from, to string
		env      Envelope
	}
	signers := []ssh.Signer{testenv.Signer(t), testenv.Signer(t), testenv.Signer(t)}
	for k, s := range signers {
		origin := names[k*17]
		a := announce(t, s, 1, t0, 4)
		env, err := relays[origin].Originate(a, t0)
		if err != nil {
			t.Fatal(err)
		}
		var queue []msg
		for _, p := range Targets(peers[origin], "", fanout, rnd) {
			queue = append(queue, msg{origin, p, env})
		}
		sent := len(queue)
		forwards := map[string]int{}
		maxHops := 0
		for len(queue) > 0 {
			m := queue[0]
			queue = queue[1:]
			maxHops = max(maxHops, m.env.Hops)
			_, fwd := relays[m.to].Receive(m.from, []Envelope{m.env}, t0)
			for _, e := range fwd {
				forwards[m.to]++
				targets := Targets(peers[m.to], m.from, fanout, rnd)
				if len(targets) > fanout || slices.Contains(targets, m.from) {
					t.Fatalf("targets %v from %s", targets, m.from)
				}
				for _, p := range targets {
					queue = append(queue, msg{m.to, p, e})
					sent++
				}
			}
		}
		reached := 0
		for _, r := range relays {
			if _, ok := r.Directory().Get(a.Provider); ok {
				reached++
			}
		}
		for n, f := range forwards {
			if f > 1 {
				t.Errorf("%s forwarded announcement %d %d times", n, k, f)
			}
		}
		if maxHops > DefaultMaxHops {
			t.Errorf("an envelope travelled %d hops", maxHops)
		}
		if bound := (nodes + 1) * fanout; sent > bound {
			t.Errorf("%d messages, bound %d", sent, bound)
		}
		t.Logf("announcement %d: %d messages, reached %d of %d nodes, %d hops at most", k, sent, reached, nodes, maxHops)
		if reached < nodes/2 {
			t.Errorf("reached only %d of %d nodes", reached, nodes)
		}
	}
}

func TestTargets(t *testing.T) {
	peers := []string{"a", "b", "c", "d", "e", "b", ""}
	for seed := uint64(0); seed < 50; seed++ {
		got := Targets(peers, "c", 3, rand.New(rand.NewPCG(seed, 0)))
		if len(got) != 3 || slices.Contains(got, "c") || slices.Contains(got, "") {
			t.Fatalf("Targets = %v", got)
		}
		s := slices.Clone(got)
		slices.Sort(s)
		if len(slices.Compact(s)) != 3 {
			t.Fatalf("Targets repeats a peer: %v", got)
		}
		// Same seed, peers in another order: the same pick.
		rev := slices.Clone(peers)
		slices.Reverse(rev)
		if again := Targets(rev, "c", 3, rand.New(rand.NewPCG(seed, 0))); !slices.Equal(again, got) {
			t.Fatalf("Targets depends on peer order: %v vs %v", got, again)
		}
	}
	if got := Targets([]string{"a", "b"}, "a", 0, nil); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Targets of few peers = %v", got)
	}
	if got := Targets(nil, "", 3, nil); len(got) != 0 {
		t.Fatalf("Targets of none = %v", got)
	}
	got := Targets([]string{"a", "b", "c", "d", "e", "f"}, "", 0, nil)
	if len(got) != DefaultFanout {
		t.Fatalf("default fanout gave %d", len(got))
	}
}

func TestEnvelopeCoding(t *testing.T) {
	a := announce(t, testenv.Signer(t), 1, t0, 0)
	b, err := EncodeEnvelope(Envelope{Announcement: a, Hops: 2})
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeEnvelope(b)
	if err != nil || e.Hops != 2 || Check(&e.Announcement, t0, 0) != nil {
		t.Fatalf("DecodeEnvelope = %+v, %v", e, err)
	}
	aj, _ := json.Marshal(a)
	for _, in := range []string{`{"hops":1}`, `{"announcement":{},"hops":1}`, `{"hops":-1,"announcement":` + string(aj) + `}`,
		`{"hops":1,"announcement":` + string(aj) + `,"x":1}`, `{"hops":1,"announcement":` + string(aj) + `} {}`, `[]`} {
		if _, err := DecodeEnvelope([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v", in, err)
		}
	}
}
