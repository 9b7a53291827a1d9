package pay

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/zennet/zennet/meter"
	"golang.org/x/crypto/ssh"
)

// lostOutcome signs for real but loses the outcome, as a renter that
// crashed right after handing out its payment would.
type lostOutcome struct{ Payer }

func (l lostOutcome) Send(context.Context, Intent) (Outcome, error) {
	return Outcome{}, errors.New("simulated crash after sending")
}

// TestCrashRecovery stops the parties at each point of an interval
// (closing their ledgers without closing the lease, as a crash would),
// reopens the ledgers and checks that nothing is lost and nothing is
// billed, paid or counted twice.
func TestCrashRecovery(t *testing.T) {
	var rates Rates
	if err := rates.Set(meter.CPU, "1/3"); err != nil {
		t.Fatal(err)
	}
	renterKey, providerKey := testKey(t, 1), testKey(t, 2)
	ctx := context.Background()
	openRenter := func(t *testing.T, l *Ledger, payer Payer) *Renter {
		r, err := l.OpenRenter(RenterTerms{Lease: testLease, Rates: rates}, payer)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	openProvider := func(t *testing.T, l *Ledger) *Provider {
		p, err := l.OpenProvider(ProviderTerms{Lease: testLease, Rates: rates},
			NewEmbeddedPayee(testLease, renterKey.PublicKey(), providerKey.PublicKey()))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	realPayer := NewEmbeddedPayer(renterKey, testLease, providerKey.PublicKey())

	tests := []struct {
		name string
		// crash runs an interval up to the crash point with the ledgers
		// rl and pl and returns what the renter still has to send.
		crash func(t *testing.T, rl, pl *Ledger, src *meterSource) *Request
		// recover runs after both ledgers reopened.
		recover func(t *testing.T, r *Renter, p *Provider, req *Request)
	}{
		{
			name: "renter after billing, before paying",
			crash: func(t *testing.T, rl, pl *Ledger, src *meterSource) *Request {
				p, r := openProvider(t, pl), openRenter(t, rl, realPayer)
				rep := src.next(cpuUsage(3000))
				mustBill(t, p, rep)
				req, err := p.Request(ctx)
				if err != nil {
					t.Fatal(err)
				}
				mustBill(t, r, rep)
				if _, err := r.Bill(rep); !errors.Is(err, ErrStaleReport) {
					t.Fatalf("billing a report twice: %v", err)
				}
				return req
			},
			recover: func(t *testing.T, r *Renter, p *Provider, req *Request) {
				if s := r.Status(); s.Billed != 1000 || s.Due != 1000 {
					t.Fatalf("renter after restart: %+v", s)
				}
				pm, err := r.Pay(ctx, *req)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := p.Confirm(ctx, pm.Proof); err != nil || got != 1000 {
					t.Fatalf("confirm: %d, %v", got, err)
				}
			},
		},
		{
			name: "renter after sending, before recording the outcome",
			crash: func(t *testing.T, rl, pl *Ledger, src *meterSource) *Request {
				p, r := openProvider(t, pl), openRenter(t, rl, lostOutcome{realPayer})
				rep := src.next(cpuUsage(3000))
				mustBill(t, p, rep)
				req, err := p.Request(ctx)
				if err != nil {
					t.Fatal(err)
				}
				mustBill(t, r, rep)
				if _, err := r.Pay(ctx, *req); !errors.Is(err, ErrNotSettled) {
					t.Fatalf("Pay: %v, want ErrNotSettled", err)
				}
				return nil
			},
			recover: func(t *testing.T, r *Renter, p *Provider, _ *Request) {
				if s := r.Status(); s.Pending != 1000 || s.Due != 0 {
					t.Fatalf("renter after restart: %+v", s)
				}
				done, err := r.Reconcile(ctx)
				if err != nil || len(done) != 1 {
					t.Fatalf("reconcile: %+v, %v", done, err)
				}
				if got, err := p.Confirm(ctx, done[0].Proof); err != nil || got != 1000 {
					t.Fatalf("confirm the recorded voucher: %d, %v", got, err)
				}
				if _, err := p.Confirm(ctx, done[0].Proof); !errors.Is(err, ErrVoucherReplay) {
					t.Fatalf("confirm it again: %v, want a replay", err)
				}
			},
		},
		{
			name: "provider after asking, before the proof",
			crash: func(t *testing.T, rl, pl *Ledger, src *meterSource) *Request {
				p := openProvider(t, pl)
				rep := src.next(cpuUsage(3000))
				mustBill(t, p, rep)
				req, err := p.Request(ctx)
				if err != nil {
					t.Fatal(err)
				}
				mustBill(t, openRenter(t, rl, realPayer), rep)
				return req
			},
			recover: func(t *testing.T, r *Renter, p *Provider, req *Request) {
				if s := p.Status(); s.Pending != 1000 || len(p.Pending()) != 1 {
					t.Fatalf("provider after restart: %+v", s)
				}
				pm, err := r.Pay(ctx, *req)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := p.Confirm(ctx, pm.Proof); err != nil || got != 1000 {
					t.Fatalf("confirm: %d, %v", got, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := newMeterSource(t, testLease)
			rl, pl := openLedger(t, filepath.Join(dir, "renter.db"), nil), openLedger(t, filepath.Join(dir, "provider.db"), nil)
			req := tt.crash(t, rl, pl, src)
			if err := rl.Close(); err != nil {
				t.Fatal(err)
			}
			if err := pl.Close(); err != nil {
				t.Fatal(err)
			}
			rl, pl = openLedger(t, filepath.Join(dir, "renter.db"), nil), openLedger(t, filepath.Join(dir, "provider.db"), nil)
			defer rl.Close()
			defer pl.Close()
			r, p := openRenter(t, rl, realPayer), openProvider(t, pl)
			tt.recover(t, r, p, req)
			// Everything billed is paid and counted exactly once, and the
			// lease goes on: the next voucher follows the last.
			e := &embeddedPair{renter: r, provider: p, src: src}
			prev := src.next(meter.Vector{})
			mustBill(t, p, prev)
			mustBill(t, r, prev)
			e.prev = &prev
			if got := e.interval(t, cpuUsage(6000)); got != 2000 {
				t.Errorf("next interval credited %d msat, want 2000", got)
			}
			rs, ps := r.Status(), p.Status()
			if rs.Paid != 3000 || ps.Paid != 3000 || rs.Billed != 3000 || ps.Billed != 3000 || rs.Pending != 0 || ps.Pending != 0 {
				t.Errorf("renter %+v\nprovider %+v", rs, ps)
			}
			if c := p.account.st.Claim; c == nil || c.Total != 3000 || c.Payee != ssh.FingerprintSHA256(providerKey.PublicKey()) {
				t.Errorf("provider's claim %+v", c)
			}
		})
	}
}

// biller is what Renter and Provider share for billing.
type biller interface {
	Bill(meter.Report) (Bill, error)
}

func mustBill(t testing.TB, b biller, rep meter.Report) {
	t.Helper()
	if _, err := b.Bill(rep); err != nil {
		t.Fatal(err)
	}
}

// TestDuplicateIntent: an intent whose ID is in the ledger already is never
// paid again, whatever the payer says.
func TestDuplicateIntent(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, filepath.Join(dir, "renter.db"), nil)
	defer l.Close()
	var rates Rates
	if err := rates.Set(meter.CPU, "1"); err != nil {
		t.Fatal(err)
	}
	r, err := l.OpenRenter(RenterTerms{Lease: testLease, Rates: rates}, fixedID{NewEmbeddedPayer(testKey(t, 1), testLease, testKey(t, 2).PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	mustBill(t, r, newMeterSource(t, testLease).next(cpuUsage(100)))
	req := Request{Method: MethodEmbedded, Lease: testLease, Seq: 1, Msat: 50}
	if _, err := r.Pay(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pay(context.Background(), req); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second payment with the same ID: %v, want ErrDuplicate", err)
	}
	if s := r.Status(); s.Paid != 50 || s.Pending != 0 {
		t.Errorf("status %+v", s)
	}
}

// fixedID gives every intent the same ID, as a payer handed the same
// invoice twice would.
type fixedID struct{ *EmbeddedPayer }

func (f fixedID) Prepare(ctx context.Context, args PayArgs, req Request) (Intent, error) {
	in, err := f.EmbeddedPayer.Prepare(ctx, args, req)
	in.ID = "same"
	return in, err
}
