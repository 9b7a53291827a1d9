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

// Released is a session 'zennet release' ended, or, when HolderDied, a
// detached session whose holder had died, which it forgot: its providers
// had ended its leases when the holder vanished.
type Released struct {
	session.Record
	HolderDied bool
}

// ReleaseSessions asks the running sessions in configDir named by ids (all
// when ids is empty) to release their hosts, as Ctrl-C would (SIGTERM to
// the renter holding each), and waits until each has settled and removed
// its session, or ctx ends. The detached sessions named (all, when ids is
// empty) whose holder died are forgotten (session.Forget). It returns the
// sessions released, then those forgotten.
func ReleaseSessions(ctx context.Context, configDir string, ids []string) ([]Released, error) {
	live, dead, err := session.Scan(configDir)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var targets, forget []session.Record
	for _, r := range live {
		if len(ids) == 0 || want[r.ID] {
			targets = append(targets, r)
			delete(want, r.ID)
		}
	}
	for _, r := range dead {
		if len(ids) == 0 || want[r.ID] {
			forget = append(forget, r)
			delete(want, r.ID)
		}
	}
	for id := range want {
		return nil, fmt.Errorf("%w %q", ErrNoSession, id)
	}
	for _, r := range targets {
		err := syscall.Kill(r.Pid, syscall.SIGTERM)
		if err != nil && !(errors.Is(err, syscall.ESRCH) && r.Detached) {
			return nil, fmt.Errorf("signal session %s (pid %d): %w", r.ID, r.Pid, err)
		}
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	out := make([]Released, 0, len(targets)+len(forget))
	for _, r := range targets {
		died := false
		for {
			if _, err := os.Stat(session.Dir(configDir, r.ID)); errors.Is(err, os.ErrNotExist) {
				break
			}
			if r.Detached && session.Forget(configDir, r.ID) == nil {
				// The holder died before it could release (its lock is
				// free, its directory kept): forgotten as a dead one.
				died = true
				break
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("session %s (pid %d) has not ended: %w", r.ID, r.Pid, context.Cause(ctx))
			case <-t.C:
			}
		}
		out = append(out, Released{Record: r, HolderDied: died})
	}
	for _, r := range forget {
		if err := session.Forget(configDir, r.ID); err != nil {
			return nil, fmt.Errorf("forget session %s: %w", r.ID, err)
		}
		out = append(out, Released{Record: r, HolderDied: true})
	}
	return out, nil
}
