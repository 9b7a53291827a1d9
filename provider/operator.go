package provider

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/billing"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
)

// operator is the running provider as its operator sees it, through the
// control socket, metrics and dashboard.
type operator struct {
	info    Info
	version string
	started time.Time
	leases  *lease.Manager
	billing *billing.Billing
	gw      *sshgate.Gateway
	ledger  *pay.Ledger
	logs    *logRing
	market  func() *MarketStatus // nil before the market node starts

	mu       sync.Mutex
	payments []PaymentEvent // latest last, at most maxPayments
	session  uint64
	today    uint64
	day      time.Time // the day today counts
}

const maxPayments = 50

func newOperator(leases *lease.Manager, ledger *pay.Ledger, logs *logRing, version string) *operator {
	p := &operator{version: version, started: time.Now(), leases: leases, ledger: ledger, logs: logs}
	p.day = startOfDay(time.Now())
	// What was counted today before this run started.
	if hist, err := ledger.History(pay.Query{Since: p.day, Kinds: []string{pay.EntryCredit}}); err == nil {
		for _, e := range hist {
			p.today += e.Msat
		}
	}
	return p
}

func startOfDay(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// credit hears of a payment counted (billing.Config.OnCredit).
func (p *operator) credit(id string, msat uint64, method string) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if day := startOfDay(now); !day.Equal(p.day) {
		p.day, p.today = day, 0
	}
	p.session += msat
	p.today += msat
	p.payments = append(p.payments, PaymentEvent{Time: now, Lease: id, Msat: msat, Method: method})
	if len(p.payments) > maxPayments {
		p.payments = p.payments[len(p.payments)-maxPayments:]
	}
}

// Status returns a snapshot of the provider: identity, capacity, leases,
// earnings, the latest payments and log lines.
func (p *operator) Status(ctx context.Context) (Status, error) {
	capa := p.leases.Capacity()
	free := p.leases.Free()
	st := Status{
		Time: time.Now(),
		Identity: Identity{Fingerprint: p.info.Fingerprint, Address: p.info.Address, DataDir: p.info.DataDir,
			Started: p.started, Version: p.version},
		Capacity:        Resources{Leases: capa.Leases, MemoryBytes: capa.Memory, CPUs: capa.CPUs, DiskBytes: capa.Disk},
		Used:            Resources{Leases: capa.Leases - free.Leases, MemoryBytes: capa.Memory - free.Memory, CPUs: capa.CPUs - free.CPUs, DiskBytes: capa.Disk - free.Disk},
		Draining:        p.leases.Draining(),
		IntervalS:       proto.DefaultInterval,
		PaymentFailures: p.billing.Failures(),
		Log:             p.logs.lines(),
	}
	for _, le := range p.leases.List() {
		ls := LeaseStatus{ID: le.ID, Renter: gossh.FingerprintSHA256(le.Owner), Started: le.Started, Limits: le.Limits,
			State: StateRunning}
		if state, why := p.leases.State(le.ID); state == lease.Paused {
			ls.State, ls.StateReason = StatePaused, why.Reason
			if why.Cause == proto.PauseUnpaid {
				ls.State = StatePausedUnpaid
			}
		}
		if r, ok := p.leases.Last(le.ID); ok {
			ls.CPUNs, ls.MemoryBytes = r.Counters[meter.CPU], r.Counters[meter.MemoryPeak]
			ls.NetInBytes, ls.NetOutBytes = r.Counters[meter.NetInBytes], r.Counters[meter.NetOutBytes]
			ls.LastReport = r.Time
		}
		if ps, ok := p.billing.Status(le.ID); ok {
			ls.Method, ls.BilledMsat, ls.EarnedMsat, ls.DueMsat = ps.Method, ps.Billed, ps.Paid, ps.Unpaid
		}
		st.Leases = append(st.Leases, ls)
	}
	if p.market != nil {
		st.Market = p.market()
	}
	p.mu.Lock()
	st.Earnings = Earnings{SessionMsat: p.session, TodayMsat: p.today}
	for i := len(p.payments) - 1; i >= 0; i-- {
		st.Payments = append(st.Payments, p.payments[i])
	}
	p.mu.Unlock()
	return st, nil
}

// Pause pauses a lease on the operator's word and tells its renter. A
// lease the operator paused already is a conflict, and nothing is said to
// its renter; one paused by another writer (the owner's use, want of
// payment) becomes the operator's, and its renter hears the new reason.
func (p *operator) Pause(ctx context.Context, id string) error {
	if state, why, ok := p.leases.Lookup(id); ok && state == lease.Paused && why.Cause == proto.PauseOperator {
		return fmt.Errorf("%w: lease %s is paused already (by the operator); 'zennet provider resume %s' resumes it", ErrConflict, id, id)
	}
	why := lease.Pause{Cause: proto.PauseOperator, Reason: "paused by the provider's operator"}
	if err := p.leases.Pause(ctx, id, why); err != nil {
		return err
	}
	p.gw.Announce(id, proto.LeaseState{ID: id, State: proto.StatePaused, Cause: why.Cause, Reason: why.Reason})
	return nil
}

// Resume resumes a paused lease and tells its renter; a lease paused for
// want of payment resumes only when paid, and a running lease has nothing
// to resume (both ErrConflict, and its renter is told nothing).
func (p *operator) Resume(ctx context.Context, id string) error {
	state, why, ok := p.leases.Lookup(id)
	if !ok {
		return fmt.Errorf("%w: %s", proto.ErrNotFound, id)
	}
	if state != lease.Paused {
		return fmt.Errorf("%w: lease %s is running: there is nothing to resume", ErrConflict, id)
	}
	if why.Cause == proto.PauseUnpaid {
		if ps, ok := p.billing.Status(id); ok && ps.Unpaid > 0 {
			return fmt.Errorf("%w: lease %s is paused for want of payment (%d msat unpaid); it resumes when paid", ErrConflict, id, ps.Unpaid)
		}
	}
	if err := p.leases.Resume(ctx, id); err != nil {
		return err
	}
	p.gw.Announce(id, proto.LeaseState{ID: id, State: proto.StateRunning, Cause: why.Cause, Reason: "resumed by the provider's operator"})
	return nil
}

// End ends a lease and destroys its sandbox.
func (p *operator) End(ctx context.Context, id string) error {
	return p.leases.Terminate(ctx, id, proto.EndOperator, "ended by the provider's operator")
}

// Drain stops (on) or restarts (off) taking new leases.
func (p *operator) Drain(ctx context.Context, on bool) error {
	p.leases.SetDraining(on)
	return nil
}

// logRing keeps the provider's latest log lines for the dashboard, and
// passes every record on.
type logRing struct {
	next slog.Handler
	mu   *sync.Mutex
	buf  *[]LogLine
}

const maxLogLines = 100

func newLogRing(next slog.Handler) *logRing {
	return &logRing{next: next, mu: &sync.Mutex{}, buf: new([]LogLine)}
}

func (l *logRing) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl >= slog.LevelInfo || l.next.Enabled(ctx, lvl)
}

func (l *logRing) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key != "subsystem" {
				fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			}
			return true
		})
		l.mu.Lock()
		*l.buf = append(*l.buf, LogLine{Time: r.Time, Level: strings.ToLower(r.Level.String()), Msg: b.String()})
		if len(*l.buf) > maxLogLines {
			*l.buf = (*l.buf)[len(*l.buf)-maxLogLines:]
		}
		l.mu.Unlock()
	}
	if l.next.Enabled(ctx, r.Level) {
		return l.next.Handle(ctx, r)
	}
	return nil
}

func (l *logRing) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRing{next: l.next.WithAttrs(attrs), mu: l.mu, buf: l.buf}
}

func (l *logRing) WithGroup(name string) slog.Handler {
	return &logRing{next: l.next.WithGroup(name), mu: l.mu, buf: l.buf}
}

func (l *logRing) lines() []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LogLine(nil), *l.buf...)
}
