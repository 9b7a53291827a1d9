package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zennet/zennet/sandbox"
)

// testSandbox is one benchmark sandbox shared by the package's tests,
// started on first use and destroyed by TestMain.
var testSandbox struct {
	once  sync.Once
	rt    *sandbox.Runtime
	id    string
	state string
	agent string
	runsc string
	env   Env
	close func()
	skip  string
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopTestSandbox()
	os.Exit(code)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// agentBinary returns a static zennet binary that has 'agent bench':
// ZENNET_AGENT_BINARY if it does, else one built into dir.
func agentBinary(dir string) (string, error) {
	if p := os.Getenv("ZENNET_AGENT_BINARY"); p != "" {
		if exec.Command(p, "agent", "bench", "--help").Run() == nil {
			return p, nil
		}
	}
	out := filepath.Join(dir, "zennet")
	cmd := exec.Command("go", "build", "-o", out, "../cmd/zennet")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", &exec.ExitError{Stderr: b}
	}
	return out, nil
}

// sharedEnv returns the shared sandbox's runtime, id and metered Env, or
// skips tb when runsc, the image or root are missing.
func sharedEnv(tb testing.TB) (*sandbox.Runtime, string, Env) {
	tb.Helper()
	s := &testSandbox
	s.once.Do(func() {
		if os.Geteuid() != 0 {
			s.skip = "needs root for runsc"
			return
		}
		home, _ := os.UserHomeDir()
		s.runsc = envOr("ZENNET_RUNSC", filepath.Join(home, ".cache/zennet/bin/runsc"))
		image := envOr("ZENNET_IMAGE", filepath.Join(home, ".cache/zennet/images/bookworm"))
		if _, err := os.Stat(s.runsc); err != nil {
			s.skip = "no runsc (make runsc): " + err.Error()
			return
		}
		if err := sandbox.CheckImage(image); err != nil {
			s.skip = err.Error()
			return
		}
		var err error
		if s.state, err = os.MkdirTemp("", "bench-test-"); err != nil {
			s.skip = err.Error()
			return
		}
		if s.agent, err = agentBinary(s.state); err != nil {
			s.skip = "build agent: " + err.Error()
			return
		}
		if s.rt, err = sandbox.New(sandbox.Config{Runsc: s.runsc, Image: image, StateDir: filepath.Join(s.state, "sb")}); err != nil {
			s.skip = err.Error()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if s.id, err = StartSandbox(ctx, s.rt, SandboxConfig{AgentBinary: s.agent}); err != nil {
			s.skip = err.Error()
			return
		}
		if s.env, s.close, err = SandboxEnv(s.rt, s.id, nil); err != nil {
			s.skip = err.Error()
			return
		}
		// A fresh sandbox runs slow for a second (Options.WarmUp).
		if err := warmUp(ctx, s.env, 0, StepSpec{Workload: "int", Seed: 1}); err != nil {
			s.skip = err.Error()
		}
	})
	if s.skip != "" {
		tb.Skip(s.skip)
	}
	return s.rt, s.id, s.env
}

func stopTestSandbox() {
	s := &testSandbox
	if s.close != nil {
		s.close()
	}
	if s.rt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if s.id != "" {
			s.rt.Destroy(ctx, s.id)
		}
		s.rt.Close()
	}
	if s.state != "" {
		os.RemoveAll(s.state)
	}
}
