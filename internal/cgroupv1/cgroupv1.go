// Package cgroupv1 finds where the kernel's cgroup v1 controllers are
// mounted, from /proc/self/mountinfo: the one lookup the meter, the idle
// keeper and the sandbox runtime share. cgroup v2 is not supported.
package cgroupv1

import (
	"fmt"
	"path/filepath"

	"github.com/prometheus/procfs"
)

// Mounts returns the mount point of each of controllers that is mounted
// as a cgroup v1 hierarchy (a controller missing from the result is not
// mounted), and whether a cgroup v2 hierarchy is mounted. When root is not
// empty it holds one directory per controller (a test's or a container's
// layout) and /proc is not read.
func Mounts(root string, controllers ...string) (dirs map[string]string, v2 bool, err error) {
	dirs = map[string]string{}
	if root != "" {
		for _, c := range controllers {
			dirs[c] = filepath.Join(root, c)
		}
		return dirs, false, nil
	}
	mounts, err := procfs.GetMounts()
	if err != nil {
		return nil, false, fmt.Errorf("find cgroup mounts: %w", err)
	}
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup":
			for _, c := range controllers {
				if _, ok := m.SuperOptions[c]; ok && dirs[c] == "" {
					dirs[c] = m.MountPoint
				}
			}
		case "cgroup2":
			v2 = true
		}
	}
	return dirs, v2, nil
}

// Mount returns where controller is mounted (see Mounts), or an error
// when it is not.
func Mount(root, controller string) (string, error) {
	dirs, _, err := Mounts(root, controller)
	if err != nil {
		return "", err
	}
	if dirs[controller] == "" {
		return "", fmt.Errorf("no cgroup v1 %s controller (cgroup v2 is not supported)", controller)
	}
	return dirs[controller], nil
}

// All returns the mount point of every cgroup v1 hierarchy (each
// controller's, and named ones such as systemd's).
func All() ([]string, error) {
	mounts, err := procfs.GetMounts()
	if err != nil {
		return nil, fmt.Errorf("find cgroup mounts: %w", err)
	}
	var out []string
	for _, m := range mounts {
		if m.FSType == "cgroup" {
			out = append(out, m.MountPoint)
		}
	}
	return out, nil
}
