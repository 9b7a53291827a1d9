package session

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// Usage is what a session knows of one host's metered use: the latest
// usage report it accepted, and how many it accepted and rejected.
type Usage struct {
	Name     string            `json:"name"`
	LeaseID  string            `json:"lease_id"`
	Provider string            `json:"provider"`
	Seq      uint64            `json:"seq"`
	Start    time.Time         `json:"start"`
	Time     time.Time         `json:"time"`
	Counters map[string]uint64 `json:"counters"`
	Accepted int               `json:"accepted"`
	Rejected int               `json:"rejected"`
	// LastRejection says why the latest rejected report was refused.
	LastRejection string `json:"last_rejection,omitempty"`
	// Payments: the method, the renter's bill, what it paid and what the
	// provider acknowledged, in msat.
	Method       string `json:"method,omitempty"`
	BilledMsat   uint64 `json:"billed_msat"`
	PaidMsat     uint64 `json:"paid_msat"`
	DueMsat      uint64 `json:"due_msat"`
	CreditedMsat uint64 `json:"credited_msat"`
	// State is "running", "paused" (by the provider, with StateReason),
	// "ended" or "dropped" (by this renter, with StateReason).
	State       string `json:"state,omitempty"`
	StateReason string `json:"state_reason,omitempty"`
}

// UsagePath is where the session keeps its hosts' usage.
func (s *Session) UsagePath() string { return filepath.Join(s.Dir, "usage.json") }

// WriteUsage replaces the session's usage file, atomically.
func (s *Session) WriteUsage(u []Usage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return writeJSON(s.UsagePath(), u)
}

// ReadUsage returns the usage a live session (by its id) last wrote.
func ReadUsage(configDir, id string) ([]Usage, error) {
	b, err := os.ReadFile(filepath.Join(Dir(configDir, id), "usage.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var u []Usage
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, err
	}
	return u, nil
}
