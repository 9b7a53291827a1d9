package pay

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zennet/zennet/meter"
	"golang.org/x/crypto/ssh"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openLedger(t testing.TB, path string, c *clock) *Ledger {
	t.Helper()
	o := &Options{}
	if c != nil {
		o.Now = c.Now
	}
	l, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// meterSource produces a lease's signed usage reports: every report adds
// usage to the counters.
type meterSource struct {
	t        testing.TB
	lease    string
	signer   ssh.Signer
	start    time.Time
	seq      uint64
	counters meter.Vector
}

func newMeterSource(t testing.TB, lease string) *meterSource {
	return &meterSource{t: t, lease: lease, signer: testKey(t, 2), start: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
}

func (m *meterSource) next(usage meter.Vector) meter.Report {
	m.t.Helper()
	m.seq++
	for i := range usage {
		m.counters[i] += usage[i]
	}
	r := meter.Report{Lease: m.lease, Seq: m.seq, Start: m.start, Time: m.start.Add(time.Duration(m.seq) * 5 * time.Second), Counters: m.counters}
	if err := r.Sign(m.signer); err != nil {
		m.t.Fatal(err)
	}
	return r
}

// embeddedPair is one lease paid over the embedded channel: the renter's
// and the provider's accounts, each in its own ledger.
type embeddedPair struct {
	renter   *Renter
	provider *Provider
	src      *meterSource
	prev     *meter.Report
}

func openEmbeddedPair(t testing.TB, rl, pl *Ledger, lease string, rates Rates, minPayable uint64) *embeddedPair {
	t.Helper()
	renterKey, providerKey := testKey(t, 1), testKey(t, 2)
	r, err := rl.OpenRenter(RenterTerms{Lease: lease, Rates: rates, MinPayable: minPayable,
		Provider: ssh.FingerprintSHA256(providerKey.PublicKey())},
		NewEmbeddedPayer(renterKey, lease, providerKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pl.OpenProvider(ProviderTerms{Lease: lease, Rates: rates, MinPayable: minPayable,
		Renter: ssh.FingerprintSHA256(renterKey.PublicKey())},
		NewEmbeddedPayee(lease, renterKey.PublicKey(), providerKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	return &embeddedPair{renter: r, provider: p, src: newMeterSource(t, lease)}
}

// interval runs one interval of the payment loop over encoded messages:
// the provider bills its report and asks; the renter checks the report,
// bills it, and pays; the provider counts the payment. It returns the msat
// the provider counted.
func (e *embeddedPair) interval(t testing.TB, usage meter.Vector) uint64 {
	t.Helper()
	ctx := context.Background()
	rep := e.src.next(usage)
	if _, err := e.provider.Bill(rep); err != nil {
		t.Fatal(err)
	}
	req, err := e.provider.Request(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The renter's side.
	if err := meter.Check(meter.Terms{Lease: rep.Lease, Key: e.src.signer.PublicKey()}, e.prev, rep); err != nil {
		t.Fatal(err)
	}
	e.prev = &rep
	if _, err := e.renter.Bill(rep); err != nil {
		t.Fatal(err)
	}
	if req == nil {
		return 0
	}
	wire, err := EncodeRequest(*req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRequest(wire)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := e.renter.Pay(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	wire, err = EncodeProof(pm.Proof)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := DecodeProof(wire)
	if err != nil {
		t.Fatal(err)
	}
	credited, err := e.provider.Confirm(ctx, proof)
	if err != nil {
		t.Fatal(err)
	}
	return credited
}

func cpuUsage(ns uint64) meter.Vector { return vec(uint64(meter.CPU), ns) }

func TestEmbeddedPayments(t *testing.T) {
	dir := t.TempDir()
	rl, pl := openLedger(t, filepath.Join(dir, "renter.db"), nil), openLedger(t, filepath.Join(dir, "provider.db"), nil)
	defer rl.Close()
	defer pl.Close()
	var rates Rates
	if err := rates.Set(meter.CPU, "1/3"); err != nil { // 1 msat per 3 ns of CPU
		t.Fatal(err)
	}
	e := openEmbeddedPair(t, rl, pl, testLease, rates, 1000)
	steps := []struct {
		name     string
		cpu      uint64
		credited uint64
	}{
		{name: "below the minimum waits", cpu: 1000},                // 333 msat + 1/3
		{name: "still below", cpu: 1000},                            // 666 + 2/3
		{name: "payable at last", cpu: 1001, credited: 1000},        // 1000
		{name: "one interval payable", cpu: 6000, credited: 2000},   // 3000
		{name: "idle", cpu: 0},                                      // nothing due
		{name: "a remainder carried", cpu: 3001, credited: 1000},    // 4000 + 2/3
		{name: "carry completes a msat", cpu: 3001, credited: 1001}, // 5001
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if got := e.interval(t, cpuUsage(s.cpu)); got != s.credited {
				t.Errorf("credited %d msat, want %d", got, s.credited)
			}
		})
	}
	rs, ps := e.renter.Status(), e.provider.Status()
	if rs.Billed != 5001 || rs.Paid != 5001 || ps.Billed != 5001 || ps.Paid != 5001 || rs.Carry != "0" || ps.Carry != "0" {
		t.Errorf("renter %+v\nprovider %+v", rs, ps)
	}
	if rs.Pending != 0 || ps.Pending != 0 || rs.Payable != 0 || ps.Payable != 0 {
		t.Errorf("pending or payable left: renter %+v provider %+v", rs, ps)
	}
	rr, err := e.renter.Close()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := e.provider.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rr.Status.Paid != pr.Status.Paid || rr.Status.Billed != pr.Status.Billed {
		t.Errorf("receipts disagree:\nrenter   %+v\nprovider %+v", rr, pr)
	}
	if _, err := e.renter.Bill(e.src.next(cpuUsage(1))); !errors.Is(err, ErrClosed) {
		t.Errorf("billing a closed lease: %v", err)
	}
	// The ledgers' histories hold every report, bill and payment.
	for _, tt := range []struct {
		name string
		l    *Ledger
		q    Query
		n    int
	}{
		{name: "renter bills", l: rl, q: Query{Lease: testLease, Kinds: []string{EntryBill}}, n: 7},
		{name: "renter payments", l: rl, q: Query{Kinds: []string{EntryPaid}}, n: 4},
		{name: "provider credits", l: pl, q: Query{Kinds: []string{EntryCredit}}, n: 4},
		{name: "provider requests", l: pl, q: Query{Kinds: []string{EntryIntent}}, n: 4},
		{name: "last two", l: rl, q: Query{Limit: 2}, n: 2},
		{name: "everything", l: rl, q: Query{}, n: 1 + 7 + 4 + 4 + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := tt.l.History(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != tt.n {
				var kinds []string
				for _, e := range h {
					kinds = append(kinds, e.Kind)
				}
				t.Errorf("%d entries, want %d: %v", len(h), tt.n, kinds)
			}
		})
	}
	h, err := rl.History(Query{Kinds: []string{EntryBill}, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := meter.Decode(h[0].Report); err != nil || r.Seq != 7 || r.Verify(testKey(t, 2).PublicKey()) != nil {
		t.Errorf("recorded report: %+v, %v", r, err)
	}
	if _, err := rl.History(Query{Lease: "zn-nosuchlease"}); !errors.Is(err, ErrNoLease) {
		t.Errorf("history of an unknown lease: %v", err)
	}
}

func TestRenterRefuses(t *testing.T) {
	dir := t.TempDir()
	rl, pl := openLedger(t, filepath.Join(dir, "renter.db"), nil), openLedger(t, filepath.Join(dir, "provider.db"), nil)
	defer rl.Close()
	defer pl.Close()
	var rates Rates
	if err := rates.Set(meter.CPU, "1"); err != nil {
		t.Fatal(err)
	}
	e := openEmbeddedPair(t, rl, pl, testLease, rates, 10)
	e.interval(t, cpuUsage(100)) // billed and paid 100
	rep := e.src.next(cpuUsage(50))
	if _, err := e.renter.Bill(rep); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
		want error
	}{
		{name: "more than billed", req: Request{Method: MethodEmbedded, Lease: testLease, Seq: 2, Msat: 151}, want: ErrAmount},
		{name: "report not billed yet", req: Request{Method: MethodEmbedded, Lease: testLease, Seq: 3, Msat: 50}, want: ErrAmount},
		{name: "below the minimum", req: Request{Method: MethodEmbedded, Lease: testLease, Seq: 2, Msat: 9}, want: ErrBelowMinimum},
		{name: "another lease", req: Request{Method: MethodEmbedded, Lease: "zn-fffffffffffffffff", Seq: 2, Msat: 50}, want: ErrBadRequest},
		{name: "another method", req: Request{Method: MethodLightning, Lease: testLease, Seq: 2, Msat: 50, Invoice: "lnsb1"}, want: ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.renter.Pay(context.Background(), tt.req); !errors.Is(err, tt.want) {
				t.Fatalf("Pay: %v, want %v", err, tt.want)
			}
		})
	}
	if s := e.renter.Status(); s.Paid != 100 || s.Pending != 0 || s.Due != 50 {
		t.Errorf("refused requests changed the account: %+v", s)
	}
	// A request for more than is due but no more than was billed crossed a
	// payment in flight: the voucher pays what is due, no more.
	p, err := e.renter.Pay(context.Background(), Request{Method: MethodEmbedded, Lease: testLease, Seq: 2, Msat: 120})
	if err != nil || p.Intent.Msat != 50 || p.Proof.Voucher == nil || p.Proof.Voucher.Total != 150 {
		t.Fatalf("crossing request: %+v, %v; want a voucher of 50 msat, 150 in all", p.Intent, err)
	}
	if s := e.renter.Status(); s.Paid != 150 || s.Due != 0 {
		t.Errorf("after the crossing request: %+v", s)
	}
	// Nothing is due now: a request for the same is a crossing one, unpaid.
	if _, err := e.renter.Pay(context.Background(), Request{Method: MethodEmbedded, Lease: testLease, Seq: 2, Msat: 50}); !errors.Is(err, ErrCrossing) {
		t.Fatalf("request with nothing due: %v, want ErrCrossing", err)
	}
}

func TestProviderRefusesProofs(t *testing.T) {
	dir := t.TempDir()
	rl, pl := openLedger(t, filepath.Join(dir, "renter.db"), nil), openLedger(t, filepath.Join(dir, "provider.db"), nil)
	defer rl.Close()
	defer pl.Close()
	var rates Rates
	if err := rates.Set(meter.CPU, "1"); err != nil {
		t.Fatal(err)
	}
	e := openEmbeddedPair(t, rl, pl, testLease, rates, 1)
	ctx := context.Background()
	rep := e.src.next(cpuUsage(100))
	mustBill(t, e.provider, rep)
	mustBill(t, e.renter, rep)
	req, err := e.provider.Request(ctx)
	if err != nil || req == nil {
		t.Fatalf("request %v, %v", req, err)
	}
	pm, err := e.renter.Pay(ctx, *req)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.provider.Confirm(ctx, pm.Proof); err != nil || got != 100 {
		t.Fatalf("Confirm: %d, %v", got, err)
	}
	stranger := func() Proof {
		v := Voucher{Lease: testLease, Payee: pm.Proof.Voucher.Payee, Seq: 9, Total: 1 << 40}
		if err := v.Sign(testKey(t, 3)); err != nil {
			t.Fatal(err)
		}
		return Proof{Method: MethodEmbedded, Lease: testLease, Msat: 1 << 40, Voucher: &v}
	}()
	tests := []struct {
		name  string
		proof Proof
		want  error
	}{
		{name: "replay", proof: pm.Proof, want: ErrVoucherReplay},
		{name: "stranger's voucher", proof: stranger, want: ErrBadVoucherSignature},
		{name: "another lease", proof: Proof{Method: MethodEmbedded, Lease: "zn-fffffffffffffffff", Voucher: pm.Proof.Voucher}, want: ErrBadRequest},
		{name: "lightning proof", proof: Proof{Method: MethodLightning, Lease: testLease, PaymentHash: "00"}, want: ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := e.provider.Confirm(ctx, tt.proof); !errors.Is(err, tt.want) || got != 0 {
				t.Fatalf("Confirm: %d, %v, want %v", got, err, tt.want)
			}
		})
	}
	if s := e.provider.Status(); s.Paid != 100 {
		t.Errorf("refused proofs changed the account: %+v", s)
	}
	if h, err := pl.History(Query{Kinds: []string{EntryRejected}}); err != nil || len(h) != 2 {
		t.Errorf("rejections recorded: %d, %v", len(h), err)
	}
}

func TestStatusOverdue(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	rl, pl := openLedger(t, filepath.Join(dir, "renter.db"), c), openLedger(t, filepath.Join(dir, "provider.db"), c)
	defer rl.Close()
	defer pl.Close()
	var rates Rates
	if err := rates.Set(meter.CPU, "1"); err != nil {
		t.Fatal(err)
	}
	e := openEmbeddedPair(t, rl, pl, testLease, rates, 1000)
	ctx := context.Background()
	grace := 10 * time.Second
	bill := func(ns uint64) {
		if _, err := e.provider.Bill(e.src.next(cpuUsage(ns))); err != nil {
			t.Fatal(err)
		}
	}
	bill(999)
	if s := e.provider.Status(); !s.UnpaidSince.IsZero() || s.Overdue(c.Now().Add(time.Hour), grace) {
		t.Fatalf("below the minimum counts as unpaid: %+v", s)
	}
	c.Add(5 * time.Second)
	bill(1)
	since := c.Now()
	if s := e.provider.Status(); !s.UnpaidSince.Equal(since) || s.Payable != 1000 {
		t.Fatalf("payable: %+v", s)
	}
	c.Add(5 * time.Second)
	bill(500)
	for _, tt := range []struct {
		name string
		at   time.Duration
		want bool
	}{
		{name: "within grace", at: grace, want: false},
		{name: "past grace", at: grace + time.Millisecond, want: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.provider.Status().Overdue(since.Add(tt.at), grace); got != tt.want {
				t.Errorf("Overdue = %v", got)
			}
		})
	}
	// Paying all but a sub-minimum rest clears it.
	req, err := e.provider.Request(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := Voucher{Lease: testLease, Payee: ssh.FingerprintSHA256(testKey(t, 2).PublicKey()), Seq: 1, Total: 1400}
	if err := v.Sign(testKey(t, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.provider.Confirm(ctx, Proof{Method: MethodEmbedded, Lease: testLease, Msat: 1400, Voucher: &v}); err != nil {
		t.Fatal(err)
	}
	s := e.provider.Status()
	if !s.UnpaidSince.IsZero() || s.Unpaid != 100 || s.Pending != req.Msat || s.Overdue(since.Add(time.Hour), grace) {
		// The voucher paid less than the request asked: the request stays
		// pending until the next Request withdraws it.
		t.Errorf("after paying: %+v", s)
	}
	if _, err := e.provider.Request(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.provider.Status(); s.Pending != 0 || s.Due != 100 || s.Payable != 0 {
		t.Errorf("after withdrawing the request: %+v", s)
	}
}

func TestConcurrentLeases(t *testing.T) {
	dir := t.TempDir()
	rl, pl := openLedger(t, filepath.Join(dir, "renter.db"), nil), openLedger(t, filepath.Join(dir, "provider.db"), nil)
	defer rl.Close()
	defer pl.Close()
	var rates Rates
	if err := rates.Set(meter.CPU, "7/3"); err != nil {
		t.Fatal(err)
	}
	const leases, intervals = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, leases)
	for i := range leases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease := fmt.Sprintf("zn-%017x", i)
			e := openEmbeddedPair(t, rl, pl, lease, rates, 1000)
			var credited uint64
			for range intervals {
				credited += e.interval(t, cpuUsage(uint64(500+100*i)))
			}
			rr, err := e.renter.Close()
			if err != nil {
				errs <- err
				return
			}
			pr, err := e.provider.Close()
			if err != nil {
				errs <- err
				return
			}
			billed := uint64(intervals*(500+100*i)) * 7 / 3
			if rr.Status.Billed != billed || pr.Status.Billed != billed || pr.Status.Paid != credited ||
				rr.Status.Paid != credited || billed-credited >= 1000 {
				errs <- fmt.Errorf("lease %s: billed %d, renter %+v, provider %+v, credited %d", lease, billed, rr.Status, pr.Status, credited)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rr, err := rl.Receipts()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := pl.Receipts()
	if err != nil {
		t.Fatal(err)
	}
	rt, pt := Total(rr, RoleRenter), Total(pr, RoleProvider)
	if rt.Leases != leases || rt.Paid != pt.Paid || rt.Billed != pt.Billed {
		t.Errorf("totals disagree: renter %+v provider %+v", rt, pt)
	}
}

func TestOpenTwice(t *testing.T) {
	dir := t.TempDir()
	rl, pl := openLedger(t, filepath.Join(dir, "renter.db"), nil), openLedger(t, filepath.Join(dir, "provider.db"), nil)
	defer rl.Close()
	defer pl.Close()
	e := openEmbeddedPair(t, rl, pl, testLease, Rates{}, 1)
	p := NewEmbeddedPayer(testKey(t, 1), testLease, testKey(t, 2).PublicKey())
	if _, err := rl.OpenRenter(RenterTerms{Lease: testLease}, p); !errors.Is(err, ErrLeaseOpen) {
		t.Errorf("second open: %v", err)
	}
	e.renter.Detach()
	if _, err := pl.OpenRenter(RenterTerms{Lease: "zn-fffffffffffffffff"}, p); err != nil {
		t.Fatal(err)
	}
	e.provider.Detach()
	if _, err := pl.OpenRenter(RenterTerms{Lease: testLease}, p); !errors.Is(err, ErrLeaseTerms) {
		t.Errorf("a provider's lease opened as a renter's: %v", err)
	}
}

// A prepaid lease: the prepayment is owed, asked and paid before any
// report, and a renter pays no more than it agreed; the bill counts
// against the prepayment until it passes it, then is paid as usual; a
// lease shorter than its prepayment keeps what was prepaid on both
// receipts, and nothing is owed on either. The terms survive a reopen.
func TestPrepayment(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	rl, pl := openLedger(t, filepath.Join(dir, "r.db"), c), openLedger(t, filepath.Join(dir, "p.db"), c)
	defer rl.Close()
	defer pl.Close()
	var rates Rates
	if err := rates.Set(meter.CPU, "1/1000"); err != nil { // 1 msat per µs
		t.Fatal(err)
	}
	const lease, prepay = "zn-0123456789abcdef0", 5000
	renterKey, providerKey := testKey(t, 1), testKey(t, 2)
	r, err := rl.OpenRenter(RenterTerms{Lease: lease, Rates: rates, Prepay: prepay, Provider: ssh.FingerprintSHA256(providerKey.PublicKey())},
		NewEmbeddedPayer(renterKey, lease, providerKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pl.OpenProvider(ProviderTerms{Lease: lease, Rates: rates, Prepay: prepay, Renter: ssh.FingerprintSHA256(renterKey.PublicKey())},
		NewEmbeddedPayee(lease, renterKey.PublicKey(), providerKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	e := &embeddedPair{renter: r, provider: p, src: newMeterSource(t, lease)}
	ctx := context.Background()
	if st := p.Status(); st.Unpaid != prepay || st.UnpaidSince.IsZero() || st.Payable != prepay {
		t.Fatalf("before any report: %+v; want the prepayment owed and payable", st)
	}
	req, err := p.Request(ctx)
	if err != nil || req == nil || req.Seq != 0 || req.Msat != prepay {
		t.Fatalf("prepayment request %+v, %v", req, err)
	}
	wire, err := EncodeRequest(*req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRequest(wire); err != nil {
		t.Fatal(err)
	}
	over := *req
	over.Msat = prepay + 1
	if _, err := r.Pay(ctx, over); !errors.Is(err, ErrAmount) {
		t.Fatalf("a prepayment request for more than agreed: err = %v", err)
	}
	pm, err := r.Pay(ctx, *req)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Confirm(ctx, pm.Proof); err != nil || n != prepay {
		t.Fatalf("prepayment counted %d, %v", n, err)
	}
	if st := p.Status(); st.Unpaid != 0 || !st.UnpaidSince.IsZero() {
		t.Fatalf("after the prepayment: %+v", st)
	}
	// 3000 msat of use: covered, nothing asked.
	if got := e.interval(t, cpuUsage(3_000_000)); got != 0 {
		t.Fatalf("within the prepayment: %d msat counted", got)
	}
	// 4000 more: 7000 billed, 2000 past the prepayment.
	if got := e.interval(t, cpuUsage(4_000_000)); got != 2000 {
		t.Fatalf("past the prepayment: %d msat counted, want 2000", got)
	}
	if rs, ps := r.Status(), p.Status(); rs.Paid != 7000 || ps.Paid != 7000 || rs.Unpaid != 0 || ps.Unpaid != 0 {
		t.Fatalf("renter %+v, provider %+v", rs, ps)
	}

	// A lease that ends before using its prepayment.
	const short = "zn-0123456789abcdef1"
	r2, err := rl.OpenRenter(RenterTerms{Lease: short, Rates: rates, Prepay: prepay, Provider: ssh.FingerprintSHA256(providerKey.PublicKey())},
		NewEmbeddedPayer(renterKey, short, providerKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := pl.OpenProvider(ProviderTerms{Lease: short, Rates: rates, Prepay: prepay, Renter: ssh.FingerprintSHA256(renterKey.PublicKey())},
		NewEmbeddedPayee(short, renterKey.PublicKey(), providerKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	req, _ = p2.Request(ctx)
	pm, err = r2.Pay(ctx, *req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.Confirm(ctx, pm.Proof); err != nil {
		t.Fatal(err)
	}
	e2 := &embeddedPair{renter: r2, provider: p2, src: newMeterSource(t, short)}
	e2.interval(t, cpuUsage(1_000_000))
	p2.Detach() // reopened: the prepayment is in its recorded terms
	p2, err = pl.OpenProvider(ProviderTerms{Lease: short, Rates: rates, Renter: ssh.FingerprintSHA256(renterKey.PublicKey())},
		NewEmbeddedPayee(short, renterKey.PublicKey(), providerKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	if st := p2.Status(); st.Prepay != prepay || st.Unpaid != 0 {
		t.Fatalf("reopened: %+v", st)
	}
	rr, err := r2.Close()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := p2.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rr.Status.Billed != 1000 || rr.Status.Paid != prepay || rr.Status.Unpaid != 0 || pr.Status.Paid != prepay || pr.Status.Unpaid != 0 {
		t.Fatalf("receipts: renter %+v, provider %+v", rr.Status, pr.Status)
	}

	// A prepayment below what the method pays at once is raised to it,
	// on both sides alike.
	const small = "zn-0123456789abcdef2"
	r3, err := rl.OpenRenter(RenterTerms{Lease: small, Rates: rates, Prepay: 300, MinPayable: 1000}, NewEmbeddedPayer(renterKey, small, providerKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	p3, err := pl.OpenProvider(ProviderTerms{Lease: small, Rates: rates, Prepay: 300, MinPayable: 1000},
		NewEmbeddedPayee(small, renterKey.PublicKey(), providerKey.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	if r3.Terms().Prepay != 1000 || p3.Terms().Prepay != 1000 || p3.Status().Payable != 1000 {
		t.Fatalf("a 300 msat prepayment under a 1000 msat minimum: renter %d, provider %d, payable %d", r3.Terms().Prepay, p3.Terms().Prepay, p3.Status().Payable)
	}
}
