package netsandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runscEnv finds runsc and the root filesystem image, or fails the test
// with what to do.
func runscEnv(t *testing.T) (runsc, image string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("sandbox networks need root (network namespaces, /dev/net/tun, runsc): run the tests as root")
	}
	home, _ := os.UserHomeDir()
	runsc = os.Getenv("ZENNET_RUNSC")
	if runsc == "" {
		runsc = filepath.Join(home, ".cache/zennet/bin/runsc")
	}
	image = os.Getenv("ZENNET_IMAGE")
	if image == "" {
		image = filepath.Join(home, ".cache/zennet/images/bookworm")
	}
	if fi, err := os.Stat(runsc); err != nil || fi.IsDir() {
		t.Fatalf("runsc not found at %s: run 'make runsc' or set ZENNET_RUNSC", runsc)
	}
	if _, err := os.Stat(filepath.Join(image, "usr/bin/python3")); err != nil {
		t.Fatalf("root filesystem image with python3 not found at %s: run 'make image' or set ZENNET_IMAGE", image)
	}
	return runsc, image
}

// sandbox is a runsc sandbox in a Network, for tests.
type sandbox struct {
	t     *testing.T
	runsc string
	root  string
	id    string
}

var sandboxSeq atomic.Int64

// startSandbox starts a sandbox whose first process sleeps, in network n,
// and destroys it when the test ends (before n is closed, if n was created
// before the sandbox).
func startSandbox(t *testing.T, n *Network) *sandbox {
	t.Helper()
	s := startSandboxIn(t, n, t.TempDir())
	t.Cleanup(s.destroy)
	return s
}

// startSandboxIn starts a sandbox with its bundle and runsc state in dir,
// and leaves destroying it to the caller.
func startSandboxIn(t *testing.T, n *Network, dir string) *sandbox {
	t.Helper()
	runsc, image := runscEnv(t)
	s := &sandbox{
		t: t, runsc: runsc, root: filepath.Join(dir, "runsc"),
		// Fixed length: runsc resolves ids by prefix.
		id: fmt.Sprintf("nstest-%d-%06d", os.Getpid(), sandboxSeq.Add(1)),
	}
	bundle := filepath.Join(dir, "bundle")
	for _, d := range []string{s.root, bundle} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	resolv := filepath.Join(bundle, "resolv.conf")
	hosts := filepath.Join(bundle, "hosts")
	if err := os.WriteFile(resolv, n.ResolvConf(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hosts, n.Hosts(), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(image, n.NetnsPath(), resolv, hosts)
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, runsc, append(s.flags(), "create", "--bundle", bundle, s.id)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(log.Name())
		s.destroy()
		t.Fatalf("runsc create: %v\n%s", err, b)
	}
	if out, err := exec.CommandContext(ctx, runsc, append(s.flags(), "start", s.id)...).CombinedOutput(); err != nil {
		s.destroy()
		t.Fatalf("runsc start: %v\n%s", err, out)
	}
	return s
}

// testSpec is the smallest spec a sandbox in a Network needs: the image as
// a writable root (runsc's overlay takes the writes), resolv.conf and hosts
// from the network, and the network namespace at netns.
func testSpec(image, netns, resolv, hosts string) *specs.Spec {
	caps := []string{"CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_KILL", "CAP_SETUID", "CAP_SETGID", "CAP_DAC_OVERRIDE"}
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: []string{"sleep", "infinity"},
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
		},
		Root:     &specs.Root{Path: image, Readonly: false},
		Hostname: "nstest",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: resolv, Options: []string{"rbind", "ro"}},
			{Destination: "/etc/hosts", Type: "bind", Source: hosts, Options: []string{"rbind", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace, Path: netns},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
		},
	}
}

func (s *sandbox) flags() []string {
	return []string{"--root", s.root, "--network=sandbox", "--overlay2=root:memory", "--gofer-network-namespace=new"}
}

// exec runs argv inside the sandbox and returns its output and exit code.
func (s *sandbox) exec(argv ...string) (string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.runsc, append(append(s.flags(), "exec", s.id), argv...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	s.t.Fatalf("runsc exec: %v\n%s", err, out.String())
	return "", -1
}

// pid returns the sandbox process's pid.
func (s *sandbox) pid() int {
	s.t.Helper()
	out, err := exec.Command(s.runsc, append(s.flags(), "state", s.id)...).Output()
	if err != nil {
		s.t.Fatalf("runsc state: %v", err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil || st.Pid == 0 {
		s.t.Fatalf("runsc state: %v: %s", err, out)
	}
	return st.Pid
}

// interfaces returns the interfaces in process pid's network namespace.
func interfaces(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

func (s *sandbox) destroy() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.runsc, append(s.flags(), "delete", "--force", s.id)...).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "does not exist") {
		s.t.Errorf("runsc delete: %v\n%s", err, out)
	}
}
