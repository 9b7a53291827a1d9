package meter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zennet/zennet/sandbox"
)

// testSandbox is one runsc sandbox shared by the package's accuracy tests
// and benchmarks, started on first use and destroyed by TestMain.
var testSandbox struct {
	once    sync.Once
	rt      *sandbox.Runtime
	id      string
	data    string // host directory bound at /data
	state   string
	skip    string
	started bool
}

const (
	testSandboxCPUs   = 1
	testSandboxMemory = 1 << 30
)

// sharedSandbox returns the shared sandbox's runtime and id, or skips tb
// when runsc, its image or root are missing.
func sharedSandbox(tb testing.TB) (*sandbox.Runtime, string) {
	tb.Helper()
	s := &testSandbox
	s.once.Do(func() {
		if os.Geteuid() != 0 {
			s.skip = "needs root for runsc"
			return
		}
		home, _ := os.UserHomeDir()
		runsc := envOr("ZENNET_RUNSC", filepath.Join(home, ".cache/zennet/bin/runsc"))
		image := envOr("ZENNET_IMAGE", filepath.Join(home, ".cache/zennet/images/bookworm"))
		if _, err := os.Stat(runsc); err != nil {
			s.skip = "no runsc (make runsc): " + err.Error()
			return
		}
		if err := sandbox.CheckImage(image); err != nil {
			s.skip = err.Error()
			return
		}
		var err error
		if s.state, err = os.MkdirTemp("", "meter-test-"); err != nil {
			s.skip = err.Error()
			return
		}
		s.data = filepath.Join(s.state, "data")
		if err := os.Mkdir(s.data, 0o755); err != nil {
			s.skip = err.Error()
			return
		}
		if s.rt, err = sandbox.New(sandbox.Config{Runsc: runsc, Image: image, StateDir: s.state}); err != nil {
			s.skip = err.Error()
			return
		}
		var b [6]byte
		rand.Read(b[:])
		s.id = "zn-metertest" + hex.EncodeToString(b[:])
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err = s.rt.Create(ctx, sandbox.Spec{
			ID: s.id, MemoryBytes: testSandboxMemory, CPUs: testSandboxCPUs,
			Args:   []string{"/bin/sh", "-c", "exec sleep infinity"},
			Mounts: []sandbox.Mount{{Source: s.data, Destination: "/data"}},
		})
		if err != nil {
			s.skip = "create sandbox: " + err.Error()
			return
		}
		s.started = true
	})
	if s.skip != "" {
		tb.Skip(s.skip)
	}
	return s.rt, s.id
}

func stopTestSandbox() {
	s := &testSandbox
	if s.rt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if s.started {
		s.rt.Destroy(ctx, s.id)
	}
	s.rt.Close()
	os.RemoveAll(s.state)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// inSandbox runs argv in the shared sandbox and returns its output.
func inSandbox(tb testing.TB, argv ...string) string {
	tb.Helper()
	rt, id := sharedSandbox(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := rt.Command(ctx, id, argv...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%v: %v: %s", argv, err, out)
	}
	return string(out)
}
