package meter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// The benchmarks sample the shared sandbox, idle and busy, with 1 and 100
// samplers (100 sandboxes' worth), three ways:
//
//   - sampler: Sampler.Sample;
//   - readfile: the baseline, os.ReadFile of every file the sampler reads
//     (cpuacct.usage, cpuacct.usage_all, memory.stat, pids.current, tasks;
//     stat and io of each process; schedstat and status of each thread);
//   - procfs: the cgroup files with os.ReadFile and the /proc files with
//     github.com/prometheus/procfs (Stat, IO, NewStatus).
//
// The ns/sandbox metric is ns/op divided by the number of sandboxes;
// cpu-ns/sandbox is the same in CPU time of the benchmark process, which a
// busy sandbox competing for the same cores does not inflate.

func BenchmarkSample(b *testing.B) {
	rt, id := sharedSandbox(b)
	cg := rt.CgroupPath(id)
	for _, load := range []string{"idle", "busy"} {
		b.Run(load, func(b *testing.B) {
			if load == "busy" {
				stop := busySandbox(b)
				defer stop()
			}
			for _, n := range []int{1, 100} {
				b.Run(fmt.Sprintf("sampler/%d", n), func(b *testing.B) {
					ss := make([]*Sampler, n)
					for i := range ss {
						s, err := New(Config{Cgroup: cg})
						if err != nil {
							b.Fatal(err)
						}
						defer s.Close()
						if _, err := s.Sample(); err != nil {
							b.Fatal(err)
						}
						ss[i] = s
					}
					cpu0 := cpuTime()
					for b.Loop() {
						for _, s := range ss {
							if _, err := s.Sample(); err != nil {
								b.Fatal(err)
							}
						}
					}
					perSandbox(b, n, cpu0)
				})
				b.Run(fmt.Sprintf("readfile/%d", n), func(b *testing.B) {
					files := rawFiles(b, cg)
					cpu0 := cpuTime()
					for b.Loop() {
						for range n {
							for _, f := range files {
								os.ReadFile(f) // threads and processes may come and go
							}
						}
					}
					perSandbox(b, n, cpu0)
					b.ReportMetric(float64(len(files)), "files")
				})
				b.Run(fmt.Sprintf("procfs/%d", n), func(b *testing.B) {
					fs, err := procfs.NewDefaultFS()
					if err != nil {
						b.Fatal(err)
					}
					cgFiles, pids, tids := cgroupMembers(b, cg)
					cpu0 := cpuTime()
					for b.Loop() {
						for range n {
							for _, f := range cgFiles {
								os.ReadFile(f)
							}
							for _, pid := range pids {
								if p, err := fs.Proc(pid); err == nil {
									p.Stat()
									p.IO()
								}
							}
							for _, tid := range tids {
								if p, err := fs.Proc(tid); err == nil {
									p.NewStatus()
									p.Schedstat()
								}
							}
						}
					}
					perSandbox(b, n, cpu0)
				})
			}
		})
	}
}

// cgroupMembers returns the cgroup files the sampler reads, and the
// processes and threads in the cgroup now.
func perSandbox(b *testing.B, n int, cpu0 time.Duration) {
	ops := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/ops, "ns/sandbox")
	b.ReportMetric(float64(cpuTime()-cpu0)/ops, "cpu-ns/sandbox")
}

func cgroupMembers(tb testing.TB, cg string) (files []string, pids, tids []int) {
	tb.Helper()
	dirs, err := controllerDirs("")
	if err != nil {
		tb.Fatal(err)
	}
	cpu := filepath.Join(dirs["cpuacct"], cg)
	files = []string{
		filepath.Join(cpu, "cpuacct.usage"), filepath.Join(cpu, "cpuacct.usage_all"),
		filepath.Join(dirs["memory"], cg, "memory.stat"), filepath.Join(dirs["pids"], cg, "pids.current"),
		filepath.Join(cpu, "tasks"),
	}
	ids := func(name string) []int {
		b, err := os.ReadFile(filepath.Join(cpu, name))
		if err != nil {
			tb.Fatal(err)
		}
		var out []int
		for _, f := range strings.Fields(string(b)) {
			id, _ := strconv.Atoi(f)
			out = append(out, id)
		}
		return out
	}
	return files, ids("cgroup.procs"), ids("tasks")
}

func rawFiles(tb testing.TB, cg string) []string {
	files, pids, tids := cgroupMembers(tb, cg)
	for _, pid := range pids {
		files = append(files, fmt.Sprintf("/proc/%d/stat", pid), fmt.Sprintf("/proc/%d/io", pid))
	}
	for _, tid := range tids {
		files = append(files, fmt.Sprintf("/proc/%d/schedstat", tid), fmt.Sprintf("/proc/%d/status", tid))
	}
	return files
}

// busySandbox keeps the shared sandbox busy until stop: one process
// spinning in user space, one copying through read and write calls.
func busySandbox(tb testing.TB) (stop func()) {
	rt, id := sharedSandbox(tb)
	ctx, cancel := context.WithCancel(context.Background())
	var cmds []interface{ Wait() error }
	for _, sh := range []string{"while :; do :; done", "dd if=/dev/zero of=/dev/null bs=4k"} {
		cmd := rt.Command(ctx, id, "sh", "-c", sh)
		if err := cmd.Start(); err != nil {
			cancel()
			tb.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	time.Sleep(300 * time.Millisecond)
	return func() {
		cancel()
		for _, c := range cmds {
			c.Wait()
		}
		// runsc exec's death does not end the process inside.
		inSandbox(tb, "sh", "-c", "pkill -f 'whil[e] :'; pkill -x dd; true")
	}
}
