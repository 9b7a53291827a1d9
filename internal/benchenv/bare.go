// Package benchenv holds what the start-up benchmarks share: the bare
// runsc sandboxes zennet's leases are measured against.
package benchenv

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/sandbox"
)

// Bare is n minimal sandboxes started with runsc directly.
type Bare struct {
	Runtime *sandbox.Runtime
	IDs     []string
	// All is how long starting them all took, First the first of them.
	All, First time.Duration
}

// StartBare creates and starts n minimal sandboxes (128 MiB, one CPU,
// /bin/sleep), 8 at a time as the lease manager does: the baseline of the
// start-up benchmarks. Stop destroys them; a failure to start fails tb
// after destroying those that started.
func StartBare(tb testing.TB, n int) *Bare {
	tb.Helper()
	runsc, image := testenv.Runtime(tb)
	rt, err := sandbox.New(sandbox.Config{Runsc: runsc, Image: image, StateDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	b := &Bare{Runtime: rt, IDs: make([]string, n)}
	for i := range b.IDs {
		b.IDs[i] = lease.NewID()
	}
	var once sync.Once
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(8)
	for _, id := range b.IDs {
		g.Go(func() error {
			err := rt.Create(context.Background(), sandbox.Spec{ID: id, MemoryBytes: 128 << 20, CPUs: 1, Args: []string{"/bin/sleep", "1000"}})
			if err == nil {
				once.Do(func() { b.First = time.Since(start) })
			}
			return err
		})
	}
	err = g.Wait()
	b.All = time.Since(start)
	if err != nil {
		b.Stop()
		tb.Fatal(err)
	}
	return b
}

// Stop destroys the sandboxes.
func (b *Bare) Stop() {
	for _, id := range b.IDs {
		b.Runtime.Destroy(context.Background(), id)
	}
	b.Runtime.Close()
}
