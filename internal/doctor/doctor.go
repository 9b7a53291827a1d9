// Package doctor checks what providing hosts needs of this machine: runsc,
// the image, root, cgroup v1 controllers, network namespaces and the tun
// device. Each check says what it found, or what is wrong and how to fix
// it; none changes the machine.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zennet/zennet/internal/cgroupv1"
	"github.com/zennet/zennet/sandbox"
)

// Check is one check's result.
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Skipped is a check that does not apply here (nothing configured).
	Skipped bool `json:"skipped,omitempty"`
	// Detail is what was found, or what is wrong.
	Detail string `json:"detail"`
	// Fix says what to do about a failure.
	Fix string `json:"fix,omitempty"`
}

func ok(name, detail string) Check { return Check{Name: name, OK: true, Detail: detail} }

func fail(name string, err error, fix string) Check {
	return Check{Name: name, Detail: err.Error(), Fix: fix}
}

// Runsc finds runsc as the provider would (flag, the pinned build in
// cacheDir, PATH) and runs its --version.
func Runsc(ctx context.Context, flag, cacheDir string) Check {
	path, err := sandbox.FindRunsc(flag, cacheDir)
	if err != nil {
		return fail("runsc", err, "run 'make runsc' in zennet's source tree, or pass --runsc PATH")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return fail("runsc", fmt.Errorf("%s --version: %w", path, err), "check that "+path+" is gVisor's runsc and executable, or run 'make runsc'")
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return ok("runsc", path+" ("+first+")")
}

// Image checks the hosts' root filesystem.
func Image(dir string) Check {
	if err := sandbox.CheckImage(dir); err != nil {
		return fail("image", err, "run 'zennet image build' (or 'zennet provide', which builds it on first start), or pass --image DIR")
	}
	return ok("image", dir)
}

// Root checks that this process runs as root, as the provider must.
func Root() Check {
	if uid := os.Geteuid(); uid != 0 {
		return fail("root", fmt.Errorf("running as user %d", uid), "run 'zennet provide' as root (sudo): runsc and cgroups need it")
	}
	return ok("root", "running as root")
}

// Controllers are the cgroup v1 controllers sandboxes are limited and
// metered through.
var Controllers = []string{"cpu", "cpuacct", "cpuset", "memory", "pids"}

// Cgroups checks that every controller is mounted as cgroup v1 (under
// root, when not empty: a test's layout) and writable.
func Cgroups(root string) Check {
	dirs, v2, err := cgroupv1.Mounts(root, Controllers...)
	if err != nil {
		return fail("cgroups", err, "mount /proc")
	}
	var missing, readonly []string
	for _, c := range Controllers {
		d := dirs[c]
		switch {
		case d == "":
			missing = append(missing, c)
		case unix.Access(d, unix.W_OK) != nil:
			readonly = append(readonly, d)
		}
	}
	switch {
	case len(missing) > 0:
		why := "not mounted"
		if v2 {
			why += " (this machine has cgroup v2, which zennet does not support)"
		}
		return fail("cgroups", fmt.Errorf("cgroup v1 controllers %s %s", strings.Join(missing, ", "), why),
			"boot with systemd.unified_cgroup_hierarchy=0 (cgroup v1), or mount them: mount -t cgroup -o CONTROLLER cgroup /sys/fs/cgroup/CONTROLLER")
	case len(readonly) > 0:
		return fail("cgroups", fmt.Errorf("%s not writable by this user", strings.Join(readonly, ", ")), "run as root, with /sys/fs/cgroup mounted read-write")
	}
	return ok("cgroups", "cgroup v1 "+strings.Join(Controllers, ", "))
}

// Netns creates a network namespace, as every sandbox's network does, on
// a thread that is then discarded, and checks /dev/net/tun, where each
// sandbox's tap comes from.
func Netns() Check {
	errc := make(chan error, 1)
	var unshare func()
	unshare = func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread is never discarded: keep it busy so
			// that the namespace goes to another thread.
			done := make(chan struct{})
			go func() { unshare(); close(done) }()
			<-done
			runtime.UnlockOSThread()
			return
		}
		// Never unlocked: the runtime ends the thread, and the
		// namespace with it.
		errc <- unix.Unshare(unix.CLONE_NEWNET)
	}
	go unshare()
	if err := <-errc; err != nil {
		return fail("netns", fmt.Errorf("cannot create a network namespace: %w", err), "run as root (CAP_SYS_ADMIN); in a container, allow unshare(CLONE_NEWNET)")
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		fix := "load the tun module (modprobe tun)"
		if errors.Is(err, os.ErrPermission) {
			fix = "run as root"
		}
		return fail("netns", fmt.Errorf("open /dev/net/tun: %w", err), fix)
	}
	f.Close()
	return ok("netns", "network namespaces and /dev/net/tun")
}

// Failed reports whether any check failed.
func Failed(cs []Check) bool {
	for _, c := range cs {
		if !c.OK && !c.Skipped {
			return true
		}
	}
	return false
}
