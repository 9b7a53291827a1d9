package renter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/p2p"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
	"github.com/zennet/zennet/terms"
)

// MarketLookup bounds the providers a renter asks for their announcements
// through the libp2p market's DHT.
const MarketLookup = 256

// KnownProviders loads the renter's directory, adds what the seeds give,
// saves it, and returns it. A seed given as a multiaddr joins the renter
// to the libp2p market, where it finds up to MarketLookup providers
// through the DHT and asks each for its own announcement. One given as
// HOST:PORT (a provider's gateway) is asked where its market node is,
// which is then looked through likewise. When seeds were given and none
// answered (nor gave any provider), the error says so (ErrSeedsUnreachable,
// which is also sshgate.ErrUnreachable); the directory still holds what
// was known before.
func KnownProviders(ctx context.Context, configDir string, seeds []string, signer gossh.Signer, minBits uint) (*market.Directory, []string, error) {
	dir := market.NewDirectory(0)
	path := ProvidersPath(configDir)
	var notes []string
	now := time.Now()
	if _, dropped, err := dir.Load(path, now, minBits); err != nil {
		notes = append(notes, fmt.Sprintf("providers file %s: %v", path, err))
	} else if dropped > 0 {
		notes = append(notes, fmt.Sprintf("dropped %d expired or invalid announcements from %s", dropped, path))
	}
	sshSeeds, boot, err := p2p.SplitAddrs(seeds)
	if err != nil {
		notes = append(notes, fmt.Sprintf("--seed %v", err))
	}
	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	peers, errs := sshgate.MarketPeers(fctx, sshSeeds, signer)
	cancel()
	boot = append(boot, peers...)
	for _, err := range errs {
		notes = append(notes, fmt.Sprintf("seed %v", err))
	}
	added := 0
	if len(boot) > 0 {
		fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		// The node fills the directory itself, under its own lock.
		var errs []error
		added, errs = p2p.Find(fctx, boot, dir, minBits, MarketLookup)
		cancel()
		for _, err := range errs {
			notes = append(notes, fmt.Sprintf("market: %v", err))
		}
	}
	if len(seeds) == 0 {
		return dir, notes, nil
	}
	if err := dir.Save(path); err != nil {
		notes = append(notes, fmt.Sprintf("save %s: %v", path, err))
	}
	if len(peers) == 0 && added == 0 {
		return dir, notes, seedsUnreachable(strings.Join(seeds, ", "))
	}
	return dir, notes, nil
}

// ErrSeedsUnreachable: no --seed answered.
var ErrSeedsUnreachable = errors.New("no seed answered")

// seedsUnreachable names the seeds that did not answer; it is both
// ErrSeedsUnreachable and sshgate.ErrUnreachable.
type seedsUnreachable string

func (e seedsUnreachable) Error() string { return fmt.Sprintf("no seed answered (%s)", string(e)) }
func (e seedsUnreachable) Unwrap() []error {
	return []error{ErrSeedsUnreachable, sshgate.ErrUnreachable}
}

// asked is a market candidate once asked: its client and checked offer.
type asked struct {
	cand   market.Candidate
	c      *sshgate.Client
	offer  proto.Offer
	method string
	rates  pay.Rates
	calib  *bench.Set
}

// askMarket asks every candidate for count hosts at once and returns the
// candidates with their offers (or why they gave none). exclude names
// providers not to ask (fingerprints).
func (r *Rental) askMarket(ctx context.Context, dir *market.Directory, count int, exclude map[string]bool) []*asked {
	o := r.cfg
	anns := dir.List(time.Now())
	book := market.OpenBook(market.BookPath(o.ConfigDir))
	marks := MarkedProviders(o.ConfigDir)
	// The demand carries the renter's counter-offer: a provider that asks
	// more per unit of work comes down to it, or to its floor.
	demand := o.demand(count)
	out := make([]*asked, 0, len(anns))
	for i := range anns {
		a := &anns[i]
		if exclude[a.Fingerprint()] {
			continue
		}
		cand := market.CandidateFrom(a)
		if rec, ok, _ := book.Get(cand.Provider); ok {
			cand.Reputation = rec
		}
		cand.SpotCheckFailed = marks[cand.Provider]
		out = append(out, &asked{cand: cand})
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, q := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			actx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			c, err := sshgate.Dial(actx, q.cand.Address, sshgate.ClientConfig{Signer: o.Signer,
				HostKeyCallback: pinned(q.cand.Announcement.Provider), Timeout: 15 * time.Second, Dial: r.dial})
			if err != nil {
				q.cand.Err = err
				return
			}
			offer, err := c.Offer(actx, demand)
			if err != nil {
				c.Close()
				if errors.Is(err, proto.ErrCapacity) {
					err = fmt.Errorf("%w: %v", market.ErrNoCapacity, err)
				} else {
					err = fmt.Errorf("%w: %v", market.ErrRefused, err)
				}
				q.cand.Err = err
				return
			}
			method, rates, calib, signer, err := o.accept(offer, c.HostKey)
			q.cand.CalibrationSigner = signer
			r.noteRefusal(c, err)
			if err != nil {
				c.Close()
				q.cand.Err = fmt.Errorf("%w: %v", market.ErrRefused, err)
				return
			}
			q.c, q.offer, q.method, q.rates, q.calib = c, offer, method, rates, calib
			q.cand.Offered = offer.Count
			q.cand.PricePerWorkMsat = offer.Payment.PricePerWorkMsat
			q.cand.ListPricePerWorkMsat = offer.Payment.ListPricePerWorkMsat
			if bid := demand.BidPerWorkMsat; bid > 0 && max(offer.Payment.ListPricePerWorkMsat, offer.Payment.PricePerWorkMsat) > bid {
				q.cand.Countered = bid
			}
			q.cand.Score = terms.RelativeScore(calib)
			q.cand.Methods = offer.Payment.Methods
		}()
	}
	wg.Wait()
	return out
}

// rentMarket rents count hosts from the providers of the market, named
// names, choosing by the renter's rules. It returns what the market gave
// and why not more (market.Summarize); granting failures are the error.
//
// When the offers chosen cover fewer than least hosts, none is accepted:
// a rent that cannot be had starts, and pays for, nothing.
func (r *Rental) rentMarket(ctx context.Context, dir *market.Directory, names []string, exclude map[string]bool, least int) (string, error) {
	o := r.cfg
	count := len(names)
	r.progress("asking %d providers for %d hosts ...", dir.Len(), count)
	qs := r.askMarket(ctx, dir, count, exclude)
	cands := make([]market.Candidate, len(qs))
	for i, q := range qs {
		cands[i] = q.cand
	}
	picks, explain := market.Choose(cands, count, o.rules())
	if market.Total(picks) < least {
		for _, q := range qs {
			if q.c != nil {
				q.c.Close()
			}
		}
		r.progress("")
		if o.Explain {
			for _, e := range explain {
				r.emit(Explanation{Address: e.Address, Provider: e.Provider, Reason: e.Reason()})
			}
		}
		return market.Summarize(count, picks, explain) + "; none was rented", nil
	}
	chosen := map[int]int{}
	for _, p := range picks {
		chosen[p.Index] = p.Count
	}
	// Accept the chosen offers at once; hang up on the others. Each
	// provider's hosts are taken (named, forwarded, their accounts opened)
	// as soon as it grants them: a provider that grants late must not
	// leave the others' first reports unpaid meanwhile.
	type result struct {
		q      *asked
		leases []proto.Lease
		err    error
	}
	results := make([]result, len(qs))
	var (
		wg      sync.WaitGroup
		takeMu  sync.Mutex
		takeErr error
		// granted and granting say how far the accepting is, in the
		// progress line: hosts granted so far, providers still granting.
		granted, granting int
	)
	for _, n := range chosen {
		if n > 0 {
			granting++
		}
	}
	total := market.Total(picks)
	r.progress("leasing %s from %s ...", plural(total, "host"), plural(granting, "provider"))
	// One line for all: the hosts started (as their providers say) and
	// granted so far.
	started := map[int]int{}
	line := func() string {
		sum := 0
		for _, k := range started {
			sum += k
		}
		if granted == 0 {
			return fmt.Sprintf("leasing %s from %s: %d started ...", plural(total, "host"), plural(granting, "provider"), sum)
		}
		return fmt.Sprintf("leasing: %d of %d hosts granted, %d started, %s still granting ...", granted, total, sum, plural(granting, "provider"))
	}
	for i, q := range qs {
		if q.c == nil {
			continue
		}
		n := chosen[i]
		if n == 0 {
			q.c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var join *proto.ClusterJoin
			if j := r.net.join(r.sess.ID); j != nil {
				join = j(n)
			}
			leases, err := q.c.AcceptProgress(ctx, n, q.method, join, func(k, _ int) {
				takeMu.Lock()
				defer takeMu.Unlock()
				started[i] = k
				r.progress("%s", line())
			})
			results[i] = result{q, leases, err}
			takeMu.Lock()
			defer takeMu.Unlock()
			if len(leases) > 0 {
				r.addClient(q.c)
			} else {
				q.c.Close()
			}
			if terr := r.take(q.c, q.offer, q.method, q.rates, q.calib, leases, names[:len(leases)]); terr != nil && takeErr == nil {
				takeErr = terr
			}
			names = names[len(leases):]
			granted += len(leases)
			started[i] = len(leases)
			if granting--; granting > 0 {
				r.progress("%s", line())
			}
		}()
	}
	wg.Wait()
	r.progress("")
	if takeErr != nil {
		return market.Summarize(count, picks, explain), takeErr
	}
	var errs []error
	for i, res := range results {
		if res.q != nil && res.err != nil {
			errs = append(errs, fmt.Errorf("provider %s: %w", res.q.cand.Address, res.err))
			explain[i].Reasons = append(explain[i].Reasons, "granting failed: "+res.err.Error())
		}
	}
	if o.Explain {
		for _, e := range explain {
			r.emit(Explanation{Address: e.Address, Provider: e.Provider, Reason: e.Reason()})
		}
	}
	return market.Summarize(count, picks, explain), errors.Join(errs...)
}

// rules are the renter's rules of choice, from its flags.
func (o *Config) rules() market.Rules {
	return market.Rules{MaxPricePerWork: o.MaxPrice, MinScore: o.MinScore, Methods: o.Pay, MinReputation: o.MinReputation}
}

// MarkedProviders are the providers whose spot check failed.
func MarkedProviders(configDir string) map[string]bool {
	out := map[string]bool{}
	for _, m := range readMarks(configDir) {
		out[m.Provider] = true
	}
	return out
}

// note records an event in the renter's book of providers.
func (r *Rental) note(c *sshgate.Client, ev market.Event) {
	if _, err := market.OpenBook(market.BookPath(r.cfg.ConfigDir)).Note(fingerprint(c), ev, time.Now()); err != nil {
		r.report(fmt.Errorf("reputation: %w", err))
	}
}

// noteRefusal records in the reputation book an offer of c refused for
// what its calibration set claims (terms.CalibrationRefused): a subset of
// the reference's steps, unreplayed steps claiming more work than the
// others, a set the tariff does not fit, rates that do not bill it at its
// price. An honest provider never makes such an offer.
func (r *Rental) noteRefusal(c *sshgate.Client, err error) {
	if err != nil && terms.CalibrationRefused(err) {
		r.note(c, market.FailedCheck("offer refused: "+err.Error()))
	}
}

// replace rents hosts from the market in place of lost ones, under their
// names, from providers other than those that lost them; the others are
// untouched. It says what it did.
func (r *Rental) replace(ctx context.Context, names []string) {
	if r.market == nil || len(names) == 0 || ctx.Err() != nil {
		return
	}
	before := len(r.hosts)
	_, err := r.rentMarket(ctx, r.market, names, r.excluded, 1)
	got := r.hosts[before:]
	for _, h := range got {
		r.emit(Replaced{Host: h.Name, Provider: h.Provider, Lease: h.LeaseID})
	}
	if len(got) < len(names) {
		r.emit(ReplaceShort{Got: len(got), Lost: len(names), Holding: len(r.hosts), Err: err})
	}
	if len(got) > 0 {
		if _, err := r.sess.Write(r.hosts, r.cfg.KeyPath); err != nil {
			r.notice("rewrite session files: %v", err)
		}
	}
}
