package sshgate_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/benchenv"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
	"github.com/zennet/zennet/sshgate"
)

// BenchmarkLeaseStart times N leases through a real provider (SSH
// negotiation, sandbox with its network, agent, meter) against N bare runsc
// sandboxes started in the same run with the same concurrency, and reports
// the ratio; then the idle memory per lease: the PSS of its sandbox's
// processes, and the provider's heap per lease (its network and meter).
// Run with -benchtime=1x: each iteration is a whole cold start.
func BenchmarkLeaseStart(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				bare, barePSS := bareStart(b, n)
				through, pss, heap := providerStart(b, n)
				b.ReportMetric(bare.Seconds(), "bare-s")
				b.ReportMetric(barePSS/(1<<20), "bare-idle-PSS-MiB")
				b.ReportMetric(through.Seconds(), "provider-s")
				b.ReportMetric(through.Seconds()/bare.Seconds(), "ratio")
				b.ReportMetric(pss/(1<<20), "idle-PSS-MiB/lease")
				b.ReportMetric(heap/(1<<10), "provider-heap-KiB/lease")
			}
		})
	}
}

// bareStart starts n bare sandboxes (benchenv.StartBare), measures their
// idle PSS, and destroys them.
func bareStart(b *testing.B, n int) (time.Duration, float64) {
	bare := benchenv.StartBare(b, n)
	defer bare.Stop()
	time.Sleep(2 * time.Second) // idle
	var pss float64
	for _, id := range bare.IDs {
		pss += cgroupPSS(b, bare.Runtime.CgroupDir("memory", id))
	}
	return bare.All, pss / float64(n)
}

// providerStart rents n hosts from a real provider and returns how long
// it took, and the idle PSS per lease and provider heap per lease.
func providerStart(b *testing.B, n int) (time.Duration, float64, float64) {
	addr, rt := startProviderCap(b, n)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := sshgate.Dial(context.Background(), addr, sshgate.ClientConfig{Signer: newSigner(b), HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	go func() { // reports must be drained
		for range c.Events() {
		}
	}()
	start := time.Now()
	_, leases, err := c.Rent(context.Background(), proto.Demand{Count: n, Limits: proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}}, payEmbedded)
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second) // idle
	var pss float64
	for _, le := range leases {
		pss += cgroupPSS(b, rt.CgroupDir("memory", le.ID))
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(n)
	return took, pss / float64(n), heap
}

// cgroupPSS sums the proportional set size of the processes in a cgroup.
func cgroupPSS(b *testing.B, dir string) float64 {
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, pid := range bytes.Fields(procs) {
		f, err := os.Open(filepath.Join("/proc", string(pid), "smaps_rollup"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb float64
			if _, err := fmt.Sscanf(sc.Text(), "Pss: %f kB", &kb); err == nil {
				total += kb * 1024
			}
		}
		f.Close()
	}
	return total
}

var benchMu sync.Mutex

// startProviderCap is startProvider with room for n leases; it returns the
// provider's address and runtime.
func startProviderCap(b *testing.B, n int) (string, *sandbox.Runtime) {
	benchMu.Lock()
	defer benchMu.Unlock()
	addr, rt := startProviderWith(b, lease.Capacity{Leases: n, Memory: int64(n) << 30, CPUs: float64(n), Disk: int64(n) << 32})
	return addr, rt
}
