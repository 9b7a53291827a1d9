package renter

import (
	"fmt"
	"slices"
	"time"

	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/session"
)

// SessionStatus is one running session as 'zennet status' shows it: its
// hosts, their providers, its age, what it has spent so far and at what
// rate.
type SessionStatus struct {
	ID      string    `json:"session"`
	Pid     int       `json:"pid"`
	Started time.Time `json:"started"`
	// AgeSeconds is how long the session has run, in whole seconds.
	AgeSeconds int64 `json:"age_seconds"`
	// Ready is set once its hosts are ready for use.
	Ready     bool     `json:"ready"`
	Hosts     []string `json:"hosts"`
	Providers []string `json:"providers"`
	// BilledMsat and PaidMsat are what this machine's bills of its hosts
	// came to so far, and what it paid of them (hosts dropped or ended
	// included: they were spent).
	BilledMsat uint64 `json:"billed_msat"`
	PaidMsat   uint64 `json:"paid_msat"`
	// RateMsatPerHour is what the hosts still running cost an hour: each
	// host's bill over the time its reports cover, summed.
	RateMsatPerHour float64 `json:"rate_msat_per_hour"`
	// Detached is set for a session held by a background holder
	// ('zennet -n -d'), Log its output.
	Detached bool   `json:"detached,omitempty"`
	Log      string `json:"log,omitempty"`
	// HolderDied is set when a detached session's holder died: its
	// providers end its leases (the renter is gone) and its ledger keeps
	// what was paid; 'zennet release ID' forgets it.
	HolderDied bool `json:"holder_died,omitempty"`
}

// Status returns the running sessions of configDir, oldest first, as of
// now, and after them the detached ones whose holder died.
func Status(configDir string, now time.Time) ([]SessionStatus, error) {
	live, dead, err := session.Scan(configDir)
	if err != nil {
		return nil, err
	}
	out := make([]SessionStatus, 0, len(live)+len(dead))
	for _, r := range append(live, dead...) {
		u, err := session.ReadUsage(configDir, r.ID)
		if err != nil {
			return nil, fmt.Errorf("read the usage of session %s: %w", r.ID, err)
		}
		s := StatusOf(r, u, now)
		if len(out) >= len(live) {
			s.HolderDied, s.RateMsatPerHour = true, 0 // its hosts are gone
		}
		out = append(out, s)
	}
	return out, nil
}

// StatusOf sums up a session from its record and its hosts' usage.
func StatusOf(r session.Record, usage []session.Usage, now time.Time) SessionStatus {
	s := SessionStatus{ID: r.ID, Pid: r.Pid, Started: r.Started, Ready: r.Ready, Hosts: []string{}, Providers: []string{},
		Detached: r.Detached, Log: r.Log}
	if age := now.Sub(r.Started); age > 0 {
		s.AgeSeconds = int64(age / time.Second)
	}
	for _, h := range r.Hosts {
		s.Hosts = append(s.Hosts, h.Name)
		if !slices.Contains(s.Providers, h.Provider) {
			s.Providers = append(s.Providers, h.Provider)
		}
	}
	for _, u := range usage {
		s.BilledMsat += u.BilledMsat
		s.PaidMsat += u.PaidMsat
		if u.State != "" && u.State != proto.StateRunning && u.State != proto.StatePaused {
			continue // ended or dropped: it costs nothing any more
		}
		if d := u.Time.Sub(u.Start); d > 0 {
			s.RateMsatPerHour += float64(u.BilledMsat) / d.Hours()
		}
	}
	return s
}
