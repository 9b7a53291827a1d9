package provider

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLogRing(t *testing.T) {
	var out bytes.Buffer
	ring := newLogRing(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	log := slog.New(ring)
	log.Debug("not kept")
	log.Info("kept", "lease", "zn-1", "n", 2)
	log.With("subsystem", "idle").Warn("owner load", "state", "busy")
	log.WithGroup("g").Error("failed", "err", "boom")

	lines := ring.lines()
	var got []string
	for _, l := range lines {
		got = append(got, l.Level+" "+l.Msg)
	}
	// Info and above are kept whatever the next handler's level, and the
	// subsystem attribute is left out.
	want := []string{"info kept lease=zn-1 n=2", "warn owner load state=busy", "error failed err=boom"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
	// The next handler sees what its own level takes.
	if s := out.String(); strings.Contains(s, "kept") || !strings.Contains(s, "owner load") || !strings.Contains(s, "subsystem=idle") {
		t.Errorf("next handler got:\n%s", s)
	}

	for i := range 2 * maxLogLines {
		log.Info("line", "i", i)
	}
	lines = ring.lines()
	if len(lines) != maxLogLines || lines[len(lines)-1].Msg != fmt.Sprintf("line i=%d", 2*maxLogLines-1) {
		t.Errorf("after many: %d lines, last %q; want the latest %d", len(lines), lines[len(lines)-1].Msg, maxLogLines)
	}
}

func TestCredit(t *testing.T) {
	p := &operator{day: startOfDay(time.Now()), today: 1000}
	for i := range maxPayments + 5 {
		p.credit(fmt.Sprintf("zn-%d", i), 10, "embedded")
	}
	if p.session != 10*(maxPayments+5) || p.today != 1000+p.session {
		t.Errorf("session %d, today %d", p.session, p.today)
	}
	if len(p.payments) != maxPayments || p.payments[len(p.payments)-1].Lease != fmt.Sprintf("zn-%d", maxPayments+4) {
		t.Errorf("%d payments kept, latest %+v; want the latest %d", len(p.payments), p.payments[len(p.payments)-1], maxPayments)
	}
	// A new day starts today's count again; the session's goes on.
	p.day = p.day.AddDate(0, 0, -1)
	session := p.session
	p.credit("zn-x", 7, "lightning")
	if p.today != 7 || p.session != session+7 {
		t.Errorf("after midnight: today %d, session %d; want 7, %d", p.today, p.session, session+7)
	}
}

func TestStartOfDay(t *testing.T) {
	loc := time.FixedZone("X", 5*3600)
	for _, tc := range []struct{ in, want time.Time }{
		{time.Date(2026, 12, 6, 18, 30, 1, 5, loc), time.Date(2026, 12, 6, 0, 0, 0, 0, loc)},
		{time.Date(2026, 12, 6, 0, 0, 0, 0, loc), time.Date(2026, 12, 6, 0, 0, 0, 0, loc)},
		{time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)},
	} {
		if got := startOfDay(tc.in); !got.Equal(tc.want) || got.Location() != tc.in.Location() {
			t.Errorf("startOfDay(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
