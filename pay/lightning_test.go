package pay_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/pay/lntest"
)

// lnLease is one lease paid over Lightning: the renter's and the
// provider's accounts on their own ledgers and nodes.
type lnLease struct {
	id       string
	renter   *pay.Renter
	provider *pay.Provider
	seq      uint64
	counters meter.Vector
}

func (l *lnLease) report(cpu uint64) meter.Report {
	l.seq++
	l.counters[meter.CPU] += cpu
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	return meter.Report{Lease: l.id, Seq: l.seq, Start: start, Time: start.Add(time.Duration(l.seq) * time.Second), Counters: l.counters}
}

// interval runs one interval of the payment loop, messages encoded as on
// the wire, and returns what the provider counted.
func (l *lnLease) interval(t testing.TB, cpu uint64) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := l.report(cpu)
	if _, err := l.provider.Bill(rep); err != nil {
		t.Fatal(err)
	}
	req, err := l.provider.Request(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.renter.Bill(rep); err != nil {
		t.Fatal(err)
	}
	if req == nil {
		return 0
	}
	wire, err := pay.EncodeRequest(*req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pay.DecodeRequest(wire)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := l.renter.Pay(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	wire, err = pay.EncodeProof(pm.Proof)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := pay.DecodeProof(wire)
	if err != nil {
		t.Fatal(err)
	}
	credited, err := l.provider.Confirm(ctx, proof)
	if err != nil {
		t.Fatal(err)
	}
	return credited
}

func cpuRates(t testing.TB, msatPerNs string) pay.Rates {
	var r pay.Rates
	if err := r.Set(meter.CPU, msatPerNs); err != nil {
		t.Fatal(err)
	}
	return r
}

// crashAfterSend pays for real, then reports an error as if the renter had
// crashed before recording the outcome.
type crashAfterSend struct{ pay.Payer }

func (c crashAfterSend) Send(ctx context.Context, in pay.Intent) (pay.Outcome, error) {
	if _, err := c.Payer.Send(ctx, in); err != nil {
		return pay.Outcome{}, err
	}
	return pay.Outcome{}, errors.New("simulated crash after paying")
}

// TestLightning rents two hosts paid over a real Lightning network for a
// few intervals, and checks that the channel balances moved by exactly the
// ledgers' totals; then that the renter refuses invoices that disagree
// with its bill, and that a renter that crashed after paying finds the
// payment on restart and never pays it twice.
func TestLightning(t *testing.T) {
	net := lntest.NewNetwork(t, "renter", "provider")
	rn, pn := net.Nodes[0], net.Nodes[1]
	net.OpenChannel(rn, pn, 1_000_000)
	renterLocal0, _ := rn.ChannelBalance(t)
	providerLocal0, _ := pn.ChannelBalance(t)

	dir := t.TempDir()
	rl, err := pay.Open(filepath.Join(dir, "renter.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pay.Open(filepath.Join(dir, "provider.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { pl.Close() }()
	rates := cpuRates(t, "1/1000") // 1 msat per µs of CPU
	open := func(id string, payer pay.Payer) *lnLease {
		r, err := rl.OpenRenter(pay.RenterTerms{Lease: id, Rates: rates}, payer)
		if err != nil {
			t.Fatal(err)
		}
		p, err := pl.OpenProvider(pay.ProviderTerms{Lease: id, Rates: rates}, pn.LND.Payee(pay.LightningPayeeTerms{Lease: id}))
		if err != nil {
			t.Fatal(err)
		}
		return &lnLease{id: id, renter: r, provider: p}
	}
	payer := func(id string) pay.Payer {
		return rn.LND.Payer(pay.LightningPayerTerms{Lease: id, PayeeNode: pn.LND.Pubkey()})
	}

	t.Run("two hosts", func(t *testing.T) {
		steps := []struct {
			cpu      uint64
			credited uint64
		}{
			{cpu: 1_500_000, credited: 1500},
			{cpu: 700_999, credited: 0},      // 700 msat: below the minimum, waits
			{cpu: 2_345_678, credited: 3046}, // 700.999 + 2345.678 = 3046.677
			{cpu: 999_323, credited: 1000},   // 0.677 + 999.323 = 1000
		}
		var wg sync.WaitGroup
		for i := range 2 {
			l := open(fmt.Sprintf("zn-%017x", 0xa0+i), payer(fmt.Sprintf("zn-%017x", 0xa0+i)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j, s := range steps {
					if got := l.interval(t, s.cpu); got != s.credited {
						t.Errorf("lease %s interval %d: credited %d msat, want %d", l.id, j+1, got, s.credited)
					}
				}
				for _, c := range []interface{ Close() (pay.Receipt, error) }{l.renter, l.provider} {
					if _, err := c.Close(); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		rt := total(t, rl, pay.RoleRenter)
		pt := total(t, pl, pay.RoleProvider)
		if rt.Paid != 2*5546 || pt.Paid != rt.Paid || rt.Fees != 0 || rt.Pending != 0 || pt.Pending != 0 {
			t.Fatalf("ledger totals: renter %+v, provider %+v", rt, pt)
		}
		// The payee's balance moves when the settlement is committed, a
		// moment after its node reports the invoice settled.
		var renterLocal, providerLocal uint64
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			renterLocal, _ = rn.ChannelBalance(t)
			providerLocal, _ = pn.ChannelBalance(t)
			if providerLocal-providerLocal0 == pt.Paid || time.Now().After(deadline) {
				break
			}
		}
		if renterLocal0-renterLocal != rt.Paid+rt.Fees || providerLocal-providerLocal0 != pt.Paid {
			t.Errorf("channel balances moved by %d msat (renter) and %d msat (provider); ledgers say %d paid + %d fees, %d received",
				renterLocal0-renterLocal, providerLocal-providerLocal0, rt.Paid, rt.Fees, pt.Paid)
		}
		t.Logf("paid %d msat in %d payments; balances moved by exactly that", rt.Paid, 2*3)
	})

	t.Run("renter refuses invoices that disagree", func(t *testing.T) {
		id := "zn-000000000000000b0"
		l := open(id, payer(id))
		rep := l.report(2_000_000) // 2000 msat due
		if _, err := l.renter.Bill(rep); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		invoice := func(msat int64, memo string) string {
			inv, err := pn.LND.Lightning().AddInvoice(ctx, &lnrpc.Invoice{ValueMsat: msat, Memo: memo})
			if err != nil {
				t.Fatal(err)
			}
			return inv.PaymentRequest
		}
		memo := fmt.Sprintf("zennet lease %s report 1", id)
		otherNode, err := rn.LND.Lightning().AddInvoice(ctx, &lnrpc.Invoice{ValueMsat: 2000, Memo: memo})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			req  pay.Request
			want error
		}{
			{name: "asks more than the bill", req: pay.Request{Msat: 2001, Invoice: invoice(2001, memo)}, want: pay.ErrAmount},
			{name: "invoice above the request", req: pay.Request{Msat: 2000, Invoice: invoice(2500, memo)}, want: pay.ErrAmount},
			{name: "invoice below the request", req: pay.Request{Msat: 2000, Invoice: invoice(1500, memo)}, want: pay.ErrAmount},
			{name: "invoice for another lease", req: pay.Request{Msat: 2000, Invoice: invoice(2000, "zennet lease zn-000000000000000b1 report 1")}, want: pay.ErrBadRequest},
			{name: "invoice paying another node", req: pay.Request{Msat: 2000, Invoice: otherNode.PaymentRequest}, want: pay.ErrBadRequest},
			{name: "not an invoice", req: pay.Request{Msat: 2000, Invoice: "lnsb1nonsense"}, want: pay.ErrBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.req.Method, tt.req.Lease, tt.req.Seq = pay.MethodLightning, id, 1
				if _, err := l.renter.Pay(ctx, tt.req); !errors.Is(err, tt.want) {
					t.Fatalf("Pay: %v, want %v", err, tt.want)
				}
			})
		}
		if s := l.renter.Status(); s.Paid != 0 || s.Pending != 0 {
			t.Errorf("refused invoices changed the account: %+v", s)
		}
		l.renter.Detach()
		l.provider.Detach()
	})

	t.Run("crash after paying", func(t *testing.T) {
		id := "zn-000000000000000c0"
		l := open(id, crashAfterSend{payer(id)})
		rep := l.report(5_000_000)
		ctx := context.Background()
		if _, err := l.provider.Bill(rep); err != nil {
			t.Fatal(err)
		}
		req, err := l.provider.Request(ctx)
		if err != nil || req == nil {
			t.Fatalf("request: %v %v", req, err)
		}
		if _, err := l.renter.Bill(rep); err != nil {
			t.Fatal(err)
		}
		before, _ := rn.ChannelBalance(t)
		if _, err := l.renter.Pay(ctx, *req); !errors.Is(err, pay.ErrNotSettled) {
			t.Fatalf("Pay: %v, want ErrNotSettled", err)
		}
		// The renter crashes: its ledger closes with the payment pending.
		if err := rl.Close(); err != nil {
			t.Fatal(err)
		}
		rl, err = pay.Open(filepath.Join(dir, "renter.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer rl.Close()
		pending, err := rl.Pending()
		if err != nil || len(pending) != 1 || pending[0].Lease != id {
			t.Fatalf("pending after the crash: %+v, %v", pending, err)
		}
		r, err := rl.OpenRenter(pay.RenterTerms{Lease: id, Rates: rates}, payer(id))
		if err != nil {
			t.Fatal(err)
		}
		done, err := r.Reconcile(ctx)
		if err != nil || len(done) != 1 {
			t.Fatalf("reconcile: %d done, %v", len(done), err)
		}
		if s := r.Status(); s.Paid != 5000 || s.Pending != 0 || s.Due != 0 {
			t.Errorf("after reconciling: %+v", s)
		}
		// Paying the same intent again pays nothing.
		if out, err := payer(id).Send(ctx, done[0].Intent); err != nil || out.State != pay.StateDone {
			t.Errorf("resending: %+v, %v", out, err)
		}
		if _, err := r.Pay(ctx, *req); !errors.Is(err, pay.ErrCrossing) {
			t.Errorf("paying the request again: %v, want ErrCrossing (nothing is due; an invoice is not paid in part)", err)
		}
		after, _ := rn.ChannelBalance(t)
		if before-after != 5000 {
			t.Errorf("the renter's balance moved by %d msat, want 5000", before-after)
		}
		// The provider counts it once, from the proof or by reconciling.
		if got, err := l.provider.Confirm(ctx, done[0].Proof); err != nil || got != 5000 {
			t.Errorf("confirm: %d, %v", got, err)
		}
		if got, err := l.provider.Confirm(ctx, done[0].Proof); !errors.Is(err, pay.ErrUnknownPayment) || got != 0 {
			t.Errorf("confirming again: %d, %v, want ErrUnknownPayment", got, err)
		}
		if got, err := l.provider.Reconcile(ctx); err != nil || got != 0 {
			t.Errorf("reconcile: %d, %v", got, err)
		}
	})
}

func total(t testing.TB, l *pay.Ledger, role string) pay.Totals {
	t.Helper()
	rs, err := l.Receipts()
	if err != nil {
		t.Fatal(err)
	}
	return pay.Total(rs, role)
}

// BenchmarkLightningPayment is one whole interval paid over a real
// Lightning network (provider bills and issues an invoice, renter checks and
// pays it with SendPaymentV2, provider confirms settlement), every step in
// the ledgers. It reports payments per second and the p50/p99 latency of an
// interval, for 1 and for 8 leases paying concurrently over one channel.
func BenchmarkLightningPayment(b *testing.B) {
	net := lntest.NewNetwork(b, "renter", "provider")
	rn, pn := net.Nodes[0], net.Nodes[1]
	net.OpenChannel(rn, pn, 10_000_000)
	dir := b.TempDir()
	rl, err := pay.Open(filepath.Join(dir, "renter.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rl.Close()
	pl, err := pay.Open(filepath.Join(dir, "provider.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pl.Close()
	rates := cpuRates(b, "1/1000")
	next := 0
	for _, leases := range []int{1, 8} {
		b.Run(fmt.Sprintf("leases=%d", leases), func(b *testing.B) {
			ls := make([]*lnLease, leases)
			for i := range ls {
				next++
				id := fmt.Sprintf("zn-%017x", 0xbe00+next)
				r, err := rl.OpenRenter(pay.RenterTerms{Lease: id, Rates: rates},
					rn.LND.Payer(pay.LightningPayerTerms{Lease: id, PayeeNode: pn.LND.Pubkey()}))
				if err != nil {
					b.Fatal(err)
				}
				p, err := pl.OpenProvider(pay.ProviderTerms{Lease: id, Rates: rates}, pn.LND.Payee(pay.LightningPayeeTerms{Lease: id}))
				if err != nil {
					b.Fatal(err)
				}
				ls[i] = &lnLease{id: id, renter: r, provider: p}
			}
			lat := make([][]time.Duration, leases)
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, l := range ls {
				n := b.N / leases
				if i < b.N%leases {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						t0 := time.Now()
						if got := l.interval(b, 1_000_000); got != 1000 {
							b.Errorf("credited %d msat, want 1000", got)
							return
						}
						lat[i] = append(lat[i], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			pay.ReportPayments(b, lat)
			for _, l := range ls {
				l.renter.Close()
				l.provider.Close()
			}
		})
	}
}
