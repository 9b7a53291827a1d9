// Package testenv gives tests what they need of the machine: the pinned
// runsc, the image, and a static zennet to bind into sandboxes. 'make test'
// provides all three through the environment.
package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// Runtime returns the runsc binary and the image directory, failing the
// test with the fix when they are not set.
func Runtime(t testing.TB) (runsc, image string) {
	t.Helper()
	runsc, image = os.Getenv("ZENNET_RUNSC"), os.Getenv("ZENNET_IMAGE")
	if runsc == "" || image == "" {
		t.Fatal("ZENNET_RUNSC and ZENNET_IMAGE must be set: run 'make test', which builds runsc and the image and sets them")
	}
	return runsc, image
}

var (
	buildOnce sync.Once
	built     string
	buildErr  string
)

// AgentBinary returns a statically linked zennet for sandboxes: the one in
// ZENNET_AGENT_BINARY, else one built once per test process (with
// zennet-agent beside it). (Test binaries
// are built with -race and cgo, so they cannot serve inside a sandbox.)
func AgentBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ZENNET_AGENT_BINARY"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "zennet-agent")
		if err != nil {
			buildErr = err.Error()
			return
		}
		// zennet, and zennet-agent and zennet-dashboard beside it, as
		// 'make build' does.
		out := filepath.Join(dir, "zennet")
		for _, pkg := range []string{"./cmd/zennet", "./cmd/zennet-agent", "./cmd/zennet-dashboard"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = err.Error() + "\n" + string(b)
				return
			}
		}
		built = out
	})
	if buildErr != "" {
		t.Fatalf("build static agent: %s", buildErr)
	}
	return built
}

// Signer returns a fresh ed25519 key: a renter's, a provider's host key, a
// benchmarker's, a stranger's.
func Signer(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
