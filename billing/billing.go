// Package billing is the provider's side of the payment loop: it offers
// payment terms, opens an account per granted lease in the provider's
// ledger, bills every signed usage report at the offered rates and asks the
// renter for what is due, counts the proofs of payment that come back, and
// pauses, resumes and ends hosts whose bills go unpaid. It speaks in proto
// messages and knows nothing of SSH: the gateway (sshgate.Payments) carries
// what it decides.
package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/terms"
)

// Payment defaults of a provider.
const (
	// DefaultGraceIntervals is how many report intervals a payable bill
	// may stay unpaid before the provider pauses the host.
	DefaultGraceIntervals = 2
	// DefaultUnpaidTimeout is how long a bill may stay overdue before the
	// provider ends the lease.
	DefaultUnpaidTimeout = time.Minute
)

// Config configures a provider's Billing.
type Config struct {
	Ledger *pay.Ledger
	Leases *lease.Manager
	// HostKey is the provider's host key: vouchers pay its fingerprint.
	HostKey gossh.Signer
	// Rates are the provider's prices, msat per counter unit.
	Rates pay.Rates
	// MinPayable is the least amount asked at once, above the method's
	// own minimum.
	MinPayable uint64
	// GraceIntervals is the grace before pausing, in report intervals;
	// 0 means DefaultGraceIntervals.
	GraceIntervals int
	// UnpaidTimeout ends a lease overdue this long; 0 means
	// DefaultUnpaidTimeout. It is at least the grace.
	UnpaidTimeout time.Duration
	// LND is the provider's Lightning node; nil offers the embedded
	// channel only.
	LND *pay.LND
	// Accept lists the methods offered, in the provider's order of
	// preference; empty: every method this provider can take (the
	// embedded channel, and Lightning with LND).
	Accept []string
	// Calibration is the calibration set offered (encoded), if any, and
	// PricePerWork the price per unit of benchmark work that Rates were
	// fitted at (0: Rates are flat prices).
	Calibration  json.RawMessage
	PricePerWork float64
	// MinPricePerWork is the least price per work the provider takes
	// when a renter counters (proto.Demand.BidPerWorkMsat): a bid below
	// PricePerWork is met at the bid or this floor, whichever is higher.
	// 0 or PricePerWork: no discount. RatesAt fits the rates at another
	// price; it is required for a floor below the price.
	MinPricePerWork float64
	RatesAt         func(pricePerWork float64) (pay.Rates, error)
	Log             *slog.Logger
	// Reputation, if set, records each renter's late payments, leases
	// ended unpaid and leases completed paid; a key it records as having
	// let a lease end unpaid is refused (Admit).
	Reputation *market.Book
	// Prepay asks renter keys with no lease completed and paid here (by
	// Reputation; every key without one) to pay each host's first
	// interval up front (terms.Prepay): the host stays paused until then.
	Prepay bool
	// OnCredit, if set, hears of every payment counted: msat newly
	// counted for a lease paid by method.
	OnCredit func(lease string, msat uint64, method string)
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Billing is the provider's side of the payment loop: it bills every usage
// report of every lease at its rates, asks the renter for what is due,
// counts the payments that come back, and pauses, resumes and ends hosts
// whose bills go unpaid. Every step is recorded in the ledger first.
type Billing struct {
	cfg   Config
	rates json.RawMessage
	log   *slog.Logger

	mu       sync.Mutex
	accounts map[string]*providerAccount
	failures uint64
	// countered caches the encoded rates of counter-offered prices.
	countered map[float64]json.RawMessage
}

type providerAccount struct {
	acct   *pay.Provider
	owner  gossh.PublicKey
	grace  time.Duration
	expire time.Duration
	// paused is set while the host is paused for want of payment.
	paused bool
	ended  bool
	// unpaidAt is the number of reports billed when the bill of a host
	// never paid became payable (0: it is not).
	unpaidAt uint64
}

// New returns a provider's Billing.
func New(cfg Config) (*Billing, error) {
	if cfg.Ledger == nil || cfg.Leases == nil || cfg.HostKey == nil {
		return nil, errors.New("billing: ledger, lease manager and host key are required")
	}
	if cfg.GraceIntervals <= 0 {
		cfg.GraceIntervals = DefaultGraceIntervals
	}
	if cfg.UnpaidTimeout <= 0 {
		cfg.UnpaidTimeout = DefaultUnpaidTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinPricePerWork < 0 || (cfg.MinPricePerWork > 0 && cfg.MinPricePerWork < cfg.PricePerWork && cfg.RatesAt == nil) {
		return nil, errors.New("billing: a floor below the price needs RatesAt")
	}
	for _, m := range cfg.Accept {
		if m == pay.MethodLightning && cfg.LND == nil {
			return nil, errors.New("billing: Lightning is accepted, but there is no Lightning node to be paid at")
		}
		if !slices.Contains(pay.Methods, m) {
			return nil, fmt.Errorf("billing: unknown payment method %q (known: %s)", m, strings.Join(pay.Methods, ", "))
		}
	}
	rates, err := json.Marshal(cfg.Rates)
	if err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	return &Billing{cfg: cfg, rates: rates, log: cfg.Log.With("subsystem", "billing"), accounts: map[string]*providerAccount{},
		countered: map[float64]json.RawMessage{}}, nil
}

// Methods returns the payment methods offered, the preferred first.
func (b *Billing) Methods() []string {
	if len(b.cfg.Accept) > 0 {
		return slices.Clone(b.cfg.Accept)
	}
	if b.cfg.LND != nil {
		return []string{pay.MethodEmbedded, pay.MethodLightning}
	}
	return []string{pay.MethodEmbedded}
}

// Terms returns the payment terms offered to owner for hosts of limits l
// reported every interval seconds, when it bids bid msat per work (0: no
// bid). A bid below the price is met down to the floor (MinPricePerWork):
// the rates are refitted at the price offered. With Prepay, a key this
// provider has no paid lease from is asked each host's first interval up
// front.
func (b *Billing) Terms(owner gossh.PublicKey, l proto.Limits, interval int, bid float64) (proto.PaymentTerms, error) {
	t, err := b.terms(interval, bid)
	if err != nil || !b.cfg.Prepay || b.known(owner) {
		return t, err
	}
	var rates pay.Rates
	if err := rates.UnmarshalJSON(t.Rates); err != nil {
		return t, err
	}
	t.PrepayMsat = terms.Prepay(rates, l, interval)
	return t, nil
}

// known says whether owner has completed and paid a lease here, and let
// none end unpaid.
func (b *Billing) known(owner gossh.PublicKey) bool {
	if b.cfg.Reputation == nil || owner == nil {
		return false
	}
	r, ok, err := b.cfg.Reputation.Get(gossh.FingerprintSHA256(owner))
	return err == nil && ok && r.Completed > 0 && r.Unpaid == 0
}

func (b *Billing) terms(interval int, bid float64) (proto.PaymentTerms, error) {
	grace := b.cfg.GraceIntervals * interval
	t := proto.PaymentTerms{
		Methods: b.Methods(), Rates: b.rates, MinPayableMsat: b.cfg.MinPayable,
		GraceSeconds: grace, UnpaidTimeoutSeconds: max(int(b.cfg.UnpaidTimeout/time.Second), grace),
	}
	if b.cfg.LND != nil {
		t.LightningNode = b.cfg.LND.Pubkey()
	}
	t.Calibration, t.PricePerWorkMsat = b.cfg.Calibration, b.cfg.PricePerWork
	list := b.cfg.PricePerWork
	price, ok := terms.CounterPrice(list, b.cfg.MinPricePerWork, bid)
	if !ok {
		return t, nil
	}
	b.mu.Lock()
	rates, ok := b.countered[price]
	b.mu.Unlock()
	if !ok {
		r, err := b.cfg.RatesAt(price)
		if err != nil {
			return t, fmt.Errorf("price a counter-offer of %v msat per work: %w", price, err)
		}
		if rates, err = json.Marshal(r); err != nil {
			return t, err
		}
		b.mu.Lock()
		if len(b.countered) >= 256 { // bids are the renters' to choose: bound the cache
			clear(b.countered)
		}
		b.countered[price] = rates
		b.mu.Unlock()
	}
	t.Rates, t.PricePerWorkMsat, t.ListPricePerWorkMsat = rates, price, list
	return t, nil
}

// Admit says whether owner may lease here: a key that this provider's
// book records as having let a lease end unpaid is refused, with the
// reason (a proto.ErrCapacity, so a renter moves on to other providers).
func (b *Billing) Admit(owner gossh.PublicKey) error {
	if b.cfg.Reputation == nil || owner == nil {
		return nil
	}
	fp := gossh.FingerprintSHA256(owner)
	r, ok, err := b.cfg.Reputation.Get(fp)
	if err != nil {
		// A damaged book stops nobody from renting; the provider says so.
		b.log.Error("reputation book unreadable: renters are admitted unchecked", "err", err)
		return nil
	}
	if ok && r.Unpaid > 0 {
		return fmt.Errorf("%w: this provider refuses key %s: %d of its leases here ended unpaid, the last on %s (%s)",
			proto.ErrCapacity, fp, r.Unpaid, r.Last.Format(time.DateOnly), r.LastDrop)
	}
	return nil
}

// Open opens the account of a granted lease, paid by method on terms.
// When the terms ask a prepayment it returns its request, to send with
// the lease, and pauses the host until it is paid.
func (b *Billing) Open(ctx context.Context, le *lease.Lease, method string, terms proto.PaymentTerms) (*pay.Request, error) {
	var payee pay.Payee
	if !slices.Contains(b.Methods(), method) {
		return nil, fmt.Errorf("%w: this provider does not accept %s (it accepts %s)", proto.ErrBadRequest, method, strings.Join(b.Methods(), ", "))
	}
	switch method {
	case pay.MethodEmbedded:
		payee = pay.NewEmbeddedPayee(le.ID, le.Owner, b.cfg.HostKey.PublicKey())
	case pay.MethodLightning:
		if b.cfg.LND == nil {
			return nil, fmt.Errorf("%w: this provider does not accept lightning", proto.ErrBadRequest)
		}
		payee = b.cfg.LND.Payee(pay.LightningPayeeTerms{Lease: le.ID, MinPayable: terms.MinPayableMsat})
	default:
		return nil, fmt.Errorf("%w: unknown payment method %q", proto.ErrBadRequest, method)
	}
	// The offer's rates: a counter-offer's differ from the list price's.
	var rates pay.Rates
	if err := rates.UnmarshalJSON(terms.Rates); err != nil {
		return nil, fmt.Errorf("the offer's rates: %w", err)
	}
	acct, err := b.cfg.Ledger.OpenProvider(pay.ProviderTerms{
		Lease: le.ID, Rates: rates, Renter: gossh.FingerprintSHA256(le.Owner), MinPayable: terms.MinPayableMsat, Prepay: terms.PrepayMsat,
	}, payee)
	if err != nil {
		return nil, err
	}
	a := &providerAccount{acct: acct, owner: le.Owner,
		grace:  time.Duration(terms.GraceSeconds) * time.Second,
		expire: time.Duration(terms.UnpaidTimeoutSeconds) * time.Second}
	b.mu.Lock()
	b.accounts[le.ID] = a
	b.mu.Unlock()
	b.note(a, market.Leased(1))
	if terms.PrepayMsat == 0 {
		return nil, nil
	}
	req, err := acct.Request(ctx)
	if err == nil && req == nil {
		err = errors.New("nothing payable")
	}
	if err != nil {
		return nil, fmt.Errorf("ask the prepayment of %d msat: %w", terms.PrepayMsat, err)
	}
	why := lease.Pause{Cause: proto.PauseUnpaid, Reason: fmt.Sprintf("awaiting the prepayment of %d msat", req.Msat)}
	if err := b.cfg.Leases.Pause(ctx, le.ID, why); err != nil {
		return nil, fmt.Errorf("pause the host until it is prepaid: %w", err)
	}
	b.mu.Lock()
	a.paused = true
	b.mu.Unlock()
	return req, nil
}

func (b *Billing) account(id string) *providerAccount {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accounts[id]
}

// Bill records lease rep.Lease's report and returns the payment request to
// send with it, if anything payable is due.
func (b *Billing) Bill(ctx context.Context, rep meter.Report) (*pay.Request, error) {
	return b.bill(ctx, rep, true)
}

// Record records lease rep.Lease's report without asking for payment: the
// final report of a lease whose renter is gone.
func (b *Billing) Record(ctx context.Context, rep meter.Report) error {
	_, err := b.bill(ctx, rep, false)
	return err
}

func (b *Billing) bill(ctx context.Context, rep meter.Report, ask bool) (*pay.Request, error) {
	a := b.account(rep.Lease)
	if a == nil {
		// Closed already: its renter left and its final report was
		// billed then.
		b.log.Debug("report of a closed account", "lease", rep.Lease, "seq", rep.Seq)
		return nil, nil
	}
	if st := a.acct.Status(); st.Reports > 0 && rep.Seq <= st.LastSeq {
		// A report billed already (the final one is handed out again).
		return nil, nil
	}
	if _, err := a.acct.Bill(rep); err != nil {
		return nil, err
	}
	if !ask {
		return nil, nil
	}
	req, err := a.acct.Request(ctx)
	if err != nil {
		b.countFailure()
		return nil, err
	}
	return req, nil
}

// Enforce pauses lease id's host when a payable bill has been unpaid for
// longer than the grace, and resumes it once paid; it returns the pause or
// resume to announce to the renter, if any. Once the bill is overdue past
// the unpaid timeout it returns end instead: why the lease must end now.
func (b *Billing) Enforce(ctx context.Context, id string) (state *proto.LeaseState, end *proto.Ended) {
	a := b.account(id)
	if a == nil {
		return nil, nil
	}
	st := a.acct.Status()
	now := b.cfg.Now()
	if st.Paid == 0 {
		// Nothing was ever paid for this host. A pause would only hold
		// memory for a renter that has shown no intent to pay: the lease
		// ends once the grace's reports have gone unpaid, so that a
		// renter that never pays costs one interval's price plus the
		// grace, counted in reports rather than by a clock that load
		// can stretch.
		b.mu.Lock()
		if st.UnpaidSince.IsZero() {
			a.unpaidAt = 0
		} else if a.unpaidAt == 0 {
			a.unpaidAt = st.Reports
		}
		since := a.unpaidAt
		b.mu.Unlock()
		if since == 0 || st.Reports-since < uint64(b.cfg.GraceIntervals) {
			return nil, nil
		}
		reason := fmt.Sprintf("unpaid: %d msat due since %s and nothing ever paid (grace %s)", st.Unpaid,
			st.UnpaidSince.Local().Format(time.TimeOnly), a.grace)
		b.note(a, market.EndedUnpaid(reason))
		return nil, &proto.Ended{ID: id, Cause: proto.EndUnpaid, Reason: reason}
	}
	if !st.Overdue(now, a.grace) {
		return b.resumeIfPaid(ctx, id, a), nil
	}
	if now.Sub(st.UnpaidSince) > a.expire {
		reason := fmt.Sprintf("unpaid: %d msat due for %s (the unpaid timeout is %s)", st.Unpaid, now.Sub(st.UnpaidSince).Round(time.Second), a.expire)
		b.note(a, market.EndedUnpaid(reason))
		return nil, &proto.Ended{ID: id, Cause: proto.EndUnpaid, Reason: reason}
	}
	b.mu.Lock()
	paused := a.paused
	b.mu.Unlock()
	if paused {
		return nil, nil
	}
	if state, _ := b.cfg.Leases.State(id); state == lease.Paused {
		return nil, nil // the operator or the owner paused it: leave it to them
	}
	why := lease.Pause{Cause: proto.PauseUnpaid, Reason: fmt.Sprintf("unpaid: %d msat due since %s (grace %s)", st.Unpaid,
		st.UnpaidSince.Local().Format(time.TimeOnly), a.grace)}
	if err := b.cfg.Leases.Pause(ctx, id, why); err != nil {
		b.log.Error("pause unpaid host", "lease", id, "err", err)
		return nil, nil
	}
	b.mu.Lock()
	a.paused = true
	b.mu.Unlock()
	b.note(a, market.LatePayment())
	b.log.Warn("host paused: unpaid", "lease", id, "unpaid_msat", st.Unpaid, "since", st.UnpaidSince)
	return &proto.LeaseState{ID: id, State: proto.StatePaused, Cause: why.Cause, Reason: why.Reason}, nil
}

// resumeIfPaid resumes a host paused for want of payment once it is paid,
// and returns the resume to announce.
func (b *Billing) resumeIfPaid(ctx context.Context, id string, a *providerAccount) *proto.LeaseState {
	b.mu.Lock()
	paused := a.paused
	b.mu.Unlock()
	if !paused || a.acct.Status().Overdue(b.cfg.Now(), a.grace) {
		return nil
	}
	if _, why := b.cfg.Leases.State(id); why.Cause != proto.PauseUnpaid {
		b.mu.Lock()
		a.paused = false // another writer of pauses took over
		b.mu.Unlock()
		return nil
	}
	if err := b.cfg.Leases.Resume(ctx, id); err != nil {
		b.log.Error("resume paid host", "lease", id, "err", err)
		return nil
	}
	b.mu.Lock()
	a.paused = false
	b.mu.Unlock()
	b.log.Info("host resumed: paid", "lease", id)
	return &proto.LeaseState{ID: id, State: proto.StateRunning, Cause: proto.PauseUnpaid, Reason: "paid"}
}

// Confirm counts a renter's proof of payment for one of owner's leases and
// returns the credit to send back, and a resume to announce if the payment
// lifts a pause.
func (b *Billing) Confirm(ctx context.Context, owner gossh.PublicKey, proof pay.Proof) (proto.Credit, *proto.LeaseState) {
	a := b.account(proof.Lease)
	if a == nil || a.owner == nil || owner == nil || !lease.KeysEqual(a.owner, owner) {
		b.countFailure()
		return proto.Credit{ID: proof.Lease, Refused: "no open account of this lease for this key"}, nil
	}
	n, err := a.acct.Confirm(ctx, proof)
	st := a.acct.Status()
	c := proto.Credit{ID: proof.Lease, PaidMsat: st.Paid, BilledMsat: st.Billed}
	if err != nil {
		b.countFailure()
		b.log.Warn("payment refused", "lease", proof.Lease, "err", err)
		c.Refused = err.Error()
		return c, nil
	}
	b.log.Debug("payment counted", "lease", proof.Lease, "msat", n, "paid_msat", st.Paid, "billed_msat", st.Billed)
	if n > 0 && b.cfg.OnCredit != nil {
		b.cfg.OnCredit(proof.Lease, n, st.Method)
	}
	return c, b.resumeIfPaid(ctx, proof.Lease, a)
}

// Close closes lease id's account: its payments end. What is unpaid stays
// on its receipt.
func (b *Billing) Close(id string) (pay.Receipt, error) {
	a := b.account(id)
	if a == nil {
		return pay.Receipt{}, fmt.Errorf("close %s: no open account", id)
	}
	rc, err := a.acct.Close()
	b.mu.Lock()
	delete(b.accounts, id)
	b.mu.Unlock()
	if err == nil && rc.Status.Unpaid < rc.Status.MinPayable {
		b.note(a, market.Completed())
	}
	return rc, err
}

// WaitSettled waits, at most d, until no open account has a payment asked
// and not yet counted.
func (b *Billing) WaitSettled(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		settled := true
		for _, id := range b.OpenLeases() {
			if st, ok := b.Status(id); ok && (st.Pending > 0 || st.Payable > 0) {
				settled = false
			}
		}
		if settled {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Status returns lease id's payment status, if its account is open.
func (b *Billing) Status(id string) (pay.Status, bool) {
	a := b.account(id)
	if a == nil {
		return pay.Status{}, false
	}
	return a.acct.Status(), true
}

// note records ev of a's renter in the provider's book.
func (b *Billing) note(a *providerAccount, ev market.Event) {
	if b.cfg.Reputation == nil {
		return
	}
	if _, err := b.cfg.Reputation.Note(gossh.FingerprintSHA256(a.owner), ev, b.cfg.Now()); err != nil {
		b.log.Warn("reputation", "err", err)
	}
}

// OpenLeases returns the leases whose accounts are open.
func (b *Billing) OpenLeases() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.accounts))
	for id := range b.accounts {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Failures counts refused proofs and failed payment requests.
func (b *Billing) Failures() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures
}

func (b *Billing) countFailure() {
	b.mu.Lock()
	b.failures++
	b.mu.Unlock()
}

// Recover settles the accounts an earlier run left open: it asks the
// payment method what became of their pending requests (a Lightning
// invoice paid while the provider was down still counts), then closes
// them. Their leases are gone: Recover runs after lease.Manager.Recover.
func (b *Billing) Recover(ctx context.Context) (closed int, err error) {
	receipts, err := b.cfg.Ledger.Receipts()
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, r := range receipts {
		if !r.Status.Closed.IsZero() || r.Terms.Role != pay.RoleProvider {
			continue
		}
		var payee pay.Payee
		switch {
		case r.Terms.Method == pay.MethodLightning && b.cfg.LND != nil:
			payee = b.cfg.LND.Payee(pay.LightningPayeeTerms{Lease: r.Terms.Lease, MinPayable: r.Terms.MinPayable})
		case r.Terms.Method == pay.MethodLightning:
			errs = append(errs, fmt.Errorf("lease %s was paid by lightning and has %d msat pending: start with the lnd flags to settle it",
				r.Terms.Lease, r.Status.Pending))
			continue
		default:
			payee = pay.NewEmbeddedPayee(r.Terms.Lease, nil, b.cfg.HostKey.PublicKey())
		}
		acct, err := b.cfg.Ledger.OpenProvider(pay.ProviderTerms{Lease: r.Terms.Lease, Rates: r.Terms.Rates, Renter: r.Terms.Peer,
			MinPayable: r.Terms.MinPayable}, payee)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n, err := acct.Reconcile(ctx); err != nil {
			errs = append(errs, err)
		} else if n > 0 {
			b.log.Info("payment counted after restart", "lease", r.Terms.Lease, "msat", n)
		}
		if _, err := acct.Close(); err != nil {
			errs = append(errs, err)
			continue
		}
		closed++
	}
	return closed, errors.Join(errs...)
}
