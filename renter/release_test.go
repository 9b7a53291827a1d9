package renter

import (
	"context"
	"errors"
	"testing"
)

// The real release (a renter process signalled, its session gone) is
// sessions.txtar's; here, the names that match nothing.
func TestReleaseSessionsNamesNone(t *testing.T) {
	dir := t.TempDir()
	got, err := ReleaseSessions(context.Background(), dir, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("no sessions: got %v, %v; want none, nil", got, err)
	}
	if _, err := ReleaseSessions(context.Background(), dir, []string{"0123abcd"}); !errors.Is(err, ErrNoSession) {
		t.Fatalf("unknown session: got %v, want ErrNoSession", err)
	}
}
