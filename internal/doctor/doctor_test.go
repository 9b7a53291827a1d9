package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunsc(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "runsc")
	os.WriteFile(good, []byte("#!/bin/sh\necho 'runsc version test-1'\necho spec: 1.1\n"), 0o755)
	if c := Runsc(context.Background(), good, dir); !c.OK || !strings.Contains(c.Detail, "runsc version test-1") {
		t.Errorf("a runsc that runs: %+v", c)
	}
	bad := filepath.Join(dir, "broken")
	os.WriteFile(bad, []byte("#!/bin/sh\nexit 3\n"), 0o755)
	if c := Runsc(context.Background(), bad, dir); c.OK || !strings.Contains(c.Detail, "--version") || c.Fix == "" {
		t.Errorf("a runsc that fails: %+v", c)
	}
	t.Setenv("PATH", dir+"/nothing")
	if c := Runsc(context.Background(), "", dir); c.OK || !strings.Contains(c.Fix, "make runsc") {
		t.Errorf("no runsc: %+v", c)
	}
}

func TestImage(t *testing.T) {
	if c := Image(t.TempDir()); c.OK || !strings.Contains(c.Fix, "zennet image build") {
		t.Errorf("an empty image: %+v", c)
	}
}

func TestCgroups(t *testing.T) {
	root := t.TempDir()
	for _, c := range Controllers {
		os.Mkdir(filepath.Join(root, c), 0o755)
	}
	if c := Cgroups(root); !c.OK {
		t.Errorf("every controller there: %+v", c)
	}
	os.Remove(filepath.Join(root, "pids"))
	if c := Cgroups(root); c.OK || !strings.Contains(c.Detail, "pids") || c.Fix == "" {
		t.Errorf("pids gone: %+v", c)
	}
}

// Netns leaves this process's own namespace alone: the namespace it makes
// goes with a thread the runtime discards.
func TestNetnsLeavesOurs(t *testing.T) {
	before, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Skip(err)
	}
	c := Netns()
	if os.Geteuid() == 0 && !c.OK {
		t.Errorf("as root: %+v", c)
	}
	if os.Geteuid() != 0 && (c.OK || c.Fix == "") {
		t.Errorf("not root: %+v", c)
	}
	for i := 0; i < 20; i++ {
		if now, _ := os.Readlink("/proc/self/ns/net"); now != before {
			t.Fatalf("this process's namespace changed: %s -> %s", before, now)
		}
	}
}

func TestFailed(t *testing.T) {
	if Failed([]Check{{OK: true}, {Skipped: true}}) || !Failed([]Check{{OK: true}, {}}) {
		t.Error("Failed")
	}
}
