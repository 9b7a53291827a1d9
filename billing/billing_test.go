package billing_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/zennet/zennet/billing"
	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/internal/testprovider"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/renter"
	"github.com/zennet/zennet/sshgate"
	"github.com/zennet/zennet/terms"
)

// payingRenter is a renter's side of one lease paid by the embedded
// channel, kept by hand so that the test decides when to pay: the real
// renter (the renter package, as TestPaymentOnRelease uses it) always pays
// what its bill agrees to, and so never lets a bill go unpaid.
type payingRenter struct {
	t      *testing.T
	c      *sshgate.Client
	lease  proto.Lease
	acct   *pay.Renter
	last   *pay.Request
	proof  pay.Proof
	events []sshgate.Event
}

// next returns the next event, billing usage reports as they come.
func (r *payingRenter) next(ctx context.Context) sshgate.Event {
	r.t.Helper()
	select {
	case ev := <-r.c.Events():
		if ev.Usage != nil {
			if _, err := r.acct.Bill(ev.Usage.Report); err != nil {
				r.t.Fatalf("bill report %d: %v", ev.Usage.Report.Seq, err)
			}
			if ev.Usage.Request != nil {
				r.last = ev.Usage.Request
			}
		}
		r.events = append(r.events, ev)
		return ev
	case <-r.c.Done():
		r.t.Fatalf("provider gone: %v", r.c.Err())
	case <-ctx.Done():
		r.t.Fatalf("waiting for an event: %v (after %d events)", ctx.Err(), len(r.events))
	}
	panic("unreachable")
}

// until reads events until match returns true.
func (r *payingRenter) until(ctx context.Context, what string, match func(sshgate.Event) bool) sshgate.Event {
	r.t.Helper()
	for {
		if ev := r.next(ctx); match(ev) {
			return ev
		} else if ev.Ended != nil {
			r.t.Fatalf("lease ended while waiting for %s: %s", what, ev.Ended.Reason)
		}
	}
}

// payLast pays the latest request and returns the provider's credit.
func (r *payingRenter) payLast(ctx context.Context) proto.Credit {
	r.t.Helper()
	if r.last == nil {
		r.t.Fatal("no payment request received")
	}
	p, err := r.acct.Pay(ctx, *r.last)
	if err != nil {
		r.t.Fatalf("pay: %v", err)
	}
	r.proof = p.Proof
	if err := r.c.Pay(p.Proof); err != nil {
		r.t.Fatal(err)
	}
	return *r.until(ctx, "a credit", func(ev sshgate.Event) bool { return ev.Credit != nil }).Credit
}

// TestPaymentEnforcement runs the payment loop against a real provider and
// sandbox with a renter that pays only when told: after a first payment,
// the host is paused once a bill goes unpaid past the grace, resumed when
// it is paid, and ended when it goes unpaid past the timeout. Bad vouchers
// are refused.
func TestPaymentEnforcement(t *testing.T) {
	p := testprovider.Start(t, lease.Capacity{Leases: 2, Memory: 2 << 30, CPUs: 2, Disk: 8 << 30}, func(c *billing.Config) {
		c.GraceIntervals = 2
		c.UnpaidTimeout = 8 * time.Second
	})
	signer := testenv.Signer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := sshgate.Dial(ctx, p.Addr, sshgate.ClientConfig{Signer: signer, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var offer proto.Offer
	_, leases, err := c.Rent(ctx, proto.Demand{Count: 1, Limits: proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}, IntervalSeconds: 1},
		func(o proto.Offer) (string, error) { offer = o; return pay.MethodEmbedded, nil })
	if err != nil {
		t.Fatal(err)
	}
	if offer.Payment.GraceSeconds != 2 || offer.Payment.UnpaidTimeoutSeconds != 8 || string(offer.Payment.Rates) != `{"cpu_ns":"1/1000"}` {
		t.Fatalf("offer's payment terms = %+v", offer.Payment)
	}
	var rates pay.Rates
	if err := rates.UnmarshalJSON(offer.Payment.Rates); err != nil {
		t.Fatal(err)
	}
	le := leases[0]
	ledger, err := pay.Open(filepath.Join(t.TempDir(), "renter.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	acct, err := ledger.OpenRenter(pay.RenterTerms{Lease: le.ID, Rates: rates, Provider: gossh.FingerprintSHA256(c.HostKey)},
		pay.NewEmbeddedPayer(signer, le.ID, c.HostKey))
	if err != nil {
		t.Fatal(err)
	}
	r := &payingRenter{t: t, c: c, lease: le, acct: acct}

	// The first request is paid: the renter has shown it pays, so the
	// bills it leaves unpaid later pause the host rather than end it.
	r.until(ctx, "a payment request", func(ev sshgate.Event) bool { return ev.Usage != nil && ev.Usage.Request != nil })
	if credit := r.payLast(ctx); credit.Refused != "" || credit.PaidMsat == 0 {
		t.Fatalf("first payment: credit %+v", credit)
	}

	// Unpaid: the provider pauses the host and refuses connections to it.
	paused := r.until(ctx, "a pause", func(ev sshgate.Event) bool { return ev.State != nil })
	if paused.State.State != proto.StatePaused || paused.State.Cause != proto.PauseUnpaid || !strings.HasPrefix(paused.State.Reason, "unpaid: ") {
		t.Fatalf("state = %+v, want paused for want of payment", paused.State)
	}
	if _, err := c.OpenLease(ctx, le.ID); err == nil || !strings.Contains(err.Error(), "paused") {
		t.Fatalf("connecting to a paused host: err = %v, want refused as paused", err)
	}
	if s, _ := p.Leases.State(le.ID); s != lease.Paused {
		t.Fatalf("lease state = %v, want paused", s)
	}

	// A voucher signed by someone else, for this lease: refused, counted
	// as a failure, nothing credited.
	stranger := testenv.Signer(t)
	forged := pay.Voucher{Lease: le.ID, Payee: gossh.FingerprintSHA256(c.HostKey), Seq: 9, Total: acct.Status().Billed}
	if err := forged.Sign(stranger); err != nil {
		t.Fatal(err)
	}
	if err := c.Pay(pay.Proof{Method: pay.MethodEmbedded, Lease: le.ID, Msat: r.last.Msat, Voucher: &forged}); err != nil {
		t.Fatal(err)
	}
	refused := r.until(ctx, "a credit", func(ev sshgate.Event) bool { return ev.Credit != nil }).Credit
	if refused.Refused == "" || refused.PaidMsat != acct.Status().Paid {
		t.Fatalf("forged voucher: credit %+v, want refused with nothing more paid than the %d msat before", refused, acct.Status().Paid)
	}

	// Paid: resumed, and connections work again.
	credit := r.payLast(ctx)
	if credit.Refused != "" || credit.PaidMsat != acct.Status().Paid || credit.PaidMsat == 0 {
		t.Fatalf("credit %+v, renter paid %d msat", credit, acct.Status().Paid)
	}
	resumed := r.until(ctx, "a resume", func(ev sshgate.Event) bool { return ev.State != nil })
	if resumed.State.State != proto.StateRunning || resumed.State.Cause != proto.PauseUnpaid {
		t.Fatalf("state = %+v, want running", resumed.State)
	}
	st, err := c.OpenLease(ctx, le.ID)
	if err != nil {
		t.Fatalf("connecting after payment: %v", err)
	}
	st.Close()

	// The same voucher again: a replay, refused.
	claim := acct.Status()
	if err := c.Pay(pay.Proof{Method: pay.MethodEmbedded, Lease: le.ID, Msat: credit.PaidMsat, Voucher: r.proof.Voucher}); err != nil {
		t.Fatal(err)
	}
	replay := r.until(ctx, "a credit", func(ev sshgate.Event) bool { return ev.Credit != nil }).Credit
	if replay.Refused == "" || replay.PaidMsat != claim.Paid {
		t.Fatalf("replayed voucher: credit %+v, want refused with %d msat paid", replay, claim.Paid)
	}

	// Unpaid past the timeout: the lease ends, with its final report.
	var final *sshgate.Usage
	ended := r.until(ctx, "the end", func(ev sshgate.Event) bool {
		if ev.Usage != nil && ev.Usage.Final {
			final = ev.Usage
		}
		return ev.Ended != nil
	})
	if ended.Ended.Cause != proto.EndUnpaid || !strings.HasPrefix(ended.Ended.Reason, "unpaid: ") || final == nil {
		t.Fatalf("ended: %+v (final report %v), want ended for want of payment with a final report", ended.Ended, final != nil)
	}
	if left := p.Leases.List(); len(left) != 0 {
		t.Fatalf("%d leases left after the unpaid end", len(left))
	}
	// The provider's account agrees with the renter's on the bill.
	ps, ok := p.Billing.Status(le.ID)
	if !ok {
		t.Fatal("provider closed the account while the renter is connected")
	}
	rs := acct.Status()
	if ps.Billed != rs.Billed || ps.Paid != rs.Paid || ps.LastSeq != rs.LastSeq {
		t.Fatalf("provider billed %d paid %d up to %d; renter billed %d paid %d up to %d",
			ps.Billed, ps.Paid, ps.LastSeq, rs.Billed, rs.Paid, rs.LastSeq)
	}
}

// TestPaymentOnRelease: the real renter (renter.Rent, Hold, Release) rents
// a host, pays its reports as they come and releases it; the final report is
// billed and paid, and both sides' accounts agree to the msat.
func TestPaymentOnRelease(t *testing.T) {
	p := testprovider.Start(t, lease.Capacity{Leases: 2, Memory: 2 << 30, CPUs: 2, Disk: 8 << 30}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	r, err := renter.Rent(ctx, renter.Config{
		ConfigDir: dir, Signer: testenv.Signer(t), KeyPath: filepath.Join(dir, "id_ed25519"),
		Count: 1, Limits: proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}, Providers: []string{p.Addr},
		Interval: time.Second, Timeout: time.Minute, Pay: []string{pay.MethodEmbedded},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Hosts()[0].LeaseID
	holdCtx, stop := context.WithCancel(ctx)
	held := make(chan error, 1)
	go func() { held <- r.Hold(holdCtx) }()
	// Hold until the provider has counted a payment.
	for {
		if ps, ok := p.Billing.Status(id); ok && ps.Paid > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the provider counted no payment")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-held; err != nil {
		t.Fatalf("hold: %v", err)
	}
	if err := r.Release(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(r.Receipts()) != 1 {
		t.Fatalf("%d receipts, want 1", len(r.Receipts()))
	}
	rr := r.Receipts()[0]
	rs := rr.Receipt.Status
	// Once the renter hangs up, the provider closes its account.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, open := p.Billing.Status(id); !open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("provider kept the account open after the renter left")
		}
		time.Sleep(50 * time.Millisecond)
	}
	prc, err := p.Ledger.Receipt(id)
	if err != nil {
		t.Fatal(err)
	}
	ps := prc.Status
	if rs.Billed == 0 || ps.Billed != rs.Billed || ps.Paid != rs.Paid || rs.Due != 0 || ps.Unpaid != 0 || rr.CreditedMsat != rs.Paid {
		t.Fatalf("after release: provider billed %d paid %d unpaid %d; renter billed %d paid %d due %d, credited %d",
			ps.Billed, ps.Paid, ps.Unpaid, rs.Billed, rs.Paid, rs.Due, rr.CreditedMsat)
	}
	if ps.Closed.IsZero() || rs.Closed.IsZero() {
		t.Fatalf("accounts left open: provider closed %v, renter closed %v", ps.Closed, rs.Closed)
	}
}

// TestNonPayerLoss is the attack of a stranger's key that takes every host
// it may, keeps their CPUs busy and never pays. Each host ends unpaid once
// the grace's reports have gone unpaid, without a pause that would hold its
// memory; the most the provider loses to the key is, per host, one
// interval's price plus the grace's at the host's limits (printed); the
// key's next demand is refused with the reason, and another key is served.
func TestNonPayerLoss(t *testing.T) {
	const grace, perKey = 2, 2
	book := market.OpenBook(filepath.Join(t.TempDir(), "reputation.json"))
	p := testprovider.StartWith(t, testprovider.Options{
		Capacity:  lease.Capacity{Leases: 3, Memory: 2 << 30, CPUs: 3, Disk: 12 << 30},
		PerRenter: lease.Capacity{Leases: perKey},
		Billing:   func(c *billing.Config) { c.GraceIntervals, c.Reputation = grace, book },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stranger := testenv.Signer(t)
	c, err := sshgate.Dial(ctx, p.Addr, sshgate.ClientConfig{Signer: stranger, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	limits := proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}
	var offer proto.Offer
	_, leases, err := c.Rent(ctx, proto.Demand{Count: 3, Limits: limits, IntervalSeconds: 1},
		func(o proto.Offer) (string, error) { offer = o; return pay.MethodEmbedded, nil })
	if len(leases) != perKey || !errors.Is(err, proto.ErrCapacity) {
		t.Fatalf("3 hosts asked under a cap of %d per key: got %d, err = %v", perKey, len(leases), err)
	}
	// Both at once: a host ends about 1+grace intervals after its first
	// report, and under load an ssh into a sandbox takes seconds.
	var g errgroup.Group
	for _, le := range leases {
		g.Go(func() error { return burn(ctx, t, c, le, stranger) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var rates pay.Rates
	if err := rates.UnmarshalJSON(offer.Payment.Rates); err != nil {
		t.Fatal(err)
	}
	// The price of a host at its limits for one second: every CPU busy.
	var busy meter.Vector
	busy[meter.CPU] = uint64(limits.CPUs * 1e9)
	perSecondRat := rates.Cost(busy)
	if !perSecondRat.IsInt() {
		t.Fatalf("a host-second costs %s msat: want whole msat for this test", perSecondRat.RatString())
	}
	perSecond := perSecondRat.Num().Uint64()
	ended := map[string]proto.Ended{}
	first, final := map[string]meter.Report{}, map[string]meter.Report{}
	for len(ended) < perKey {
		select {
		case ev := <-c.Events():
			switch {
			case ev.State != nil && ev.State.State == proto.StatePaused:
				t.Fatalf("a host never paid for was paused (holding its memory) instead of ended: %+v", ev.State)
			case ev.Usage != nil && ev.Usage.Report.Seq == 1:
				first[ev.Usage.Report.Lease] = ev.Usage.Report
			case ev.Usage != nil && ev.Usage.Final:
				final[ev.Usage.Report.Lease] = ev.Usage.Report
			case ev.Ended != nil:
				ended[ev.Ended.ID] = *ev.Ended
			}
		case <-ctx.Done():
			t.Fatalf("hosts never paid for still run: %d of %d ended", len(ended), perKey)
		}
	}
	var lost uint64
	var extra time.Duration // start-up before the first interval, and the final report's part of one
	iv := time.Duration(offer.IntervalSeconds) * time.Second
	for _, le := range leases {
		e, f, l := ended[le.ID], first[le.ID], final[le.ID]
		if e.Cause != proto.EndUnpaid || !strings.Contains(e.Reason, "nothing ever paid") {
			t.Fatalf("lease %s ended %+v, want unpaid", le.ID, e)
		}
		st, ok := p.Billing.Status(le.ID)
		if !ok {
			t.Fatalf("lease %s: no account", le.ID)
		}
		// Reports: the one that made the bill payable, the grace's, the
		// final one.
		if st.Reports > 1+grace+1 || st.Paid != 0 || l.Seq != st.Reports {
			t.Fatalf("lease %s: %d reports billed (final %d), %d msat paid; want at most %d reports, nothing paid", le.ID, st.Reports, l.Seq, st.Paid, 1+grace+1)
		}
		// Never more than the host's limits for the time it ran.
		life := l.Time.Sub(l.Start)
		if maxBill := float64(perSecond) * life.Seconds() * 1.02; float64(st.Unpaid) > maxBill {
			t.Fatalf("lease %s: %d msat unpaid in %s, more than its limits allow (%.0f)", le.ID, st.Unpaid, life, maxBill)
		}
		lost += st.Unpaid
		extra += (f.Time.Sub(f.Start) - iv) + (l.Time.Sub(l.Start) - f.Time.Sub(f.Start) - grace*iv)
	}
	// One interval plus the grace, at the host's limits, per host.
	bound := uint64(perKey) * (1 + grace) * uint64(offer.IntervalSeconds) * perSecond
	t.Logf("most lost to one renter key that never pays: %d msat over %d hosts = %.2f host-seconds at %d msat each; the bound (1 interval + %d of grace) × %d hosts = %d msat, and %s of start-up and final reports",
		lost, perKey, float64(lost)/float64(perSecond), perSecond, grace, perKey, bound, extra.Round(time.Millisecond))
	if limit := bound + uint64(float64(perSecond)*extra.Seconds()*1.02); lost > limit {
		t.Fatalf("lost %d msat to one key, more than %d", lost, limit)
	}
	if lost < bound/4 {
		t.Fatalf("lost only %d msat of a bound of %d: the hosts did not burn their CPUs, so this test proves nothing", lost, bound)
	}

	// The key is refused now, with the reason; another key is served.
	if _, err := c.Offer(ctx, proto.Demand{Count: 1, Limits: limits}); !errors.Is(err, proto.ErrCapacity) ||
		!strings.Contains(err.Error(), "ended unpaid") || !strings.Contains(err.Error(), gossh.FingerprintSHA256(stranger.PublicKey())) {
		t.Fatalf("the non-payer's next demand: err = %v, want refused as a non-payer", err)
	}
	other, err := sshgate.Dial(ctx, p.Addr, sshgate.ClientConfig{Signer: testenv.Signer(t), HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if o, err := other.Offer(ctx, proto.Demand{Count: 1, Limits: limits}); err != nil || o.Count != 1 {
		t.Fatalf("another key: offer %+v, %v", o, err)
	}
}

// burn keeps le's CPU busy: an SSH session into the host runs a busy loop
// in the background.
func burn(ctx context.Context, t *testing.T, c *sshgate.Client, le proto.Lease, signer gossh.Signer) error {
	hk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(le.HostKey))
	if err != nil {
		return err
	}
	st, err := c.OpenStream(ctx, le.ID)
	if err != nil {
		return err
	}
	conn, chans, reqs, err := gossh.NewClientConn(st, le.ID, &gossh.ClientConfig{User: "root", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.FixedHostKey(hk)})
	if err != nil {
		return fmt.Errorf("ssh into %s: %w", le.ID, err)
	}
	sc := gossh.NewClient(conn, chans, reqs)
	t.Cleanup(func() { sc.Close() })
	s, err := sc.NewSession()
	if err != nil {
		return err
	}
	if err := s.Run("nohup sh -c 'while :; do :; done' >/dev/null 2>&1 &"); err != nil {
		return fmt.Errorf("start a busy loop in %s: %w", le.ID, err)
	}
	return nil
}

// TestPrepayment: a provider that asks keys it does not know to pay up
// front offers them hosts whose first interval (terms.Prepay) is owed at
// once; the lease message carries the request, and the host stays paused
// (no connection, no CPU) until it is paid, then runs. A key with a paid
// lease here is asked nothing up front. A key that never prepays gets a
// host that never runs and ends unpaid at the grace: what it cost the
// provider is printed.
func TestPrepayment(t *testing.T) {
	book := market.OpenBook(filepath.Join(t.TempDir(), "reputation.json"))
	p := testprovider.StartWith(t, testprovider.Options{
		Capacity: lease.Capacity{Leases: 3, Memory: 2 << 30, CPUs: 3, Disk: 12 << 30},
		Billing: func(c *billing.Config) {
			c.GraceIntervals, c.Reputation, c.Prepay = 2, book, true
			c.Rates.Set(meter.MemoryTime, "1/3686400")
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	limits := proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}
	rent := func(signer gossh.Signer) (*sshgate.Client, proto.Offer, proto.Lease, pay.Rates) {
		t.Helper()
		c, err := sshgate.Dial(ctx, p.Addr, sshgate.ClientConfig{Signer: signer, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		var offer proto.Offer
		var rates pay.Rates
		_, leases, err := c.Rent(ctx, proto.Demand{Count: 1, Limits: limits, IntervalSeconds: 1}, func(o proto.Offer) (string, error) {
			offer = o
			method, r, _, err := terms.Accept(nil, o)
			rates = r
			return method, err
		})
		if err != nil {
			t.Fatal(err)
		}
		return c, offer, leases[0], rates
	}

	// A stranger: asked the first interval up front.
	stranger := testenv.Signer(t)
	c, offer, le, rates := rent(stranger)
	want := terms.Prepay(rates, offer.Limits, offer.IntervalSeconds)
	if offer.Payment.PrepayMsat != want || want == 0 {
		t.Fatalf("offer to a stranger asks %d msat up front, want %d", offer.Payment.PrepayMsat, want)
	}
	req, err := pay.DecodeRequest(le.Prepay)
	if err != nil || req.Seq != 0 || req.Msat != want || req.Lease != le.ID {
		t.Fatalf("the lease's prepayment request: %+v, %v", req, err)
	}
	if s, why := p.Leases.State(le.ID); s != lease.Paused || !strings.Contains(why.Reason, "prepayment") {
		t.Fatalf("an unpaid prepaid host is %v (%s), want paused awaiting its prepayment", s, why.Reason)
	}
	if _, err := c.OpenLease(ctx, le.ID); err == nil || !strings.Contains(err.Error(), "prepayment") {
		t.Fatalf("connecting before the prepayment: err = %v", err)
	}
	ledger, err := pay.Open(filepath.Join(t.TempDir(), "renter.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	acct, err := ledger.OpenRenter(pay.RenterTerms{Lease: le.ID, Rates: rates, Prepay: want, Provider: gossh.FingerprintSHA256(c.HostKey)},
		pay.NewEmbeddedPayer(stranger, le.ID, c.HostKey))
	if err != nil {
		t.Fatal(err)
	}
	r := &payingRenter{t: t, c: c, lease: le, acct: acct, last: &req}
	if credit := r.payLast(ctx); credit.Refused != "" || credit.PaidMsat != want {
		t.Fatalf("prepayment credit %+v", credit)
	}
	if st := r.until(ctx, "the start", func(ev sshgate.Event) bool { return ev.State != nil }).State; st.State != proto.StateRunning {
		t.Fatalf("after the prepayment: %+v, want running", st)
	}
	st, err := c.OpenLease(ctx, le.ID)
	if err != nil {
		t.Fatalf("connecting after the prepayment: %v", err)
	}
	st.Close()

	// A key with a lease completed and paid here: nothing up front.
	regular := testenv.Signer(t)
	if _, err := book.Note(gossh.FingerprintSHA256(regular.PublicKey()), market.Completed(), time.Now()); err != nil {
		t.Fatal(err)
	}
	_, offer, le2, _ := rent(regular)
	if offer.Payment.PrepayMsat != 0 || len(le2.Prepay) != 0 {
		t.Fatalf("a known key was asked %d msat up front (lease request %q)", offer.Payment.PrepayMsat, le2.Prepay)
	}
	if s, _ := p.Leases.State(le2.ID); s != lease.Running {
		t.Fatalf("a known key's host is %v, want running", s)
	}

	// A stranger that never prepays: its host never runs and ends unpaid.
	c3, _, le3, _ := rent(testenv.Signer(t))
	var ended *proto.Ended
	var final meter.Report
	for ended == nil {
		select {
		case ev := <-c3.Events():
			if ev.State != nil && ev.State.State == proto.StateRunning {
				t.Fatalf("an unprepaid host was started: %+v", ev.State)
			}
			if ev.Usage != nil {
				final = ev.Usage.Report
			}
			ended = ev.Ended
		case <-ctx.Done():
			t.Fatal("an unprepaid host never ended")
		}
	}
	ps, _ := p.Billing.Status(le3.ID)
	if ended.Cause != proto.EndUnpaid || ps.Paid != 0 {
		t.Fatalf("unprepaid host ended %+v; account %+v", ended, ps)
	}
	t.Logf("a key that never prepays: its host ended after %d reports, never started; it used %d ms of CPU and was billed %d msat (its start, then memory held while paused), %d msat owed up front",
		ps.Reports, final.Counters[meter.CPU]/1e6, ps.Billed, ps.Prepay)
	if final.Counters[meter.CPU] > 2e9 {
		t.Fatalf("the unprepaid host used %d ns of CPU: it ran", final.Counters[meter.CPU])
	}
}
