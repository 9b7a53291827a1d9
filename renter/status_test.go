package renter

import (
	"slices"
	"testing"
	"time"

	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/session"
)

// StatusOf sums the bills of every host, the rate of those still running
// only, and names each provider once.
func TestStatusOf(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	rec := session.Record{ID: "0123abcd", Pid: 42, Started: t0, Ready: true, Hosts: []session.Host{
		{Name: "zennet-1", Provider: "a:1"}, {Name: "zennet-2", Provider: "b:2"}, {Name: "zennet-3", Provider: "a:1"}}}
	usage := []session.Usage{
		// 3600 msat over 30 minutes: 7200 an hour.
		{Name: "zennet-1", Start: t0, Time: t0.Add(30 * time.Minute), BilledMsat: 3600, PaidMsat: 3000, State: proto.StateRunning},
		// 1000 over one hour, paused: still held, still costs.
		{Name: "zennet-2", Start: t0, Time: t0.Add(time.Hour), BilledMsat: 1000, PaidMsat: 1000, State: proto.StatePaused},
		// Dropped: spent, but no longer costs anything.
		{Name: "zennet-3", Start: t0, Time: t0.Add(time.Minute), BilledMsat: 500, PaidMsat: 500, State: "dropped"},
		// No report yet covers any time.
		{Name: "zennet-4", Start: t0, Time: t0},
	}
	s := StatusOf(rec, usage, t0.Add(90*time.Minute+500*time.Millisecond))
	if s.ID != "0123abcd" || s.Pid != 42 || !s.Ready || s.AgeSeconds != 5400 {
		t.Errorf("identity and age: got %+v", s)
	}
	if !slices.Equal(s.Hosts, []string{"zennet-1", "zennet-2", "zennet-3"}) || !slices.Equal(s.Providers, []string{"a:1", "b:2"}) {
		t.Errorf("hosts %v providers %v; want three hosts on a:1 and b:2", s.Hosts, s.Providers)
	}
	if s.BilledMsat != 5100 || s.PaidMsat != 4500 {
		t.Errorf("billed %d paid %d; want 5100 and 4500", s.BilledMsat, s.PaidMsat)
	}
	if s.RateMsatPerHour != 8200 {
		t.Errorf("rate %v msat/h; want 8200 (7200 + 1000; the dropped host costs nothing)", s.RateMsatPerHour)
	}
}

// A session with no hosts yet has empty lists, not nulls, and an age of
// zero when its clock is ahead of ours.
func TestStatusOfEmpty(t *testing.T) {
	t0 := time.Now()
	s := StatusOf(session.Record{ID: "x", Started: t0.Add(time.Second)}, nil, t0)
	if s.Hosts == nil || s.Providers == nil || s.AgeSeconds != 0 || s.RateMsatPerHour != 0 {
		t.Errorf("got %+v", s)
	}
}
