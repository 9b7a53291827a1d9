package pay

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zennet/zennet/meter"
)

// BenchmarkVoucher is the embedded channel's cryptography alone: the renter
// signs a voucher, the provider checks it against its claim.
func BenchmarkVoucher(b *testing.B) {
	renter, provider := testKey(b, 1), testKey(b, 2)
	payer := NewEmbeddedPayer(renter, testLease, provider.PublicKey())
	payee := NewEmbeddedPayee(testLease, renter.PublicKey(), provider.PublicKey())
	ctx := context.Background()
	var claim *Voucher
	b.ResetTimer()
	for i := range b.N {
		in, err := payer.Prepare(ctx, PayArgs{Lease: testLease, Seq: uint64(i + 1), Due: 1000, Paid: uint64(i) * 1000},
			Request{Method: MethodEmbedded, Lease: testLease, Seq: 1, Msat: 1000})
		if err != nil {
			b.Fatal(err)
		}
		c, err := payee.Confirm(ctx, PayeeState{Claim: claim}, payer.Proof(in))
		if err != nil {
			b.Fatal(err)
		}
		claim = c.Claim
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "vouchers/s")
}

// BenchmarkEmbeddedPayment is one whole interval on the embedded channel,
// every step recorded (and fsynced) in the ledgers: the provider bills its
// report and asks; the renter bills, signs and records the voucher; the
// provider verifies and records it. With -cpu or leases > 1, that many
// leases pay concurrently into the same two ledgers.
func BenchmarkEmbeddedPayment(b *testing.B) {
	for _, leases := range []int{1, 8} {
		b.Run(fmt.Sprintf("leases=%d", leases), func(b *testing.B) {
			dir := b.TempDir()
			rl, pl := openLedger(b, filepath.Join(dir, "renter.db"), nil), openLedger(b, filepath.Join(dir, "provider.db"), nil)
			defer rl.Close()
			defer pl.Close()
			var rates Rates
			if err := rates.Set(meter.CPU, "1"); err != nil {
				b.Fatal(err)
			}
			pairs := make([]*embeddedPair, leases)
			for i := range pairs {
				pairs[i] = openEmbeddedPair(b, rl, pl, fmt.Sprintf("zn-%017x", i), rates, 1)
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			lat := make([][]time.Duration, leases)
			for i, e := range pairs {
				n := b.N / leases
				if i < b.N%leases {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						t0 := time.Now()
						e.interval(b, cpuUsage(1000))
						lat[i] = append(lat[i], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			reportPayments(b, lat)
		})
	}
}

// ReportPayments is reportPayments for the external tests.
var ReportPayments = reportPayments

// reportPayments reports throughput and latency of one payment each
// (bill, request, pay, confirm, every step recorded on both ledgers), and
// how many leases one renter can pay every interval at that rate, at a 1 s
// and a 5 s interval.
func reportPayments(b *testing.B, lat [][]time.Duration) {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	rate := float64(len(all)) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "payments/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(rate*1, "leases@1s")
	b.ReportMetric(rate*5, "leases@5s")
}
