package renter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/zennet/zennet/session"
)

// ErrNoSession means a session named to release is not running.
var ErrNoSession = errors.New("no running session")

// ReleaseSessions asks the running sessions in configDir named by ids (all
// when ids is empty) to release their hosts, as Ctrl-C would (SIGTERM to
// the renter holding each), and waits until each has settled and removed
// its session, or ctx ends. It returns the sessions released.
func ReleaseSessions(ctx context.Context, configDir string, ids []string) ([]session.Record, error) {
	live, err := session.Live(configDir)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var targets []session.Record
	for _, r := range live {
		if len(ids) == 0 || want[r.ID] {
			targets = append(targets, r)
			delete(want, r.ID)
		}
	}
	for id := range want {
		return nil, fmt.Errorf("%w %q", ErrNoSession, id)
	}
	for _, r := range targets {
		if err := syscall.Kill(r.Pid, syscall.SIGTERM); err != nil {
			return nil, fmt.Errorf("signal session %s (pid %d): %w", r.ID, r.Pid, err)
		}
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for _, r := range targets {
		for {
			if _, err := os.Stat(session.Dir(configDir, r.ID)); errors.Is(err, os.ErrNotExist) {
				break
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("session %s (pid %d) has not ended: %w", r.ID, r.Pid, context.Cause(ctx))
			case <-t.C:
			}
		}
	}
	return targets, nil
}
