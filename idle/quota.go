package idle

import (
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// minQuotaUs is the kernel's smallest CFS quota (1 ms).
const minQuotaUs = 1000

// SetCPUQuota sets the CFS quota of cgroup (a cgroup v1 path like a
// sandbox's, lease.Runtime.CgroupPath) to cores CPUs of its period; cores
// <= 0 lifts the quota. cgroupRoot holds one directory per controller;
// empty means the cpu controller's mount of /proc/self/mountinfo.
//
// Throttle each sandbox, not their common parent: in cgroup v1 a parent's
// quota may not be below any child's (the kernel refuses it with EINVAL,
// and refuses a new child's quota above the parent's), while lowering a
// child's is always allowed.
func SetCPUQuota(cgroupRoot, cgroup string, cores float64) error {
	dir, err := cpuDir(cgroupRoot)
	if err != nil {
		return err
	}
	dir = filepath.Join(dir, path.Clean("/"+cgroup))
	quota := int64(-1)
	if cores > 0 && !math.IsInf(cores, 1) {
		period := int64(100000)
		if b, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us")); err == nil {
			if p, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && p > 0 {
				period = p
			}
		}
		quota = max(int64(cores*float64(period)), minQuotaUs)
	}
	name := filepath.Join(dir, "cpu.cfs_quota_us")
	if err := os.WriteFile(name, []byte(strconv.FormatInt(quota, 10)), 0); err != nil {
		return fmt.Errorf("idle: set %s to %d: %w", name, quota, err)
	}
	return nil
}

func cpuDir(root string) (string, error) {
	if root != "" {
		return filepath.Join(root, "cpu"), nil
	}
	return controllerMount("cpu")
}
