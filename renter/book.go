package renter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
	"github.com/zennet/zennet/session"
	"github.com/zennet/zennet/sshgate"
)

// usageBook is the renter's side of the payment loop. It checks every usage
// report a rental receives (meter.Check), bills the accepted ones into the
// session's ledger at the agreed rates, pays what each provider asks when
// its own bill agrees, and drops a host whose reports fail their checks,
// stop coming, or whose provider asks for more than is due. It keeps the
// latest figures per host for the session's usage file.
type usageBook struct {
	sess   *session.Session
	ledger *pay.Ledger
	signer gossh.Signer
	lnd    *pay.LND

	mu      sync.Mutex
	hosts   map[string]*bookHost
	dirty   bool
	notices chan string
	// drops receives hosts to drop, with why.
	drops chan drop
	wg    sync.WaitGroup
}

type drop struct {
	c      *sshgate.Client
	id     string
	reason string
}

// bookHost is one host's checks and account.
type bookHost struct {
	u        session.Usage
	c        *sshgate.Client
	terms    meter.Terms
	prev     *meter.Report
	interval time.Duration
	acct     *pay.Renter
	// pay carries the latest payment request to the host's payer; it
	// holds one, a newer one replaces it.
	pay      chan pay.Request
	busy     bool // the payer is paying
	final    bool // the final report is billed
	stopped  bool // no more payments: the host was dropped
	credited uint64
	lastSeen time.Time
	// prepaying is set until the provider starts a host it asked a
	// prepayment for.
	prepaying bool
}

func newUsageBook(sess *session.Session, ledger *pay.Ledger, signer gossh.Signer, lnd *pay.LND) *usageBook {
	return &usageBook{sess: sess, ledger: ledger, signer: signer, lnd: lnd, hosts: map[string]*bookHost{},
		notices: make(chan string, 64), drops: make(chan drop, 64)}
}

// rename gives a host another name in the usage file and receipts.
func (b *usageBook) rename(id, name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.hosts[id]; ok {
		h.u.Name = name
		b.dirty = true
	}
}

// add starts checking reports for a host and opens its account, to be paid
// by method on the offer's terms.
func (b *usageBook) add(ctx context.Context, h session.Host, le proto.Lease, c *sshgate.Client, offer proto.Offer, method string, rates pay.Rates) error {
	var payer pay.Payer
	switch method {
	case pay.MethodEmbedded:
		payer = pay.NewEmbeddedPayer(b.signer, le.ID, c.HostKey)
	case pay.MethodLightning:
		payer = b.lnd.Payer(pay.LightningPayerTerms{Lease: le.ID, PayeeNode: offer.Payment.LightningNode, MinPayable: offer.Payment.MinPayableMsat})
	default:
		return fmt.Errorf("unknown payment method %q", method)
	}
	acct, err := b.ledger.OpenRenter(pay.RenterTerms{Lease: le.ID, Rates: rates, Provider: gossh.FingerprintSHA256(c.HostKey),
		MinPayable: offer.Payment.MinPayableMsat, Prepay: offer.Payment.PrepayMsat}, payer)
	if err != nil {
		return err
	}
	var prepay *pay.Request
	if want := acct.Terms().Prepay; want > 0 { // the offer's, raised to what the method can pay
		req, err := pay.DecodeRequest(le.Prepay)
		if err == nil && (req.Lease != le.ID || req.Seq != 0 || req.Msat != want || req.Method != method) {
			err = fmt.Errorf("it asks %d msat of lease %s by %s", req.Msat, req.Lease, req.Method)
		}
		if err != nil {
			acct.Close()
			return fmt.Errorf("the provider asks %d msat up front for %s, but its request for it is not that: %v", want, le.ID, err)
		}
		prepay = &req
	}
	bh := &bookHost{
		u: session.Usage{Name: h.Name, LeaseID: le.ID, Provider: c.Addr, Start: le.Started, Method: method, State: proto.StateRunning},
		c: c, acct: acct, pay: make(chan pay.Request, 1), lastSeen: time.Now(),
		interval: time.Duration(offer.IntervalSeconds) * time.Second,
		terms: meter.Terms{
			Lease: le.ID, Key: c.HostKey, Start: le.Started, CPUs: le.Limits.CPUs,
			MemoryBytes: le.Limits.MemoryBytes + sandbox.MemoryOverhead(le.Limits.MemoryBytes),
		},
	}
	if prepay != nil {
		bh.prepaying = true
		bh.u.State, bh.u.StateReason = proto.StatePaused, "awaiting its prepayment"
	}
	b.mu.Lock()
	b.hosts[le.ID] = bh
	b.dirty = true
	if prepay != nil {
		bh.offer(prepay)
	}
	b.mu.Unlock()
	b.wg.Add(1)
	go b.payer(ctx, bh)
	return nil
}

// awaitPrepaid waits, at most d, until every host whose provider asked a
// prepayment runs: the provider starts it once it has counted the
// payment.
func (b *usageBook) awaitPrepaid(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		var waiting []string
		b.mu.Lock()
		for _, h := range b.hosts {
			if h.prepaying && !h.stopped {
				waiting = append(waiting, fmt.Sprintf("%s (provider %s)", h.u.Name, h.u.Provider))
			}
		}
		b.mu.Unlock()
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			slices.Sort(waiting)
			return fmt.Errorf("%s did not start within %s of being granted, although prepaid: %s", Plural(len(waiting), "host"), d, strings.Join(waiting, ", "))
		case <-t.C:
		}
	}
}

// events handles c's events until it is done or ctx ends; leases the
// provider ended go to ended.
func (b *usageBook) events(ctx context.Context, c *sshgate.Client, ended chan<- endedLease) {
	handle := func(ev sshgate.Event) {
		switch {
		case ev.Usage != nil:
			b.usage(*ev.Usage)
		case ev.Credit != nil:
			b.credit(*ev.Credit)
		case ev.State != nil:
			b.state(*ev.State)
		case ev.Ended != nil:
			b.setState(ev.Ended.ID, "ended", ev.Ended.Reason)
			select {
			case ended <- endedLease{c, *ev.Ended}:
			case <-ctx.Done():
			}
		}
	}
	for {
		select {
		case ev := <-c.Events():
			handle(ev)
		case <-c.Done():
			for { // what arrived before the end still counts
				select {
				case ev := <-c.Events():
					handle(ev)
				default:
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

func (b *usageBook) notice(format string, a ...any) {
	select {
	case b.notices <- fmt.Sprintf(format, a...):
	default:
	}
}

// usage checks a report, bills it and passes its payment request on.
func (b *usageBook) usage(u sshgate.Usage) {
	rep := u.Report
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.hosts[rep.Lease]
	if h == nil || h.stopped {
		return // not (or no longer) ours; reports are cumulative, the next covers it
	}
	if h.prev != nil && rep.Seq <= h.prev.Seq {
		// Reports are cumulative: one that comes after a newer one (the
		// provider's interval report racing the lease's end) tells nothing
		// new. A final report repeating the last one still ends the lease's
		// billing, and its request is paid.
		if !u.Final || rep.Seq != h.prev.Seq || rep.Counters != h.prev.Counters {
			return
		}
		h.final = true
		b.statusLocked(h)
		h.offer(u.Request)
		return
	}
	t := h.terms
	t.Now = time.Now()
	if err := meter.Check(t, h.prev, rep); err != nil {
		h.u.Rejected++
		h.u.LastRejection = err.Error()
		b.dirty = true
		b.stopLocked(h, fmt.Sprintf("its usage report failed the check: %v", err))
		return
	}
	if _, err := h.acct.Bill(rep); err != nil {
		b.notice("%s: ledger: %v", h.u.Name, err)
		return
	}
	r := rep
	h.prev = &r
	h.lastSeen = time.Now()
	h.final = h.final || u.Final
	h.u.Accepted++
	h.u.Seq, h.u.Time = rep.Seq, rep.Time
	h.u.Counters = counterMap(rep.Counters)
	b.statusLocked(h)
	h.offer(u.Request)
}

// offer passes req, if any, to h's payer: the newest request replaces one
// not yet taken. b.mu is held.
func (h *bookHost) offer(req *pay.Request) {
	if req == nil {
		return
	}
	select {
	case <-h.pay:
	default:
	}
	h.pay <- *req
}

// stopLocked stops paying h and asks for it to be dropped. b.mu is held.
func (b *usageBook) stopLocked(h *bookHost, reason string) {
	if h.stopped {
		return
	}
	h.stopped = true
	h.u.State, h.u.StateReason = "dropped", reason
	b.dirty = true
	select {
	case b.drops <- drop{h.c, h.u.LeaseID, reason}:
	default:
	}
}

func (b *usageBook) statusLocked(h *bookHost) {
	st := h.acct.Status()
	h.u.BilledMsat, h.u.PaidMsat, h.u.DueMsat, h.u.CreditedMsat = st.Billed, st.Paid, st.Unpaid, h.credited
	b.dirty = true
}

// payer pays h's requests one at a time until the book closes.
func (b *usageBook) payer(ctx context.Context, h *bookHost) {
	defer b.wg.Done()
	for {
		var req pay.Request
		select {
		case req = <-h.pay:
		case <-ctx.Done():
			return
		}
		b.mu.Lock()
		if h.stopped {
			b.mu.Unlock()
			continue
		}
		h.busy = true
		b.mu.Unlock()
		b.payOne(ctx, h, req)
		b.mu.Lock()
		h.busy = false
		b.statusLocked(h)
		b.mu.Unlock()
	}
}

func (b *usageBook) payOne(ctx context.Context, h *bookHost, req pay.Request) {
	if len(h.acct.Pending()) > 0 { // an earlier payment's outcome is unknown: settle that first
		done, err := h.acct.Reconcile(ctx)
		for _, p := range done {
			h.c.Pay(p.Proof)
		}
		if err != nil || len(h.acct.Pending()) > 0 {
			b.notice("%s: an earlier payment is still unresolved (%v); waiting before paying more", h.u.Name, err)
			return
		}
	}
	p, err := h.acct.Pay(ctx, req)
	switch {
	case err == nil:
		if err := h.c.Pay(p.Proof); err != nil {
			b.notice("%s: send proof of payment: %v", h.u.Name, err)
		}
	case errors.Is(err, pay.ErrAmount), errors.Is(err, pay.ErrBadRequest):
		b.mu.Lock()
		b.stopLocked(h, fmt.Sprintf("its provider asked for a payment its bill does not support: %v", err))
		b.mu.Unlock()
	case errors.Is(err, pay.ErrBelowMinimum), errors.Is(err, pay.ErrCrossing):
		// It stays due until it adds up to a payable amount, or until the
		// provider asks again having counted what was in flight.
	default:
		b.notice("%s: payment of %d msat: %v", h.u.Name, req.Msat, err)
	}
}

func (b *usageBook) credit(c proto.Credit) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.hosts[c.ID]
	if h == nil {
		return
	}
	if c.Refused != "" {
		// A proof of a payment the provider had already counted (a
		// Lightning invoice it saw settle before the proof came) is
		// refused, but nothing is lost: its credit covers all we paid.
		if c.PaidMsat < h.acct.Status().Paid {
			b.notice("%s: provider %s refused a payment: %s", h.u.Name, h.u.Provider, c.Refused)
			return
		}
	}
	h.credited = max(h.credited, c.PaidMsat)
	b.statusLocked(h)
}

func (b *usageBook) state(s proto.LeaseState) {
	b.setState(s.ID, s.State, s.Reason)
	b.mu.Lock()
	name := s.ID
	h := b.hosts[s.ID]
	if h != nil {
		name = h.u.Name
	}
	started := h != nil && h.prepaying && s.State == proto.StateRunning
	if started {
		h.prepaying = false // its first start, not a resumption
	}
	b.mu.Unlock()
	if started {
		return
	}
	if s.State == proto.StatePaused {
		b.notice("%s paused by its provider: %s", name, s.Reason)
	} else {
		b.notice("%s resumed by its provider: %s", name, s.Reason)
	}
}

func (b *usageBook) setState(id, state, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.hosts[id]; h != nil && !h.stopped {
		h.u.State, h.u.StateReason = state, reason
		b.dirty = true
	}
}

// reportAfter waits for a checked report of lease id read at or after t,
// and returns its counters as a meter sample.
func (b *usageBook) reportAfter(ctx context.Context, id string, t time.Time) (meter.Sample, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		b.mu.Lock()
		h := b.hosts[id]
		var prev *meter.Report
		var interval time.Duration
		if h != nil {
			prev, interval = h.prev, h.interval
		}
		b.mu.Unlock()
		if h == nil {
			return meter.Sample{}, fmt.Errorf("no host with lease %s", id)
		}
		if prev != nil && !prev.Time.Before(t) {
			return meter.Sample{Time: prev.Time, Counters: prev.Counters}, nil
		}
		if time.Since(t) > 3*interval+5*time.Second {
			return meter.Sample{}, fmt.Errorf("no usage report of %s since %s", id, t.Format(time.TimeOnly))
		}
		select {
		case <-ctx.Done():
			return meter.Sample{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// silent asks to drop the hosts whose reports stopped coming: none for
// three intervals and a few seconds more.
func (b *usageBook) silent(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range b.hosts {
		if h.stopped || h.final || h.u.State == "ended" {
			continue
		}
		if quiet := now.Sub(h.lastSeen); quiet > 3*h.interval+5*time.Second {
			b.stopLocked(h, fmt.Sprintf("no usage report for %s (every %s agreed)", quiet.Round(time.Second), h.interval))
		}
	}
}

// settled reports whether every host of ids has had its final report
// billed and its payments acknowledged.
func (b *usageBook) settled(ids []string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		h := b.hosts[id]
		if h == nil || h.stopped {
			continue
		}
		st := h.acct.Status()
		if !h.final || h.busy || len(h.pay) > 0 || st.Payable > 0 || st.Pending > 0 || h.credited < st.Paid {
			return false
		}
	}
	return true
}

// close stops the payers and closes every account, returning the receipts
// by host name.
func (b *usageBook) close(cancel context.CancelFunc) []Receipt {
	cancel()
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Receipt
	for _, h := range b.hosts {
		rc, err := h.acct.Close()
		if err != nil {
			b.notice("%s: close account: %v", h.u.Name, err)
			continue
		}
		out = append(out, Receipt{Name: h.u.Name, Provider: h.u.Provider, CreditedMsat: h.credited, Receipt: rc})
	}
	sort.Slice(out, func(i, j int) bool { return hostOrder(out[i].Name) < hostOrder(out[j].Name) })
	return out
}

// Receipt is one host's receipt at release.
type Receipt struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// CreditedMsat is what the provider acknowledged receiving.
	CreditedMsat uint64      `json:"credited_msat"`
	Receipt      pay.Receipt `json:"receipt"`
}

func counterMap(v meter.Vector) map[string]uint64 {
	m := make(map[string]uint64, meter.NumCounters)
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		m[c.Name()] = v[c]
	}
	return m
}

// flush writes the session's usage file if anything changed.
func (b *usageBook) flush() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	b.dirty = false
	out := make([]session.Usage, 0, len(b.hosts))
	for _, h := range b.hosts {
		out = append(out, h.u)
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return hostOrder(out[i].Name) < hostOrder(out[j].Name) })
	return b.sess.WriteUsage(out)
}

// hostOrder sorts zennet-2 before zennet-10.
func hostOrder(name string) int {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] < '0' || name[i] > '9' {
			n, _ := strconv.Atoi(name[i+1:])
			return n
		}
	}
	return 0
}
