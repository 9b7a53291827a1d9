package sandbox

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// cpuPlacer gives each sandbox with a CPU quota a cpuset of as many of the
// provider's CPUs as the quota rounds up to, so that inside it nproc,
// /proc/cpuinfo and sched_getaffinity say what it was given (runsc sizes
// the sandbox's CPUs by its cgroup's cpuset; by the quota alone it would
// never go below 2) and make -j$(nproc), OpenMP or a thread pool do not
// oversubscribe the quota. It takes the CPUs with the least quota placed
// on them, so sandboxes spread over the machine.
type cpuPlacer struct {
	mu     sync.Mutex
	cpus   []int           // the CPUs sandboxes may have
	load   map[int]float64 // the quota placed on each
	placed map[string]placement
}

type placement struct {
	cpus  []int
	share float64 // the quota on each of cpus
}

// newCPUPlacer places on cpus (nil: the CPUs this process may run on).
func newCPUPlacer(cpus []int) *cpuPlacer {
	if cpus == nil {
		cpus = allowedCPUs()
	}
	return &cpuPlacer{cpus: cpus, load: map[int]float64{}, placed: map[string]placement{}}
}

// allowedCPUs returns the CPUs this process may run on.
func allowedCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for i := range len(set) * 64 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// place gives sandbox id ceil(quota) CPUs (all of them when it asks for
// more, none when quota is 0 or nothing is known of the machine's CPUs)
// and returns them as a cpuset list ("0,3").
func (p *cpuPlacer) place(id string, quota float64) string {
	if p == nil || quota <= 0 || len(p.cpus) == 0 {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(id)
	n := min(len(p.cpus), max(1, int(math.Ceil(quota-1e-9))))
	order := slices.Clone(p.cpus)
	slices.SortStableFunc(order, func(a, b int) int {
		switch la, lb := p.load[a], p.load[b]; {
		case la < lb:
			return -1
		case la > lb:
			return 1
		}
		return 0
	})
	chosen := order[:n]
	slices.Sort(chosen)
	share := quota / float64(n)
	for _, c := range chosen {
		p.load[c] += share
	}
	p.placed[id] = placement{cpus: chosen, share: share}
	return formatCPUs(chosen)
}

// release gives sandbox id's CPUs back.
func (p *cpuPlacer) release(id string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(id)
}

func (p *cpuPlacer) releaseLocked(id string) {
	pl, ok := p.placed[id]
	if !ok {
		return
	}
	for _, c := range pl.cpus {
		p.load[c] -= pl.share
		if p.load[c] < 1e-9 {
			delete(p.load, c)
		}
	}
	delete(p.placed, id)
}

func formatCPUs(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// fillCpusetParents makes the cpuset cgroups from mount down to parent and
// gives each one with no CPUs or memory nodes yet its parent's: cgroup v1
// makes a cpuset cgroup empty, and a sandbox's cgroup under an empty one
// cannot be given CPUs.
func fillCpusetParents(mount, parent string) error {
	dir := mount
	for _, part := range strings.Split(strings.Trim(parent, "/"), "/") {
		if part == "" {
			continue
		}
		up := dir
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return err
			}
			if len(bytes.TrimSpace(cur)) > 0 {
				continue
			}
			v, err := os.ReadFile(filepath.Join(up, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0); err != nil {
				return err
			}
		}
	}
	return nil
}
