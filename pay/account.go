package pay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/zennet/zennet/meter"
)

// Status is where a lease's payments stand: what an enforcement loop reads
// every interval.
type Status struct {
	Lease  string `json:"lease"`
	Role   string `json:"role"`
	Method string `json:"method"`
	// Reports is the number of reports billed; LastSeq the last one's.
	Reports uint64 `json:"reports"`
	LastSeq uint64 `json:"last_seq"`
	// Billed is the cumulative bill in whole msat; Carry the exact
	// sub-msat remainder not billed yet ("a/b" msat).
	Billed uint64 `json:"billed_msat"`
	Carry  string `json:"carry_msat"`
	// Paid is what the renter paid, or the provider counted.
	Paid uint64 `json:"paid_msat"`
	// Pending is what the renter has in flight, or the provider asked and
	// has not counted yet.
	Pending uint64 `json:"pending_msat"`
	// Due is Billed - Paid - Pending (0 if negative).
	Due uint64 `json:"due_msat"`
	// Payable is Due when it reaches MinPayable, else 0: amounts below
	// the minimum wait for more.
	Payable    uint64 `json:"payable_msat"`
	MinPayable uint64 `json:"min_payable_msat"`
	// Prepay is owed from the start (Terms.Prepay): Unpaid counts the
	// larger of Billed and Prepay.
	Prepay uint64 `json:"prepay_msat,omitempty"`
	// Unpaid is Billed (or Prepay, if larger) - Paid: what the party is
	// still owed (provider) or still owes (renter), in flight included.
	Unpaid uint64 `json:"unpaid_msat"`
	// Fees are routing fees the renter paid on top (lightning).
	Fees     uint64    `json:"fee_msat"`
	LastBill time.Time `json:"last_bill,omitzero"`
	LastPaid time.Time `json:"last_paid,omitzero"`
	// UnpaidSince is when Unpaid last reached MinPayable; zero while it
	// is below.
	UnpaidSince time.Time `json:"unpaid_since,omitzero"`
	Closed      time.Time `json:"closed,omitzero"`
}

// Overdue reports whether a payable amount has been unpaid for longer than
// grace at now: the provider's cue to pause the sandbox.
func (s Status) Overdue(now time.Time, grace time.Duration) bool {
	return !s.UnpaidSince.IsZero() && now.Sub(s.UnpaidSince) > grace
}

func statusOf(t Terms, st accountState, minPayable uint64) Status {
	s := Status{
		Lease: t.Lease, Role: t.Role, Method: t.Method,
		Reports: st.Reports, LastSeq: st.Acc.Seq, Billed: st.Acc.Billed, Carry: st.Acc.Carry,
		Paid: st.Paid, Pending: st.Pending, MinPayable: minPayable, Fees: st.Fees,
		LastBill: st.LastBill, LastPaid: st.LastPaid, UnpaidSince: st.UnpaidSince, Closed: st.Closed, Prepay: t.Prepay,
	}
	if owed := max(s.Billed, t.Prepay); owed > s.Paid {
		s.Unpaid = owed - s.Paid
	}
	if s.Unpaid > s.Pending {
		s.Due = s.Unpaid - s.Pending
	}
	if s.Due >= max(minPayable, 1) {
		s.Payable = s.Due
	}
	return s
}

// account is what Renter and Provider share: one lease's terms, running
// state and accumulator, and the ledger that records them.
type account struct {
	l     *Ledger
	terms Terms
	min   uint64

	mu      sync.Mutex
	st      accountState
	acc     *Accumulator
	pending []Intent
	closed  bool
}

func (l *Ledger) openAccount(terms Terms, minPayable uint64) (*account, error) {
	if err := validLease(terms.Lease); err != nil {
		return nil, fmt.Errorf("open lease account: %w", err)
	}
	terms.MinPayable = max(minPayable, 1)
	if terms.Prepay > 0 { // it is paid at once: at least what the method can pay
		terms.Prepay = max(terms.Prepay, terms.MinPayable)
	}
	if err := l.claim(terms.Lease); err != nil {
		return nil, err
	}
	ld, created, err := l.openLease(terms)
	if err != nil {
		l.release(terms.Lease)
		return nil, err
	}
	acc, err := RestoreAccumulator(ld.terms.Rates, ld.st.Acc)
	if err != nil {
		l.release(terms.Lease)
		return nil, fmt.Errorf("open lease %s: %w", terms.Lease, err)
	}
	if created {
		l.log.Info("lease account opened", "lease", terms.Lease, "role", terms.Role, "method", terms.Method, "prepay_msat", terms.Prepay)
	} else {
		l.log.Info("lease account resumed", "lease", terms.Lease, "role", terms.Role, "billed_msat", ld.st.Acc.Billed,
			"paid_msat", ld.st.Paid, "pending", len(ld.pending))
	}
	a := &account{l: l, terms: ld.terms, min: ld.terms.MinPayable, st: ld.st, acc: acc, pending: ld.pending,
		closed: !ld.st.Closed.IsZero()}
	if created {
		a.unpaidSince(&a.st, l.now().UTC()) // a prepayment is owed from now
	}
	return a, nil
}

// Status returns where the lease's payments stand.
func (a *account) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return statusOf(a.terms, a.st, a.min)
}

// Terms returns the lease's terms as recorded.
func (a *account) Terms() Terms { return a.terms }

// Pending returns the lease's pending intents.
func (a *account) Pending() []Intent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Intent(nil), a.pending...)
}

// unpaidSince updates st.UnpaidSince for st's totals at now.
func (a *account) unpaidSince(st *accountState, now time.Time) {
	if owed := max(st.Acc.Billed, a.terms.Prepay); owed >= st.Paid+a.min && owed > st.Paid {
		if st.UnpaidSince.IsZero() {
			st.UnpaidSince = now
		}
	} else {
		st.UnpaidSince = time.Time{}
	}
}

// bill records report rep and its bill.
func (a *account) bill(rep meter.Report) (Bill, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return Bill{}, fmt.Errorf("bill report %d: %w", rep.Seq, ErrClosed)
	}
	if rep.Lease != a.terms.Lease {
		return Bill{}, fmt.Errorf("bill report: report for lease %q, not %q", rep.Lease, a.terms.Lease)
	}
	b, err := a.acc.Peek(rep.Seq, rep.Counters)
	if err != nil {
		return Bill{}, fmt.Errorf("bill report: %w", err)
	}
	raw, err := meter.Encode(rep)
	if err != nil {
		return Bill{}, fmt.Errorf("bill report: %w", err)
	}
	now := a.l.now().UTC()
	st := a.st
	st.Acc = AccumulatorState{Seq: b.Seq, Counters: rep.Counters, Billed: b.Billed, Carry: b.Carry}
	st.Reports++
	st.LastBill = now
	a.unpaidSince(&st, now)
	e := Entry{Time: now, Kind: EntryBill, Msat: b.Msat, Report: raw[:len(raw)-1], Bill: &b}
	if err := a.l.commit(a.terms.Lease, change{state: st, entries: []Entry{e}}); err != nil {
		return Bill{}, err
	}
	if _, err := a.acc.Add(rep.Seq, rep.Counters); err != nil {
		panic("pay: accumulator disagrees with its own Peek: " + err.Error())
	}
	a.st = st
	return b, nil
}

// close records the end of the lease's payments.
func (a *account) close() (Receipt, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		now := a.l.now().UTC()
		st := a.st
		st.Closed = now
		s := statusOf(a.terms, st, a.min)
		note := fmt.Sprintf("closed: billed %d msat, paid %d msat, unpaid %d msat (%d pending), carry %s msat",
			s.Billed, s.Paid, s.Unpaid, s.Pending, s.Carry)
		if err := a.l.commit(a.terms.Lease, change{state: st, entries: []Entry{{Time: now, Kind: EntryClose, Msat: s.Unpaid, Note: note}}}); err != nil {
			return Receipt{}, err
		}
		a.st, a.closed = st, true
		a.l.log.Info("lease account closed", "lease", a.terms.Lease, "role", a.terms.Role,
			"billed_msat", s.Billed, "paid_msat", s.Paid, "unpaid_msat", s.Unpaid)
	}
	a.l.release(a.terms.Lease)
	return Receipt{Terms: a.terms, Status: statusOf(a.terms, a.st, a.min)}, nil
}

// detach lets the lease be opened again in this process without closing
// it (a lease that goes on after the process, or a test's crash).
func (a *account) detach() { a.l.release(a.terms.Lease) }

func (a *account) removePending(id string) {
	for i, in := range a.pending {
		if in.ID == id {
			a.pending = append(a.pending[:i:i], a.pending[i+1:]...)
			return
		}
	}
}

// Renter is the renter's account of one lease: it bills the provider's
// reports at the agreed rates, checks each payment request against its own
// bill, and pays with its Payer, recording every step first. Its methods are
// safe for concurrent use; payments of one lease are made one at a time.
type Renter struct {
	*account
	payer Payer
}

// RenterTerms are what the renter agreed for a lease.
type RenterTerms struct {
	Lease string
	Rates Rates
	// Provider is the provider's host key fingerprint.
	Provider string
	// MinPayable, when above the method's minimum, is the least amount
	// the parties agreed to pay at once.
	MinPayable uint64
	// Prepay is what the renter agreed to pay up front (Terms.Prepay).
	Prepay uint64
}

// OpenRenter opens the renter's account of a lease paid with payer,
// creating it or resuming it from the ledger. A resumed lease keeps its
// recorded rates; its pending payments wait for Reconcile.
func (l *Ledger) OpenRenter(t RenterTerms, payer Payer) (*Renter, error) {
	a, err := l.openAccount(Terms{Lease: t.Lease, Role: RoleRenter, Method: payer.Method(), Rates: t.Rates, Peer: t.Provider, Prepay: t.Prepay},
		max(payer.MinPayable(), t.MinPayable))
	if err != nil {
		return nil, err
	}
	return &Renter{account: a, payer: payer}, nil
}

// Bill records a usage report, which the renter has checked (meter.Check),
// and what it adds to the bill.
func (r *Renter) Bill(rep meter.Report) (Bill, error) { return r.bill(rep) }

// Close records the end of the lease's payments and returns its receipt.
// What is still unpaid (below the minimum, or refused) stays on it.
func (r *Renter) Close() (Receipt, error) { return r.close() }

// Detach lets the lease be opened again in this process, leaving it open
// in the ledger.
func (r *Renter) Detach() { r.detach() }

// Payment is a payment the renter made.
type Payment struct {
	Intent Intent
	// Proof is what to send the provider.
	Proof Proof
}

// Pay pays the provider's request: it checks that the request asks no
// more than the renter's own bill says is due (ErrAmount) and at least the
// method's minimum (ErrBelowMinimum), records the payment as pending, pays
// it, and records the outcome. An error that wraps ErrNotSettled leaves
// the payment pending: Reconcile resolves it.
func (r *Renter) Pay(ctx context.Context, req Request) (Payment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return Payment{}, fmt.Errorf("pay: %w", ErrClosed)
	}
	if req.Lease != r.terms.Lease || req.Method != r.terms.Method {
		return Payment{}, fmt.Errorf("pay: %w: %s request for lease %q, this lease %q pays by %s",
			ErrBadRequest, req.Method, req.Lease, r.terms.Lease, r.terms.Method)
	}
	if req.Seq > r.st.Acc.Seq {
		return Payment{}, fmt.Errorf("pay: %w: request bills report %d, the renter has billed up to %d",
			ErrAmount, req.Seq, r.st.Acc.Seq)
	}
	if req.Msat < r.min {
		return Payment{}, fmt.Errorf("pay: %w: %d msat, the minimum is %d msat", ErrBelowMinimum, req.Msat, r.min)
	}
	s := statusOf(r.terms, r.st, r.min)
	if req.Msat > s.Due {
		// More than all it billed is over-asking; less is a request made
		// before the provider counted what the renter has sent since.
		if owed := max(s.Billed, s.Prepay); req.Msat > owed {
			return Payment{}, fmt.Errorf("pay: %w: provider asks %d msat, more than the %d msat the renter's bill comes to", ErrAmount, req.Msat, owed)
		}
		if r.terms.Method != MethodEmbedded || s.Due < max(r.min, 1) {
			return Payment{}, fmt.Errorf("pay: %w: provider asks %d msat, the renter's bill says %d msat are due", ErrCrossing, req.Msat, s.Due)
		}
		req.Msat = s.Due // a voucher for what the renter's own bill says
	}
	args := PayArgs{Lease: r.terms.Lease, Seq: r.st.Intents + 1, Due: s.Due, Paid: r.st.Paid + r.st.Pending}
	in, err := r.payer.Prepare(ctx, args, req)
	if err != nil {
		return Payment{}, fmt.Errorf("pay: %w", err)
	}
	now := r.l.now().UTC()
	in.Lease, in.Seq, in.State, in.Created = r.terms.Lease, args.Seq, StatePending, now
	st := r.st
	st.Intents++
	st.Pending += in.Msat
	if in.Voucher != nil {
		st.Claim = in.Voucher
	}
	e := Entry{Time: now, Kind: EntryIntent, Msat: in.Msat, Intent: in.ID,
		Note: fmt.Sprintf("paying %d msat for reports up to %d", in.Msat, req.Seq)}
	if err := r.l.commit(r.terms.Lease, change{state: st, intents: []Intent{in}, newIntent: in.ID, entries: []Entry{e}}); err != nil {
		return Payment{}, fmt.Errorf("pay: %w", err)
	}
	r.st = st
	r.pending = append(r.pending, in)

	out, err := r.payer.Send(ctx, in)
	if err != nil {
		r.l.log.Warn("payment outcome unknown", "lease", r.terms.Lease, "intent", in.ID, "err", err)
		return Payment{Intent: in}, fmt.Errorf("pay: %w: %w", ErrNotSettled, err)
	}
	return r.resolve(in, out)
}

// resolve records a pending intent's outcome. r.mu is held.
func (r *Renter) resolve(in Intent, out Outcome) (Payment, error) {
	if out.State == StatePending {
		return Payment{Intent: in}, fmt.Errorf("pay: %w: %s", ErrNotSettled, out.Reason)
	}
	now := r.l.now().UTC()
	st := r.st
	st.Pending -= in.Msat
	in.Resolved, in.State = now, out.State
	var e Entry
	switch out.State {
	case StateDone:
		in.FeeMsat, in.Preimage = out.FeeMsat, out.Preimage
		st.Paid += in.Msat
		st.Fees += out.FeeMsat
		st.LastPaid = now
		e = Entry{Time: now, Kind: EntryPaid, Msat: in.Msat, Intent: in.ID}
		if out.FeeMsat > 0 {
			e.Note = fmt.Sprintf("fee %d msat", out.FeeMsat)
		}
	case StateFailed:
		in.Reason = out.Reason
		e = Entry{Time: now, Kind: EntryFailed, Msat: in.Msat, Intent: in.ID, Note: out.Reason}
	default:
		return Payment{}, fmt.Errorf("pay: outcome state %q", out.State)
	}
	r.unpaidSince(&st, now)
	if err := r.l.commit(r.terms.Lease, change{state: st, intents: []Intent{in}, resolve: []string{in.ID}, entries: []Entry{e}}); err != nil {
		return Payment{Intent: in}, fmt.Errorf("pay: %w", err)
	}
	r.st = st
	r.removePending(in.ID)
	if out.State == StateFailed {
		return Payment{Intent: in}, fmt.Errorf("pay: %w: %s", ErrPaymentFailed, out.Reason)
	}
	return Payment{Intent: in, Proof: r.payer.Proof(in)}, nil
}

// Reconcile resolves the payments left pending by a crash or a lost
// connection: it asks the method what became of each and records it. It
// returns the payments now done, whose proofs the provider may still need.
func (r *Renter) Reconcile(ctx context.Context) ([]Payment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var done []Payment
	var errs []error
	for _, in := range append([]Intent(nil), r.pending...) {
		out, err := r.payer.Lookup(ctx, in)
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s: %w", in.ID, err))
			continue
		}
		if out.State == StatePending {
			continue
		}
		p, err := r.resolve(in, out)
		switch {
		case err == nil:
			done = append(done, p)
			r.l.log.Info("pending payment reconciled", "lease", r.terms.Lease, "intent", in.ID, "state", out.State)
		case errors.Is(err, ErrPaymentFailed):
			r.l.log.Info("pending payment reconciled", "lease", r.terms.Lease, "intent", in.ID, "state", out.State, "reason", out.Reason)
		default:
			errs = append(errs, err)
		}
	}
	return done, errors.Join(errs...)
}

// Provider is the provider's account of one lease: it bills its own
// reports, asks the renter for what is due, and counts payments once its
// Payee confirms them, recording every step first. Its methods are safe for
// concurrent use.
type Provider struct {
	*account
	payee Payee
}

// ProviderTerms are what the provider agreed for a lease.
type ProviderTerms struct {
	Lease string
	Rates Rates
	// Renter is the renter's key fingerprint.
	Renter string
	// MinPayable, when above the method's minimum, is the least amount
	// the parties agreed to pay at once.
	MinPayable uint64
	// Prepay is what the renter pays up front (Terms.Prepay).
	Prepay uint64
}

// OpenProvider opens the provider's account of a lease paid to payee,
// creating it or resuming it from the ledger.
func (l *Ledger) OpenProvider(t ProviderTerms, payee Payee) (*Provider, error) {
	a, err := l.openAccount(Terms{Lease: t.Lease, Role: RoleProvider, Method: payee.Method(), Rates: t.Rates, Peer: t.Renter, Prepay: t.Prepay},
		max(payee.MinPayable(), t.MinPayable))
	if err != nil {
		return nil, err
	}
	return &Provider{account: a, payee: payee}, nil
}

// Bill records the provider's own signed usage report and what it adds to
// the bill.
func (p *Provider) Bill(rep meter.Report) (Bill, error) { return p.bill(rep) }

// Close records the end of the lease's payments and returns its receipt.
// It does not withdraw pending requests: a late payment still counts
// through Reconcile.
func (p *Provider) Close() (Receipt, error) { return p.close() }

// Detach lets the lease be opened again in this process, leaving it open
// in the ledger.
func (p *Provider) Detach() { p.detach() }

// Request returns the request for what the renter owes now, to send with
// the latest report, or nil when less than the method's minimum is due.
// It first withdraws the requests still pending (a payment that beat the
// withdrawal is counted), so at most one request per lease is open.
func (p *Provider) Request(ctx context.Context) (*Request, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("payment request: %w", ErrClosed)
	}
	for _, in := range append([]Intent(nil), p.pending...) {
		out, err := p.payee.Cancel(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("payment request: withdraw %s: %w", in.ID, err)
		}
		if err := p.resolve(in, out); err != nil {
			return nil, fmt.Errorf("payment request: %w", err)
		}
	}
	s := statusOf(p.terms, p.st, p.min)
	if s.Payable == 0 {
		return nil, nil
	}
	in, err := p.payee.Request(ctx, p.terms.Lease, p.st.Intents+1, p.st.Acc.Seq, s.Payable)
	if err != nil {
		return nil, fmt.Errorf("payment request: %w", err)
	}
	now := p.l.now().UTC()
	in.Lease, in.Seq, in.State, in.Created = p.terms.Lease, p.st.Intents+1, StatePending, now
	st := p.st
	st.Intents++
	st.Pending += in.Msat
	e := Entry{Time: now, Kind: EntryIntent, Msat: in.Msat, Intent: in.ID,
		Note: fmt.Sprintf("asking %d msat for reports up to %d", in.Msat, in.Request.Seq)}
	if err := p.l.commit(p.terms.Lease, change{state: st, intents: []Intent{in}, newIntent: in.ID, entries: []Entry{e}}); err != nil {
		return nil, fmt.Errorf("payment request: %w", err)
	}
	p.st = st
	p.pending = append(p.pending, in)
	req := in.Request
	return &req, nil
}

// resolve records the outcome of a pending request found by Lookup or
// Cancel. p.mu is held.
func (p *Provider) resolve(in Intent, out Outcome) error {
	switch out.State {
	case StatePending:
		return nil
	case StateDone:
		return p.credit(Confirmation{Msat: out.Msat, Settled: []string{in.ID}, Preimage: out.Preimage}, "")
	case StateFailed:
		now := p.l.now().UTC()
		st := p.st
		st.Pending -= in.Msat
		in.State, in.Resolved, in.Reason = StateFailed, now, out.Reason
		e := Entry{Time: now, Kind: EntryFailed, Msat: in.Msat, Intent: in.ID, Note: out.Reason}
		if err := p.l.commit(p.terms.Lease, change{state: st, intents: []Intent{in}, resolve: []string{in.ID}, entries: []Entry{e}}); err != nil {
			return err
		}
		p.st = st
		p.removePending(in.ID)
		return nil
	}
	return fmt.Errorf("outcome state %q", out.State)
}

// credit records a confirmed payment. p.mu is held.
func (p *Provider) credit(c Confirmation, note string) error {
	now := p.l.now().UTC()
	st := p.st
	st.Paid += c.Msat
	if c.Claim != nil {
		st.Claim = c.Claim
	}
	st.LastPaid = now
	var resolved []Intent
	for _, id := range c.Settled {
		for _, in := range p.pending {
			if in.ID == id {
				in.State, in.Resolved, in.Preimage = StateDone, now, c.Preimage
				st.Pending -= in.Msat
				resolved = append(resolved, in)
			}
		}
	}
	if len(resolved) != len(c.Settled) {
		return fmt.Errorf("%w: settles %v, pending %d", ErrUnknownPayment, c.Settled, len(p.pending))
	}
	p.unpaidSince(&st, now)
	e := Entry{Time: now, Kind: EntryCredit, Msat: c.Msat, Note: note}
	if len(resolved) == 1 {
		e.Intent = resolved[0].ID
	}
	ids := make([]string, len(resolved))
	for i, in := range resolved {
		ids[i] = in.ID
	}
	if err := p.l.commit(p.terms.Lease, change{state: st, intents: resolved, resolve: ids, entries: []Entry{e}}); err != nil {
		return err
	}
	p.st = st
	for _, id := range ids {
		p.removePending(id)
	}
	return nil
}

// Confirm checks the renter's proof of payment and counts what it pays:
// the embedded channel's voucher must pass CheckVoucher against the claim;
// a Lightning payment must be for a pending request, and is counted once
// the provider's node reports its invoice settled (Confirm waits for that
// within ctx). It returns the msat newly counted. A refused voucher is
// recorded (EntryRejected) and returned as an error wrapping
// ErrVoucherRejected.
func (p *Provider) Confirm(ctx context.Context, proof Proof) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if proof.Lease != p.terms.Lease || proof.Method != p.terms.Method {
		return 0, fmt.Errorf("confirm payment: %w: %s proof for lease %q, this lease %q is paid by %s",
			ErrBadRequest, proof.Method, proof.Lease, p.terms.Lease, p.terms.Method)
	}
	c, err := p.payee.Confirm(ctx, PayeeState{Claim: p.st.Claim, Pending: append([]Intent(nil), p.pending...)}, proof)
	if err != nil {
		if errors.Is(err, ErrVoucherRejected) {
			e := Entry{Time: p.l.now().UTC(), Kind: EntryRejected, Note: err.Error()}
			if cerr := p.l.commit(p.terms.Lease, change{state: p.st, entries: []Entry{e}}); cerr != nil {
				return 0, fmt.Errorf("confirm payment: %w (and %w)", err, cerr)
			}
		}
		return 0, fmt.Errorf("confirm payment: %w", err)
	}
	if err := p.credit(c, ""); err != nil {
		return 0, fmt.Errorf("confirm payment: %w", err)
	}
	return c.Msat, nil
}

// Reconcile asks the method what became of each pending request (after a
// crash, or a proof that never came) and counts those paid. It returns the
// msat newly counted.
func (p *Provider) Reconcile(ctx context.Context) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := p.st.Paid
	var errs []error
	for _, in := range append([]Intent(nil), p.pending...) {
		out, err := p.payee.Lookup(ctx, in)
		if err == nil {
			err = p.resolve(in, out)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s: %w", in.ID, err))
		}
	}
	return p.st.Paid - before, errors.Join(errs...)
}
