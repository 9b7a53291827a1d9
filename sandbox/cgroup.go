package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zennet/zennet/internal/cgroupv1"
)

// cgroupRoot is where the cgroup controllers are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// CgroupParentFor is the default cgroup parent of a runtime on stateDir:
// every state dir (every provider) has its own, so one provider's recovery
// never touches another's sandboxes.
func CgroupParentFor(stateDir string) string {
	sum := sha256.Sum256([]byte(stateDir))
	return "/zennet/" + hex.EncodeToString(sum[:4])
}

// CgroupPath returns the cgroup (relative to each controller's mount) of
// sandbox id.
func (r *Runtime) CgroupPath(id string) string { return r.cfg.CgroupParent + "/" + id }

// CgroupDir returns the directory of sandbox id's cgroup in controller
// (cgroup v1: "memory", "cpuacct", "pids", ...).
func (r *Runtime) CgroupDir(controller, id string) string {
	return filepath.Join(cgroupRoot, controller, r.CgroupPath(id))
}

// controllers lists the mounted cgroup v1 controller directories.
func controllers() []string {
	dirs, _ := cgroupv1.All()
	return dirs
}

// removeCgroup kills every process left in sandbox id's cgroups and removes
// them: what runsc delete does, for when runsc's own state is gone.
func (r *Runtime) removeCgroup(id string) error {
	var errs []error
	for _, c := range controllers() {
		dir := filepath.Join(c, r.CgroupPath(id))
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			pids := readPids(filepath.Join(dir, "cgroup.procs"))
			if len(pids) == 0 {
				break
			}
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("cgroup %s: processes %v survive SIGKILL", dir, pids))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
			// A controller may still be releasing a just-killed task.
			time.Sleep(50 * time.Millisecond)
			if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
			}
		}
	}
	return errors.Join(errs...)
}

func readPids(path string) []int {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// Cgroups lists the sandbox ids that have a cgroup under this runtime's
// parent, whether or not runsc still knows them.
func (r *Runtime) Cgroups() []string {
	seen := map[string]bool{}
	var ids []string
	for _, c := range controllers() {
		ents, _ := os.ReadDir(filepath.Join(c, r.cfg.CgroupParent))
		for _, e := range ents {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				ids = append(ids, e.Name())
			}
		}
	}
	return ids
}

// setLimit writes value to a cgroup file of sandbox id.
func (r *Runtime) setLimit(controller, id, file string, value int64) error {
	path := filepath.Join(r.CgroupDir(controller, id), file)
	if err := os.WriteFile(path, []byte(strconv.FormatInt(value, 10)), 0); err != nil {
		return fmt.Errorf("set %s: %w", path, err)
	}
	return nil
}

// Close removes the runtime's cgroup parent if no sandbox is left in it.
func (r *Runtime) Close() error {
	var errs []error
	for _, c := range controllers() {
		dir := filepath.Join(c, r.cfg.CgroupParent)
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}
