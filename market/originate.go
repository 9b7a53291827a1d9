package market

import (
	"context"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Originator makes a provider's own announcements, whatever carries them:
// it numbers, stamps, mints and signs each, and says when a new one is due.
// It is safe for concurrent use.
type Originator struct {
	signer   ssh.Signer
	self     string
	validity time.Duration

	mu  sync.Mutex
	seq uint64
	own *Announcement
}

// NewOriginator returns an originator signing with signer, each
// announcement valid for validity (at most MaxValidity).
func NewOriginator(signer ssh.Signer, validity time.Duration) *Originator {
	return &Originator{signer: signer, self: ProviderString(signer.PublicKey()), validity: min(validity, MaxValidity)}
}

// Provider is the originator's Provider string.
func (o *Originator) Provider() string { return o.self }

// Next returns the announcement of offer a (unsigned and unstamped:
// Address, Capacity, prices, methods), minted at bits and signed, or nil
// when the last one still says the same (SameOffer) and is not yet
// half-way to expiring: each new one spreads to every node, so announcing
// every interval whatever changed would keep the whole market busy
// relaying the same offers (twenty providers announcing every 2 s held two
// cores at 100%). Its Seq is above every earlier one's, across restarts
// too (it starts at the clock's nanoseconds).
func (o *Originator) Next(ctx context.Context, a Announcement, bits uint, now time.Time) (*Announcement, error) {
	return o.next(ctx, a, bits, now, false)
}

// Renew is Next when a new announcement is due whatever the last said
// (the last reached no one).
func (o *Originator) Renew(ctx context.Context, a Announcement, bits uint, now time.Time) (*Announcement, error) {
	return o.next(ctx, a, bits, now, true)
}

func (o *Originator) next(ctx context.Context, a Announcement, bits uint, now time.Time, renew bool) (*Announcement, error) {
	o.mu.Lock()
	if own := o.own; !renew && own != nil && SameOffer(*own, a) && own.Expires.Sub(now) > o.validity/2 {
		o.mu.Unlock()
		return nil, nil
	}
	o.seq = max(o.seq+1, uint64(now.UnixNano()))
	a.Seq = o.seq
	o.mu.Unlock()
	stamp := now.UTC().Truncate(time.Second)
	a.Provider, a.Issued, a.Expires = o.self, stamp, stamp.Add(o.validity)
	if err := Mint(ctx, &a, bits); err != nil {
		return nil, err
	}
	if err := a.Sign(o.signer); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.own == nil || o.own.Seq < a.Seq {
		c := clone(a)
		o.own = &c
	}
	return &a, nil
}

// Last returns the latest announcement Next made, if any.
func (o *Originator) Last() (Announcement, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.own == nil {
		return Announcement{}, false
	}
	return clone(*o.own), true
}
