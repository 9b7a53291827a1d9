package idle

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSetCPUQuotaFake(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cpu", "zennet", "abcd", "lease1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("50000\n"), 0o644)
	for _, c := range []struct {
		cores float64
		want  string
	}{{1.5, "75000"}, {0.25, "12500"}, {0.001, "1000"}, {0, "-1"}, {-1, "-1"}} {
		if err := SetCPUQuota(root, "zennet/abcd/lease1", c.cores); err != nil {
			t.Fatal(err)
		}
		if got := readQuota(t, dir); got != c.want {
			t.Errorf("%v cores: quota %s, want %s", c.cores, got, c.want)
		}
	}
	if err := SetCPUQuota(root, "/zennet/abcd/gone", 1); err == nil {
		t.Error("no error for a missing cgroup")
	}
}

func readQuota(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestSetCPUQuotaReal sets and lifts a quota on a real cgroup (root and
// cgroup v1 only).
func TestSetCPUQuotaReal(t *testing.T) {
	mount, err := cpuDir("")
	if err != nil {
		t.Skip(err)
	}
	cg := fmt.Sprintf("/zennet-idle-test-%d", os.Getpid())
	dir := filepath.Join(mount, cg)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a cgroup: %v", err)
	}
	defer syscall.Rmdir(dir)
	if err := SetCPUQuota("", cg, 0.5); err != nil {
		t.Fatal(err)
	}
	if got := readQuota(t, dir); got != "50000" {
		t.Fatalf("quota %s", got)
	}
	if err := SetCPUQuota("", cg, 0); err != nil {
		t.Fatal(err)
	}
	if got := readQuota(t, dir); got != "-1" {
		t.Fatalf("quota %s after lifting", got)
	}
}
