package market

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Gossip defaults.
const (
	// DefaultMaxHops is how many times an announcement is relayed at most.
	DefaultMaxHops = 4
	// DefaultFanout is how many peers a node forwards an announcement to.
	DefaultFanout = 3
	// MaxBatch is the most envelopes Receive looks at in one call; the
	// rest are dropped. Transports should send no more at once.
	MaxBatch = 256
)

// Envelope is an announcement in transit. Hops is how many times it has
// been relayed: 0 as its provider sends it, one more at each node that
// forwards it. Hops is not signed (a relay could lie about it, but only
// to shorten the announcement's journey or to have it dropped, and each
// node forwards each announcement at most once whatever Hops says).
type Envelope struct {
	Announcement Announcement `json:"announcement"`
	Hops         int          `json:"hops"`
}

// MaxEnvelopeSize bounds an encoded envelope.
const MaxEnvelopeSize = MaxAnnouncementSize + 64

// EncodeEnvelope returns e as one line of JSON, newline included.
func EncodeEnvelope(e Envelope) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("encode envelope: %w: %d bytes exceeds %d", ErrInvalid, len(b), MaxEnvelopeSize)
	}
	return append(b, '\n'), nil
}

// DecodeEnvelope parses and validates one encoded envelope (a trailing
// newline is allowed); unknown fields are errors. It does not verify the
// announcement: Relay.Receive does.
func DecodeEnvelope(b []byte) (Envelope, error) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) > MaxEnvelopeSize {
		return Envelope{}, fmt.Errorf("decode envelope: %w: %d bytes exceeds %d", ErrInvalid, len(b), MaxEnvelopeSize)
	}
	var w struct {
		Announcement *Announcement `json:"announcement"`
		Hops         int           `json:"hops"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", wrapInvalid(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Envelope{}, fmt.Errorf("decode envelope: %w: trailing data", ErrInvalid)
	}
	if w.Announcement == nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w: no announcement", ErrInvalid)
	}
	if w.Hops < 0 {
		return Envelope{}, fmt.Errorf("decode envelope: %w: %d hops", ErrInvalid, w.Hops)
	}
	return Envelope{Announcement: *w.Announcement, Hops: w.Hops}, nil
}

func wrapInvalid(err error) error {
	if errors.Is(err, ErrInvalid) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

// RelayConfig tunes a Relay.
type RelayConfig struct {
	// MinBits is the proof of work this node asks of announcements.
	MinBits uint
	// MaxHops is how many times an announcement may have been relayed
	// (DefaultMaxHops when 0).
	MaxHops int
	// OnReject, when set, is told of every announcement that failed Check,
	// with the peer it came from (for logs, or to drop a bad peer). It runs
	// on Receive's goroutine, without the relay's lock.
	OnReject func(from string, a *Announcement, err error)
}

// RelayStats count what a Relay did with what it received.
type RelayStats struct {
	// Accepted: new, valid, added to the directory.
	Accepted uint64
	// Duplicate: already seen, or not newer than the directory's.
	Duplicate uint64
	// Rejected: failed Check.
	Rejected uint64
	// TooFar: relayed more than MaxHops times, or a negative hop count.
	TooFar uint64
	// Overflow: beyond MaxBatch in one Receive.
	Overflow uint64
}

type seenKey struct {
	provider string
	seq      uint64
}

// Relay is a node's gossip policy, independent of any transport: it
// decides which received announcements are new and valid (adding them to
// the node's Directory) and which to pass on. Its bound: a node forwards
// each announcement (a provider and a Seq) at most once, to at most
// fanout peers (Targets), and no announcement travels more than MaxHops
// relays from its provider; so one announcement costs at most
// (nodes + 1) × fanout messages in all, whatever the topology, and is
// forgotten by every node when it expires. Its methods are safe for
// concurrent use.
type Relay struct {
	dir     *Directory
	cfg     RelayConfig
	maxSeen int

	mu    sync.Mutex
	seen  map[seenKey]time.Time // → when to forget it
	stats RelayStats
}

// NewRelay returns a relay adding what it accepts to dir.
func NewRelay(dir *Directory, cfg RelayConfig) *Relay {
	if cfg.MaxHops <= 0 {
		cfg.MaxHops = DefaultMaxHops
	}
	return &Relay{dir: dir, cfg: cfg, maxSeen: 4 * dir.max, seen: make(map[seenKey]time.Time)}
}

// Directory is the relay's directory.
func (r *Relay) Directory() *Directory { return r.dir }

// Receive takes a batch of envelopes from peer from at time now. It
// returns the announcements it accepted (valid, new, now in the
// directory) and the envelopes to forward, Hops incremented, each to
// Targets(peers, from, fanout, rnd). An announcement is forwarded only when
// it was accepted here, never twice (the seen set remembers each provider
// and Seq until the announcement expires), and not when it has been
// relayed MaxHops times already.
func (r *Relay) Receive(from string, envs []Envelope, now time.Time) (accepted []Announcement, forward []Envelope) {
	for i := range envs {
		e := &envs[i]
		if i >= MaxBatch {
			r.count(func(s *RelayStats) { s.Overflow += uint64(len(envs) - MaxBatch) })
			break
		}
		if e.Hops < 0 || e.Hops > r.cfg.MaxHops {
			r.count(func(s *RelayStats) { s.TooFar++ })
			continue
		}
		a := e.Announcement
		k := seenKey{a.Provider, a.Seq}
		r.mu.Lock()
		until, seen := r.seen[k]
		r.mu.Unlock()
		if seen && until.After(now) {
			r.count(func(s *RelayStats) { s.Duplicate++ })
			continue
		}
		added, err := r.dir.Add(a, now, r.cfg.MinBits)
		if err != nil {
			// Not remembered as seen: a forgery must not shadow the
			// provider's own announcement of the same Seq.
			r.count(func(s *RelayStats) { s.Rejected++ })
			if r.cfg.OnReject != nil {
				r.cfg.OnReject(from, &a, err)
			}
			continue
		}
		if !added {
			// Not newer than the directory's: the directory remembers it.
			r.count(func(s *RelayStats) { s.Duplicate++ })
			continue
		}
		r.markSeen(k, a.Expires, now)
		r.count(func(s *RelayStats) { s.Accepted++ })
		a = clone(a)
		accepted = append(accepted, a)
		if e.Hops+1 <= r.cfg.MaxHops {
			forward = append(forward, Envelope{Announcement: a, Hops: e.Hops + 1})
		}
	}
	return accepted, forward
}

// Originate adds the node's own announcement to the directory (checked,
// with no work asked) and returns the envelope to send to
// Targets(peers, "", fanout, rnd): Hops 0. It is remembered as seen, so
// that it is not forwarded again when peers send it back.
func (r *Relay) Originate(a Announcement, now time.Time) (Envelope, error) {
	added, err := r.dir.Add(a, now, 0)
	if err != nil {
		return Envelope{}, err
	}
	if !added {
		return Envelope{}, fmt.Errorf("announcement seq %d is not newer than the directory's", a.Seq)
	}
	r.markSeen(seenKey{a.Provider, a.Seq}, a.Expires, now)
	return Envelope{Announcement: clone(a), Hops: 0}, nil
}

// Snapshot is the directory's current announcements as envelopes with
// Hops = MaxHops, for answering a peer that asks for everything this node
// knows (peer exchange, a renter's --seed): the peer keeps them but does
// not forward them, since they spread already when they were new.
func (r *Relay) Snapshot(now time.Time) []Envelope {
	list := r.dir.List(now)
	out := make([]Envelope, len(list))
	for i, a := range list {
		out[i] = Envelope{Announcement: a, Hops: r.cfg.MaxHops}
	}
	return out
}

// Expire forgets expired announcements, in the directory and the seen
// set. Receive does without it; calling it now and then bounds memory.
func (r *Relay) Expire(now time.Time) {
	r.dir.Expire(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireSeenLocked(now)
}

// Stats returns the relay's counts so far.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *Relay) count(f func(*RelayStats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

func (r *Relay) markSeen(k seenKey, expires, now time.Time) {
	// Check bounds Expires already; this keeps the bound local.
	if limit := now.Add(MaxValidity + MaxClockSkew); expires.After(limit) {
		expires = limit
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[k]; !ok && len(r.seen) >= r.maxSeen {
		r.expireSeenLocked(now)
		if len(r.seen) >= r.maxSeen {
			var victim seenKey
			var first time.Time
			for sk, t := range r.seen {
				if first.IsZero() || t.Before(first) {
					victim, first = sk, t
				}
			}
			delete(r.seen, victim)
		}
	}
	if t, ok := r.seen[k]; !ok || expires.After(t) {
		r.seen[k] = expires
	}
}

func (r *Relay) expireSeenLocked(now time.Time) {
	for k, t := range r.seen {
		if !t.After(now) {
			delete(r.seen, k)
		}
	}
}

// Targets picks at most fanout peers (DefaultFanout when fanout <= 0) at
// random from peers, never exclude (the peer an announcement came from)
// and never one twice. With the same rnd state and the same set of peers,
// in any order, it picks the same; rnd nil uses math/rand/v2's global
// source.
func Targets(peers []string, exclude string, fanout int, rnd *rand.Rand) []string {
	if fanout <= 0 {
		fanout = DefaultFanout
	}
	c := make([]string, 0, len(peers))
	for _, p := range peers {
		if p != exclude && p != "" {
			c = append(c, p)
		}
	}
	slices.Sort(c)
	c = slices.Compact(c)
	if len(c) <= fanout {
		return c
	}
	for i := 0; i < fanout; i++ {
		j := i + intn(rnd, len(c)-i)
		c[i], c[j] = c[j], c[i]
	}
	return c[:fanout]
}

func intn(rnd *rand.Rand, n int) int {
	if rnd == nil {
		return rand.IntN(n)
	}
	return rnd.IntN(n)
}
