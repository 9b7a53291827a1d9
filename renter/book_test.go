package renter

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/session"
	"github.com/zennet/zennet/sshgate"
)

// bookFixture is a usage book with one host of a provider whose host key
// is provider.
type bookFixture struct {
	book     *usageBook
	provider gossh.Signer
	lease    proto.Lease
	start    time.Time
	seq      uint64
	cpu      uint64
}

func newBookFixture(t *testing.T) *bookFixture {
	t.Helper()
	dir := t.TempDir()
	sess, err := session.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ledger, err := pay.Open(filepath.Join(dir, "ledger.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	f := &bookFixture{provider: testenv.Signer(t), start: time.Now().Add(-time.Minute)}
	f.book = newUsageBook(sess, ledger, testenv.Signer(t), nil)
	f.lease = proto.Lease{ID: "zn-0123456789abcdef0", Limits: proto.Limits{MemoryBytes: 256 << 20, CPUs: 1}, Started: f.start}
	c := &sshgate.Client{Addr: "127.0.0.1:1", HostKey: f.provider.PublicKey()}
	offer := proto.Offer{IntervalSeconds: 1, Payment: proto.PaymentTerms{Methods: []string{pay.MethodEmbedded}}}
	var rates pay.Rates
	if err := rates.Set(meter.CPU, "1/1000"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { f.book.close(cancel) })
	if err := f.book.add(ctx, session.Host{Name: "zennet-1", LeaseID: f.lease.ID}, f.lease, c, offer, pay.MethodEmbedded, rates); err != nil {
		t.Fatal(err)
	}
	return f
}

// report returns the next report, cpu ns more, signed by signer.
func (f *bookFixture) report(t *testing.T, cpu uint64, signer gossh.Signer) meter.Report {
	t.Helper()
	f.seq++
	f.cpu += cpu
	r := meter.Report{Lease: f.lease.ID, Seq: f.seq, Start: f.start, Time: f.start.Add(time.Duration(f.seq) * time.Second)}
	r.Counters[meter.CPU] = f.cpu
	if err := r.Sign(signer); err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *bookFixture) expectDrop(t *testing.T, want string) {
	t.Helper()
	select {
	case d := <-f.book.drops:
		if d.id != f.lease.ID || !strings.Contains(d.reason, want) {
			t.Fatalf("dropped %s: %q, want %s for %q", d.id, d.reason, f.lease.ID, want)
		}
	default:
		t.Fatalf("host not dropped, want it dropped for %q", want)
	}
}

func TestUsageBookBillsCheckedReports(t *testing.T) {
	f := newBookFixture(t)
	f.book.usage(sshgate.Usage{Report: f.report(t, 250_000_000, f.provider)})
	f.book.usage(sshgate.Usage{Report: f.report(t, 250_000_000, f.provider)})
	h := f.book.hosts[f.lease.ID]
	if st := h.acct.Status(); st.Billed != 500_000 || st.Reports != 2 || h.u.Accepted != 2 {
		t.Fatalf("billed %d msat over %d reports (%d accepted), want 500000 over 2", st.Billed, st.Reports, h.u.Accepted)
	}
	select {
	case d := <-f.book.drops:
		t.Fatalf("dropped: %v", d.reason)
	default:
	}
}

func TestUsageBookDropsForgedReport(t *testing.T) {
	f := newBookFixture(t)
	f.book.usage(sshgate.Usage{Report: f.report(t, 1000, testenv.Signer(t))})
	f.expectDrop(t, "failed the check")
	// Nothing of it is billed, and nothing after it either.
	f.book.usage(sshgate.Usage{Report: f.report(t, 1000, f.provider)})
	if st := f.book.hosts[f.lease.ID].acct.Status(); st.Billed != 0 || st.Reports != 0 {
		t.Fatalf("a dropped host was billed: %+v", st)
	}
}

func TestUsageBookDropsImpossibleCPU(t *testing.T) {
	f := newBookFixture(t)
	// 5 CPU-seconds in a one-CPU host's first second.
	f.book.usage(sshgate.Usage{Report: f.report(t, 5_000_000_000, f.provider)})
	f.expectDrop(t, "failed the check")
}

func TestUsageBookDropsSilentHost(t *testing.T) {
	f := newBookFixture(t)
	f.book.usage(sshgate.Usage{Report: f.report(t, 1000, f.provider)})
	f.book.silent(time.Now().Add(7 * time.Second))
	select {
	case d := <-f.book.drops:
		t.Fatalf("dropped after 7 s of a 1 s interval: %v", d.reason)
	default:
	}
	f.book.silent(time.Now().Add(9 * time.Second))
	f.expectDrop(t, "no usage report for")
}

func TestUsageBookRefusesOverAsk(t *testing.T) {
	f := newBookFixture(t)
	r := f.report(t, 1_000_000, f.provider)
	f.book.usage(sshgate.Usage{Report: r})
	h := f.book.hosts[f.lease.ID]
	// The bill says 1000 msat; the provider asks 5000.
	f.book.payOne(context.Background(), h, pay.Request{Method: pay.MethodEmbedded, Lease: f.lease.ID, Seq: r.Seq, Msat: 5000})
	f.expectDrop(t, "its bill does not support")
	if st := h.acct.Status(); st.Paid != 0 || st.Pending != 0 {
		t.Fatalf("paid an over-asking provider: %+v", st)
	}
}

// A report that arrives after a newer one (the provider's interval report
// racing the lease's end) is ignored, not taken for a forgery; a final
// report repeating the last one ends the billing.
func TestUsageBookIgnoresStaleReport(t *testing.T) {
	f := newBookFixture(t)
	r1 := f.report(t, 250_000_000, f.provider)
	r2 := f.report(t, 250_000_000, f.provider)
	f.book.usage(sshgate.Usage{Report: r1})
	f.book.usage(sshgate.Usage{Report: r2})
	f.book.usage(sshgate.Usage{Report: r1})
	h := f.book.hosts[f.lease.ID]
	if st := h.acct.Status(); st.Billed != 500_000 || st.Reports != 2 || h.final {
		t.Fatalf("after a stale report: billed %d msat over %d reports, final %v", st.Billed, st.Reports, h.final)
	}
	f.book.usage(sshgate.Usage{Report: r2, Final: true})
	if st := h.acct.Status(); st.Billed != 500_000 || st.Reports != 2 || !h.final {
		t.Fatalf("after the final repeat: billed %d msat over %d reports, final %v", st.Billed, st.Reports, h.final)
	}
	select {
	case d := <-f.book.drops:
		t.Fatalf("dropped: %v", d.reason)
	default:
	}
}
