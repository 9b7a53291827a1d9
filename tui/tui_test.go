package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/proto"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	idA = "zn-0a1b2c3d4e5f60718"
	idB = "zn-1b2c3d4e5f6071829"
	idC = "zn-2c3d4e5f607182930"
)

// cpuAdd is lease A's CPU time in tenths of a second at each snapshot:
// 50%, 90%, 20%, 90%, 90% of a core in turn.
var cpuAdd = []uint64{0, 5, 14, 16, 25, 34}

// snapshot k (0, 1, ...) of a provider with three leases: A busy on one
// core and paid by voucher, B idle and behind on payment, C just started.
func snapshot(k int) control.Status {
	t := t0.Add(time.Duration(k) * time.Second)
	lim := proto.Limits{MemoryBytes: 512 << 20, CPUs: 1, DiskBytes: 4 << 30}
	st := control.Status{
		Time: t,
		Identity: control.Identity{Fingerprint: "SHA256:Zq3p0Yl9mQxR2vT8wKcN4bH6jD1sF5gA7eU0iO9yLrM",
			Address: "203.0.113.7:2222", DataDir: "/var/lib/zennet/provider", Started: t0.Add(-2*time.Hour - 3*time.Minute), Version: "v0.3.0"},
		Capacity:  control.Resources{Leases: 16, MemoryBytes: 15 << 30, CPUs: 32, DiskBytes: 200 << 30},
		Used:      control.Resources{Leases: 3, MemoryBytes: 1536 << 20, CPUs: 3, DiskBytes: 12 << 30},
		IntervalS: 5,
		Leases: []control.LeaseStatus{
			{ID: idA, Renter: "SHA256:Ab3dEf12GhIjKlMnOpQrStUvWxYz0123456789abcde", Started: t0.Add(-42*time.Minute - 7*time.Second),
				Limits: lim, State: control.StateRunning, Method: "embedded",
				CPUNs: (3600 + cpuAdd[min(k, len(cpuAdd)-1)]) * 1e8, MemoryBytes: 300 << 20,
				NetInBytes: 5 << 20, NetOutBytes: 700 << 10,
				BilledMsat: uint64(90000 + 1500*k), EarnedMsat: uint64(88000 + 1500*k), DueMsat: 2000, LastReport: t},
			{ID: idB, Renter: "SHA256:Qw9rTy8uIo7pAs6dFg5hJk4lZx3cVb2nM1qWeRtYuIo", Started: t0.Add(-3 * time.Hour),
				Limits: proto.Limits{MemoryBytes: 2 << 30, CPUs: 1.5, DiskBytes: 8 << 30}, State: control.StatePausedUnpaid,
				StateReason: "payment overdue 30s", Method: "lightning", CPUNs: 72e9, MemoryBytes: 1200 << 20,
				BilledMsat: 410000, EarnedMsat: 400000, DueMsat: 10000, LastReport: t},
			{ID: idC, Renter: "SHA256:Mn0bVc9xZl8kJh7gFd6sAp5oIu4yTr3eWq2aSd1fGhJ", Started: t.Add(-3 * time.Second),
				Limits: proto.Limits{MemoryBytes: 256 << 20, CPUs: 0.5, DiskBytes: 2 << 30}, State: control.StateStarting},
		},
		Earnings:        control.Earnings{SessionMsat: uint64(488000 + 1500*k), TodayMsat: uint64(1_250_000 + 1500*k)},
		PaymentFailures: 2,
	}
	for i := range min(k+3, 20) {
		st.Payments = append(st.Payments, control.PaymentEvent{Time: t.Add(-time.Duration(i*5) * time.Second), Lease: idA, Msat: 1500, Method: "embedded"})
	}
	st.Payments = append(st.Payments, control.PaymentEvent{Time: t0.Add(-10 * time.Minute), Lease: idB, Msat: 400000, Method: "lightning"})
	st.Log = []control.LogLine{
		{Time: t0.Add(-3 * time.Hour), Level: "INFO", Msg: "lease " + idB + " granted to SHA256:Qw9rTy8u"},
		{Time: t0.Add(-42 * time.Minute), Level: "INFO", Msg: "lease " + idA + " granted to SHA256:Ab3dEf12"},
		{Time: t0.Add(-30 * time.Second), Level: "WARN", Msg: "lease " + idB + " paused: payment overdue 30s"},
	}
	st.Log = append(st.Log, control.LogLine{Time: t, Level: "INFO", Msg: fmt.Sprintf("snapshot %d", k)})
	return st
}

// fakeSource serves snapshots 0..n-1, then the last one again (which adds
// no samples), with the effects of the actions asked for.
type fakeSource struct {
	mu       sync.Mutex
	n, i     int
	calls    []string
	err      error
	draining bool
	state    map[string]control.LeaseState
}

func newSource(n int) *fakeSource { return &fakeSource{n: n, state: map[string]control.LeaseState{}} }

func (f *fakeSource) Status(ctx context.Context) (control.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return control.Status{}, f.err
	}
	st := snapshot(min(f.i, f.n-1))
	f.i++
	st.Draining = f.draining
	for i, l := range st.Leases {
		if s, ok := f.state[l.ID]; ok {
			st.Leases[i].State = s
		}
	}
	return st, nil
}

func (f *fakeSource) act(call, id string, from []control.LeaseState, to control.LeaseState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call+" "+id)
	var cur control.LeaseState
	for _, l := range snapshot(0).Leases {
		if l.ID == id {
			cur = l.State
		}
	}
	if s, ok := f.state[id]; ok {
		cur = s
	}
	if cur == "" {
		return fmt.Errorf("lease %s: %w", id, control.ErrNotFound)
	}
	ok := from == nil
	for _, s := range from {
		ok = ok || s == cur
	}
	if !ok {
		return fmt.Errorf("lease %s is %s: %w", id, cur, control.ErrConflict)
	}
	f.state[id] = to
	return nil
}

func (f *fakeSource) Pause(ctx context.Context, id string) error {
	return f.act("pause", id, []control.LeaseState{control.StateRunning, control.StatePausedUnpaid}, control.StatePaused)
}

func (f *fakeSource) Resume(ctx context.Context, id string) error {
	return f.act("resume", id, []control.LeaseState{control.StatePaused}, control.StateRunning)
}

func (f *fakeSource) End(ctx context.Context, id string) error {
	return f.act("end", id, nil, control.StateEnded)
}

func (f *fakeSource) Drain(ctx context.Context, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("drain %v", on))
	f.draining = on
	return nil
}

func (f *fakeSource) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// opts are deterministic: a fixed clock, UTC, no colour, fast polling.
func opts() Options {
	return Options{Interval: 5 * time.Millisecond, Now: func() time.Time { return t0.Add(5 * time.Second) },
		Location: time.UTC, NoColor: true}
}

const waitTimeout = 10 * time.Second

// screen accumulates a test program's output, so that waiting for one
// text never loses another written in the same frame.
type screen struct {
	tm  *teatest.TestModel
	out bytes.Buffer
}

func newScreen(t *testing.T, src Source, w, h int) *screen {
	return &screen{tm: teatest.NewTestModel(t, New(src, opts()), teatest.WithInitialTermSize(w, h))}
}

// wait waits until the program has written s.
func (sc *screen) wait(t *testing.T, s string) {
	t.Helper()
	if bytes.Contains(sc.out.Bytes(), []byte(s)) {
		return
	}
	teatest.WaitFor(t, sc.tm.Output(), func(b []byte) bool {
		sc.out.Write(b)
		return bytes.Contains(sc.out.Bytes(), []byte(s))
	}, teatest.WithDuration(waitTimeout), teatest.WithCheckInterval(5*time.Millisecond))
}

func (sc *screen) typ(s string) { sc.tm.Type(s) }

// final quits and returns the final model.
func (sc *screen) final(t *testing.T) Model {
	t.Helper()
	sc.tm.Type("q")
	return sc.tm.FinalModel(t, teatest.WithFinalTimeout(waitTimeout)).(Model)
}

// TestGolden: the dashboard at two terminal sizes after six snapshots,
// the second lease selected.
func TestGolden(t *testing.T) {
	for _, sz := range []struct{ w, h int }{{80, 24}, {120, 40}} {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			sc := newScreen(t, newSource(6), sz.w, sz.h)
			sc.wait(t, "snapshot ")
			sc.typ("j") // the busy lease, for its sparkline
			sc.wait(t, "snapshot 5")
			m := sc.final(t)
			checkFits(t, m.View(), sz.w, sz.h)
			golden.RequireEqual(t, []byte(m.View()))
		})
	}
}

// TestGoldenHelp: ? shows the keys.
func TestGoldenHelp(t *testing.T) {
	sc := newScreen(t, newSource(1), 80, 24)
	sc.wait(t, "snapshot 0")
	sc.typ("?")
	sc.wait(t, "quit the dashboard")
	m := sc.final(t)
	golden.RequireEqual(t, []byte(m.View()))
}

// TestEndLease: select the second lease, end it with confirmation; the
// source is asked once and the row shows the lease ended.
func TestEndLease(t *testing.T) {
	src := newSource(2)
	sc := newScreen(t, src, 80, 24)
	sc.wait(t, "snapshot 1")
	sc.tm.Send(tea.KeyMsg{Type: tea.KeyDown})
	sc.typ("e")
	sc.wait(t, "End lease "+idA+" (renter Ab3dEf12) and destroy its sandbox? y/n")
	if len(src.Calls()) != 0 {
		t.Fatalf("acted before the confirmation: %q", src.Calls())
	}
	sc.typ("y")
	sc.wait(t, "ended "+idA)
	sc.wait(t, idA+" · ended")
	m := sc.final(t)
	if got := src.Calls(); fmt.Sprint(got) != "[end "+idA+"]" {
		t.Fatalf("calls %q", got)
	}
	if m.Selected() != idA {
		t.Fatalf("selected %s, want %s", m.Selected(), idA)
	}
	golden.RequireEqual(t, []byte(m.View()))
}

// TestConflictShown: resuming a running lease fails; the error is shown.
func TestConflictShown(t *testing.T) {
	src := newSource(1)
	sc := newScreen(t, src, 80, 24)
	sc.wait(t, "snapshot 0")
	sc.typ("jry")
	sc.wait(t, "is running: conflict")
	m := sc.final(t)
	if !strings.Contains(lastLine(m.View()), "resume "+idA+": lease "+idA+" is running: conflict") {
		t.Fatalf("footer: %q", lastLine(m.View()))
	}
}

func lastLine(s string) string { return strings.TrimRight(s[strings.LastIndexByte(s, '\n')+1:], " ") }

// Model tests: Update and View driven directly, running the commands that
// do I/O by hand (never the ticks).

func update(t *testing.T, m Model, msg tea.Msg) (Model, tea.Cmd) {
	t.Helper()
	nm, cmd := m.Update(msg)
	return nm.(Model), cmd
}

func key(s string) tea.KeyMsg {
	switch s {
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// loaded returns a model that took snapshots 0..n-1 of src.
func loaded(t *testing.T, src *fakeSource, n int) Model {
	t.Helper()
	m := New(src, opts())
	cmd := m.Init()
	for range n {
		m, _ = update(t, m, cmd())
		cmd = m.fetch()
	}
	m.busy = false
	return m
}

func TestSelection(t *testing.T) {
	m := loaded(t, newSource(1), 1)
	if m.Selected() != idB { // the oldest lease first
		t.Fatalf("initial selection %s, want %s", m.Selected(), idB)
	}
	for _, c := range []struct{ key, want string }{
		{"down", idA}, {"j", idC}, {"j", idC}, {"up", idA}, {"k", idB}, {"k", idB}, {"G", idC}, {"g", idB},
	} {
		m, _ = update(t, m, key(c.key))
		if m.Selected() != c.want {
			t.Fatalf("after %s: %s, want %s", c.key, m.Selected(), c.want)
		}
	}
	if !strings.Contains(m.View(), "> Qw9rTy8u") {
		t.Fatalf("the selected row is not marked:\n%s", m.View())
	}

	// The selection stays on its lease when the order changes, and moves
	// to the row where it was when its lease goes.
	m, _ = update(t, m, key("j"))
	st := snapshot(1)
	st.Leases = []control.LeaseStatus{st.Leases[2], st.Leases[0]}
	m, _ = update(t, m, statusMsg{st: st})
	if m.Selected() != idA {
		t.Fatalf("selection moved to %s", m.Selected())
	}
	st.Leases = st.Leases[:1]
	m, _ = update(t, m, statusMsg{st: st})
	if m.Selected() != idC {
		t.Fatalf("after its lease went: %s, want %s", m.Selected(), idC)
	}
	st.Leases = nil
	m, _ = update(t, m, statusMsg{st: st})
	if m.Selected() != "" || !strings.Contains(m.View(), "no leases yet") {
		t.Fatalf("no leases: selected %q\n%s", m.Selected(), m.View())
	}
	m, _ = update(t, m, key("e"))
	if m.confirm != nil || !strings.Contains(lastLine(m.View()), "no lease selected") {
		t.Fatalf("end with nothing selected: %q", lastLine(m.View()))
	}
}

func TestScrolling(t *testing.T) {
	m := loaded(t, newSource(1), 1)
	st := snapshot(1)
	for i := range 30 {
		l := st.Leases[0]
		l.ID = fmt.Sprintf("zn-%017x", i)
		l.Started = t0.Add(time.Duration(i) * time.Second)
		st.Leases = append(st.Leases, l)
	}
	m, _ = update(t, m, statusMsg{st: st})
	m, _ = update(t, m, key("G"))
	v := m.View()
	checkFits(t, v, 80, 24)
	if !strings.Contains(v, "> Ab3dEf12") || !strings.Contains(v, "of 33") {
		t.Fatalf("the last lease is not shown after G:\n%s", v)
	}
	m, _ = update(t, m, key("g"))
	if v := m.View(); !strings.Contains(v, "leases 1-") || !strings.Contains(v, "> Qw9rTy8u") {
		t.Fatalf("the first lease is not shown after g:\n%s", v)
	}
}

func TestConfirmAndCancel(t *testing.T) {
	src := newSource(1)
	m := loaded(t, src, 1)
	for _, k := range []string{"p", "r", "e", "d"} {
		m, _ = update(t, m, key(k))
		if m.confirm == nil || !strings.HasSuffix(lastLine(m.View()), "? y/n") {
			t.Fatalf("%s: no confirmation: %q", k, lastLine(m.View()))
		}
		// Other keys do nothing while asking.
		m, _ = update(t, m, key("j"))
		if m.Selected() != idB || m.confirm == nil {
			t.Fatalf("%s: a key other than y/n acted", k)
		}
		cancel := "n"
		if k == "e" {
			cancel = "esc"
		}
		var cmd tea.Cmd
		m, cmd = update(t, m, key(cancel))
		if m.confirm != nil || cmd != nil || !strings.Contains(lastLine(m.View()), "cancelled") {
			t.Fatalf("%s: not cancelled: %q", k, lastLine(m.View()))
		}
	}
	if len(src.Calls()) != 0 {
		t.Fatalf("calls after cancelling: %q", src.Calls())
	}
	m, _ = update(t, m, key("p"))
	if !strings.Contains(lastLine(m.View()), "Pause lease "+idB+" (renter Qw9rTy8u)? y/n") {
		t.Fatalf("prompt %q", lastLine(m.View()))
	}
	m, cmd := update(t, m, key("y"))
	if cmd == nil {
		t.Fatal("no command after y")
	}
	m, _ = update(t, m, cmd())
	if fmt.Sprint(src.Calls()) != "[pause "+idB+"]" || !strings.Contains(lastLine(m.View()), "paused "+idB) {
		t.Fatalf("calls %q, footer %q", src.Calls(), lastLine(m.View()))
	}
}

func TestDrain(t *testing.T) {
	src := newSource(1)
	m := loaded(t, src, 1)
	if strings.Contains(m.View(), "DRAINING") {
		t.Fatal("draining before asked")
	}
	m, _ = update(t, m, key("d"))
	if !strings.Contains(lastLine(m.View()), "Drain: take no new leases") {
		t.Fatalf("prompt %q", lastLine(m.View()))
	}
	m, cmd := update(t, m, key("y"))
	m, cmd = update(t, m, cmd()) // the action; then a refresh
	if cmd == nil {
		t.Fatal("no refresh after the action")
	}
	m, _ = update(t, m, cmd())
	v := m.View()
	if !strings.Contains(strings.SplitN(v, "\n", 2)[0], "DRAINING") || !strings.Contains(lastLine(v), "draining: no new leases") {
		t.Fatalf("after drain:\n%s", v)
	}
	m, _ = update(t, m, key("d"))
	if !strings.Contains(lastLine(m.View()), "Stop draining") {
		t.Fatalf("prompt %q", lastLine(m.View()))
	}
	m, cmd = update(t, m, key("y"))
	m, cmd = update(t, m, cmd())
	m, _ = update(t, m, cmd())
	if strings.Contains(m.View(), "DRAINING") {
		t.Fatal("still draining")
	}
	if fmt.Sprint(src.Calls()) != "[drain true drain false]" {
		t.Fatalf("calls %q", src.Calls())
	}
}

func TestRates(t *testing.T) {
	m := loaded(t, newSource(3), 3)
	h := m.hist[idA]
	want := []float64{50, 90} // % of one core
	if len(h.cpuPct) != 2 || fmt.Sprintf("%.1f", h.cpuPct) != fmt.Sprintf("%.1f", want) {
		t.Fatalf("cpu%% %v, want %v", h.cpuPct, want)
	}
	if len(h.earnRate) != 2 || h.earnRate[1] != 1500*3600 {
		t.Fatalf("earn rate %v", h.earnRate)
	}
	if r, ok := m.rate(); !ok || r != 1500*3600 {
		t.Fatalf("rate %v %v", r, ok)
	}
	// The same snapshot again adds nothing.
	m, _ = update(t, m, statusMsg{st: snapshot(2)})
	if len(m.hist[idA].cpuPct) != 2 || len(m.earned) != 3 {
		t.Fatalf("a repeated snapshot added samples")
	}
	if !strings.Contains(m.View(), "rate 5.4k/h") {
		t.Fatalf("rate not shown:\n%s", m.View())
	}
	// A lease that goes is forgotten.
	st := snapshot(3)
	st.Leases = st.Leases[1:]
	m, _ = update(t, m, statusMsg{st: st})
	if _, ok := m.hist[idA]; ok {
		t.Fatal("history of a gone lease kept")
	}
	// s toggles the sparkline.
	m, _ = update(t, m, key("s"))
	if !strings.Contains(m.View(), "earned ") {
		t.Fatalf("no earnings sparkline:\n%s", m.View())
	}
}

func TestStatusErrors(t *testing.T) {
	src := newSource(2)
	src.err = errors.New("no provider is running on data dir /x")
	m := New(src, opts())
	m, _ = update(t, m, m.Init()())
	v := m.View()
	if !strings.Contains(v, "no answer from the provider") || !strings.Contains(v, "\nno provider is running on data dir /x") ||
		!strings.Contains(lastLine(v), "no answer from the provider since 12:00:05") || strings.Contains(v, "RENTER") {
		t.Fatalf("before any status:\n%s", v)
	}
	src.err = nil
	m, _ = update(t, m, m.fetch()())
	if m.Err() != nil || !strings.Contains(m.View(), "203.0.113.7:2222") {
		t.Fatalf("after recovery:\n%s", m.View())
	}
	src.err = errors.New("connection refused")
	m, _ = update(t, m, m.fetch()())
	v = m.View()
	if !strings.Contains(v, "NO ANSWER") || !strings.Contains(v, "203.0.113.7:2222") || !strings.Contains(lastLine(v), "connection refused") {
		t.Fatalf("after losing the provider the last status stays, marked:\n%s", v)
	}
}

func TestPolling(t *testing.T) {
	m := New(newSource(1), opts())
	cmd := m.Init()
	if !m.busy || cmd == nil {
		t.Fatal("Init does not poll")
	}
	m, tick := update(t, m, cmd())
	if tick == nil || m.busy {
		t.Fatal("no tick after a status")
	}
	// A tick of an older generation, or one while a request is in flight,
	// starts nothing: polls never pile up.
	if _, c := update(t, m, tickMsg{gen: m.gen - 1}); c != nil {
		t.Fatal("stale tick polled")
	}
	m2, c := update(t, m, tickMsg{gen: m.gen})
	if c == nil || !m2.busy {
		t.Fatal("tick did not poll")
	}
	if _, c := update(t, m2, tickMsg{gen: m2.gen}); c != nil {
		t.Fatal("tick polled while a request was in flight")
	}
	// An action's refresh while a request is in flight waits for it.
	m3, c := update(t, m2, actionMsg{verb: "ended x"})
	if c != nil || !m3.refresh {
		t.Fatal("refresh did not wait for the request in flight")
	}
	m4, c := update(t, m3, statusMsg{st: snapshot(0)})
	if c == nil || !m4.busy || m4.refresh {
		t.Fatal("no refresh after the request in flight")
	}
	// q and ctrl-c quit; q only cancels a confirmation.
	if _, c := update(t, m, key("q")); c == nil || c() != tea.Quit() {
		t.Fatal("q does not quit")
	}
	mc, _ := update(t, m, key("d"))
	if _, c := update(t, mc, key("q")); c != nil {
		t.Fatal("q quit while confirming")
	}
	if _, c := update(t, mc, key("ctrl+c")); c == nil || c() != tea.Quit() {
		t.Fatal("ctrl-c does not quit while confirming")
	}
}

// checkFits fails unless v has exactly h lines, none wider than w.
func checkFits(t *testing.T, v string, w, h int) {
	t.Helper()
	lines := strings.Split(v, "\n")
	if len(lines) != h {
		t.Fatalf("%dx%d: %d lines:\n%s", w, h, len(lines), v)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Fatalf("%dx%d: line %d is %d wide: %q", w, h, i, n, l)
		}
	}
}

func TestResize(t *testing.T) {
	m := loaded(t, newSource(4), 4)
	for _, mode := range []string{"", "?", "d", "s"} {
		mm := m
		if mode != "" {
			mm, _ = update(t, mm, key(mode))
		}
		for w := 1; w <= 200; w += 7 {
			for h := 1; h <= 60; h += 3 {
				mm, _ = update(t, mm, tea.WindowSizeMsg{Width: w, Height: h})
				checkFits(t, mm.View(), w, h)
			}
		}
	}
	// Shrinking keeps the selected row visible.
	m, _ = update(t, m, key("G"))
	m, _ = update(t, m, tea.WindowSizeMsg{Width: 80, Height: 8})
	if !strings.Contains(m.View(), "> Mn0bVc9x") {
		t.Fatalf("the selected row is hidden at 80x8:\n%s", m.View())
	}
}

func TestNoColor(t *testing.T) {
	m := loaded(t, newSource(2), 2)
	if v := m.View(); strings.Contains(v, "\x1b") {
		t.Fatalf("escape sequences with NoColor:\n%q", v)
	}
	o := opts()
	o.NoColor = false
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI)
	o.Renderer = r
	src := newSource(2)
	mc := New(src, o)
	mc, _ = update(t, mc, mc.Init()())
	mc, _ = update(t, mc, mc.fetch()())
	v := mc.View()
	if !strings.Contains(v, "\x1b[") {
		t.Fatal("no colour with an ANSI renderer")
	}
	// Colour changes nothing but the escapes.
	if ansi.Strip(v) != m.View() {
		t.Fatalf("coloured view differs in text:\n%s\n---\n%s", ansi.Strip(v), m.View())
	}
	checkFits(t, v, 80, 24)
}

func TestNoColorEnv(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	if NoColorEnv() {
		t.Fatal("empty NO_COLOR counts")
	}
	t.Setenv("NO_COLOR", "1")
	if !NoColorEnv() {
		t.Fatal("NO_COLOR=1 ignored")
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{size(0), "0B"}, {size(1023), "1023B"}, {size(512 << 20), "512M"}, {size(1536 << 20), "1.5G"},
		{size(15 << 30), "15G"}, {size(700 << 10), "700K"},
		{sat(0), "0"}, {sat(250), "0.250"}, {sat(4000), "4.000"}, {sat(12345), "12.3"}, {sat(45_678_000), "45.7k"},
		{sat(1_234_000_000), "1.23M"},
		{age(45 * time.Second), "45s"}, {age(10*time.Minute + 2*time.Second), "10m02s"}, {age(2*time.Hour + 5*time.Minute), "2h05m"},
		{age(76 * time.Hour), "3d04h"}, {age(-time.Second), "0s"},
		{cpus(1), "1c"}, {cpus(0.5), "0.5c"}, {cpus(1.25), "1.25c"},
		{shortKey("SHA256:Ab3dEf12GhIj", 8), "Ab3dEf12"}, {shortLease(idA), "zn-0a1b2c3d"},
		{fit("abcdef", 4), "abc…"}, {fit("ab", 4), "ab  "}, {right("ab", 4), "  ab"},
		{sparkline([]float64{0, 50, 100, 200}, 3, 100), "▂▄█"}, {sparkline([]float64{0, 1, 100}, 10, 100), "▁▂█"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestGroupedKeys: keys typed quickly reach the model as one message; each
// counts.
func TestGroupedKeys(t *testing.T) {
	src := newSource(1)
	m := loaded(t, src, 1)
	m, _ = update(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("je")})
	if m.Selected() != idA || m.confirm == nil || m.confirm.verb != "end" {
		t.Fatalf("after \"je\": selected %s, confirm %+v", m.Selected(), m.confirm)
	}
	m, cmd := update(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("y")})
	m, _ = update(t, m, cmd())
	if fmt.Sprint(src.Calls()) != "[end "+idA+"]" {
		t.Fatalf("calls %q", src.Calls())
	}
	// A paste is not keys.
	m, _ = update(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("dq"), Paste: true})
	if m.confirm != nil {
		t.Fatal("a paste acted")
	}
}

// TestNarrowColumns: below 77 columns the table drops limits and network
// rather than cutting the state off.
func TestNarrowColumns(t *testing.T) {
	m := loaded(t, newSource(2), 2)
	m, _ = update(t, m, tea.WindowSizeMsg{Width: 60, Height: 20})
	v := m.View()
	checkFits(t, v, 60, 20)
	if !strings.Contains(v, "> Qw9rTy8u  3h00m    0%  1.2G paused-unpaid    400.0") || strings.Contains(v, "LIMITS") {
		t.Fatalf("narrow table:\n%s", v)
	}
}

// TestCPURateOverReports: the provider's counters change once a metering
// interval (5 s) while the dashboard refreshes every second; CPU % is the
// counter's rate over the reports' own times, so a 1-core lease busy all
// along shows 100%, not 0% between reports and 500% at each.
func TestCPURateOverReports(t *testing.T) {
	m := New(newSource(1), Options{Interval: time.Second, NoColor: true, Now: func() time.Time { return t0 }})
	const interval = 5
	var cpu uint64
	var report time.Time
	for s := 0; s <= 20; s++ { // a snapshot a second for 20 s
		now := t0.Add(time.Duration(s) * time.Second)
		if s%interval == 0 { // a new report: a core's worth of CPU since the last
			report = now
			cpu = uint64(s) * 1e9
		}
		st := snapshot(0)
		st.Time = now
		st.Leases[0].CPUNs, st.Leases[0].LastReport = cpu, report
		m.ingest(st)
	}
	got := m.hist[idA].cpuPct
	if len(got) != 4 {
		t.Fatalf("%d samples %v, want one a report after the first (4)", len(got), got)
	}
	for _, p := range got {
		if p < 99.9 || p > 100.1 {
			t.Fatalf("cpu%% %v, want 100 each", got)
		}
	}
}
