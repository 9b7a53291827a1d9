package cgroupv1

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMountsUnderRoot(t *testing.T) {
	dirs, v2, err := Mounts("/r", "cpu", "memory")
	if err != nil || v2 || dirs["cpu"] != "/r/cpu" || dirs["memory"] != "/r/memory" || len(dirs) != 2 {
		t.Fatalf("Mounts = %v, %v, %v", dirs, v2, err)
	}
	if got, err := Mount("/r", "pids"); err != nil || got != "/r/pids" {
		t.Fatalf("Mount = %q, %v", got, err)
	}
}

// TestMountsOfThisHost checks the lookup against the host's own cgroup
// v1 mounts, where it has them.
func TestMountsOfThisHost(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Skip("no cgroup v1 hierarchy mounted")
	}
	dirs, _, err := Mounts("", "cpuacct", "memory", "no-such-controller")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dirs["no-such-controller"]; ok {
		t.Fatalf("found a controller that does not exist: %v", dirs)
	}
	if _, err := Mount("", "no-such-controller"); err == nil {
		t.Fatal("Mount of a missing controller succeeded")
	}
	for c, dir := range dirs {
		if !slices.Contains(all, dir) {
			t.Errorf("%s at %s is not among All's %v", c, dir, all)
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			t.Errorf("%s at %s is no cgroup hierarchy: %v", c, dir, err)
		}
	}
}
