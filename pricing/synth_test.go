package pricing

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/zennet/zennet/meter"
)

// The synthetic ground truth. Hidden, uncorrelated resources drive the
// meter's counters through a known linear mix; the value of work is a known
// linear price of the resources. Fitting from benchmark steps and pricing
// held-out jobs must recover that value.

// Hidden resources, in natural units per second of a benchmark step (or
// in total for a job).
const (
	resCPU = iota // CPU compute, CPU-seconds
	resMem        // memory traffic, GiB
	resIO         // file I/O, MiB
	resSys        // system calls, thousands
	resNet        // network, MiB
	resRSS        // resident memory held, MiB·s
	numRes
)

var resNames = [numRes]string{"cpu", "mem", "io", "sys", "net", "rss"}

// truePrice is the value of one unit of each resource, in msat. Each is at
// least the CPU time the resource costs at 1000 msat per CPU-second, so that
// some non-negative rates price work exactly; a truth that needed negative
// rates could not be met by any non-negative model.
var truePrice = [numRes]float64{
	resCPU: 1000, // per CPU-second
	resMem: 400,  // per GiB moved
	resIO:  4,    // per MiB
	resSys: 30,   // per thousand syscalls
	resNet: 20,   // per MiB
	resRSS: 0.25, // per MiB·s (256 msat per GiB·s)
}

// mix returns the meter counters (as a rate or a total, like h) that
// resources h produce on a machine whose CPU-time costs are given by t:
// t[i] is CPU-seconds of user and system time per unit of resource i.
func mix(h [numRes]float64, t machine) map[string]float64 {
	user := h[resCPU]*t.cpu + h[resMem]*t.mem + 0.2*h[resIO]*t.io
	sys := 0.05*h[resCPU]*t.cpu + h[resSys]*t.sys + 0.8*h[resIO]*t.io + h[resNet]*t.net
	const mib = 1 << 20
	c := map[string]float64{
		meter.CPU.Name():                    1e9 * (user + sys),
		meter.CPUUser.Name():                1e9 * user,
		meter.CPUSystem.Name():              1e9 * sys,
		meter.ProcCPU.Name():                1.01e9 * (user + sys),
		meter.CtxSwitchesVoluntary.Name():   40*h[resIO] + 150*h[resSys] + 80*h[resNet],
		meter.CtxSwitchesInvoluntary.Name(): 25 * (user + sys),
		meter.PageFaultsMinor.Name():        3000*h[resMem] + 0.5*h[resRSS],
		meter.PageFaultsMajor.Name():        0.3 * h[resIO],
		meter.ReadBytes.Name():              0.6*mib*h[resIO] + 0.1*mib*h[resNet],
		meter.WriteBytes.Name():             0.4*mib*h[resIO] + 0.05*mib*h[resNet],
		meter.ReadSyscalls.Name():           0.6*mib/65536*h[resIO] + 400*h[resSys],
		meter.WriteSyscalls.Name():          0.4*mib/65536*h[resIO] + 100*h[resSys],
		meter.DiskReadBytes.Name():          0.1 * mib * h[resIO],
		meter.DiskWriteBytes.Name():         0.3 * mib * h[resIO],
		meter.MemoryTime.Name():             1000 * h[resRSS],
		meter.MemoryPeak.Name():             mib * 200,
		meter.NetInBytes.Name():             0.7 * mib * h[resNet],
		meter.NetOutBytes.Name():            0.3 * mib * h[resNet],
	}
	return c
}

// machine is the CPU-seconds a unit of each resource costs on a provider.
type machine struct{ cpu, mem, io, sys, net float64 }

// reference is the machine scores are relative to.
var reference = machine{cpu: 1, mem: 0.25, io: 0.002, sys: 0.004, net: 0.003}

// value is the true value of resources h.
func value(h [numRes]float64) float64 {
	var v float64
	for i, x := range h {
		v += truePrice[i] * x
	}
	return v
}

// noisy multiplies every counter by an independent factor 1 + N(0, sd).
func noisy(rng *rand.Rand, c map[string]float64, sd float64) map[string]float64 {
	out := make(map[string]float64, len(c))
	for _, k := range slices.Sorted(maps.Keys(c)) { // sorted: same seed, same noise
		out[k] = c[k] * math.Max(0, 1+sd*rng.NormFloat64())
	}
	return out
}

// synthCalibration is n benchmark steps whose resource rates are drawn
// independently (uncorrelated resources), the first numRes steps each
// loading mostly one resource, valued by truePrice (Row.Value).
func synthCalibration(rng *rand.Rand, n int, sd float64) Calibration {
	scale := [numRes]float64{resCPU: 0.9, resMem: 1.5, resIO: 80, resSys: 60, resNet: 40, resRSS: 2000}
	var c Calibration
	for k := range n {
		var h [numRes]float64
		for i := range h {
			switch {
			case k < numRes && i == k:
				h[i] = scale[i]
			case k < numRes:
				h[i] = 0.05 * scale[i] * rng.Float64()
			default:
				h[i] = scale[i] * rng.Float64()
			}
		}
		c.Rows = append(c.Rows, Row{
			Step:    fmt.Sprintf("step-%02d", k),
			Rates:   noisy(rng, mix(h, reference), sd),
			Seconds: 10,
			Value:   value(h),
		})
	}
	return c
}

// synthJob is a held-out job: a random sparse mix of resources over a
// random duration, unlike any step, with its counter delta and true value.
func synthJob(rng *rand.Rand, sd float64) (Usage, float64) {
	scale := [numRes]float64{resCPU: 0.9, resMem: 1.5, resIO: 80, resSys: 60, resNet: 40, resRSS: 2000}
	secs := 5 + 60*rng.Float64()
	var h [numRes]float64
	for i := range h {
		if rng.Float64() < 0.6 {
			h[i] = secs * scale[i] * rng.ExpFloat64() / 2
		}
	}
	// Whatever else a job does, it runs: some CPU, some memory held.
	h[resCPU] = math.Max(h[resCPU], 0.2*secs*scale[resCPU])
	h[resRSS] = math.Max(h[resRSS], 0.05*secs*scale[resRSS])
	return toUsage(noisy(rng, mix(h, reference), sd)), value(h)
}

func toUsage(c map[string]float64) Usage {
	u := Usage{}
	for k, x := range c {
		u[k] = uint64(math.Round(x))
	}
	return u
}

// The fairness world: providers that make the same work cost different
// CPU time. Work is measured in resource units (resCPU in reference
// CPU-seconds); a provider's machine says how many CPU-seconds a unit
// costs there, and stretch how much longer than its CPU time a
// single-threaded run takes on the wall clock (CPU contention). The fair
// value of work is PerScore × its CPU time on the reference machine, and
// a benchmark step's score is its speed relative to the reference, so
// that value per second = PerScore × score, as Prices.PerScore assumes.

type provider struct {
	name    string
	m       machine
	stretch float64
}

var providers = []provider{
	{"systrap", reference, 1},
	// ptrace: every system call and I/O costs the Sentry far more.
	{"ptrace", machine{cpu: 1, mem: 0.25, io: 0.004, sys: 0.016, net: 0.006}, 1},
	// A faster machine, memory a little less faster than compute.
	{"fast", machine{cpu: 0.6, mem: 0.16, io: 0.0012, sys: 0.0025, net: 0.002}, 1},
	// A CPU- and memory-hungry neighbour: caches thrashed, CPU shared.
	{"neighbour", machine{cpu: 1.25, mem: 0.33, io: 0.0025, sys: 0.005, net: 0.0035}, 1.4},
}

// cpuTime is the CPU-seconds work w costs on machine m.
func cpuTime(w [numRes]float64, m machine) float64 {
	return w[resCPU]*m.cpu + w[resMem]*m.mem + w[resIO]*m.io + w[resSys]*m.sys + w[resNet]*m.net
}

// run is work w on provider p holding rss MiB: counters, wall seconds.
func run(w [numRes]float64, rss float64, p provider) (map[string]float64, float64) {
	wall := cpuTime(w, p.m) * p.stretch
	w[resRSS] = rss * wall
	return mix(w, p.m), wall
}

// suite is the benchmark suite: work per iteration, and memory held.
var suite = []struct {
	name string
	w    [numRes]float64
	rss  float64
}{
	{"cpu-int", [numRes]float64{resCPU: 1}, 20},
	{"mem-stream", [numRes]float64{resCPU: 0.1, resMem: 3}, 600},
	{"syscall", [numRes]float64{resCPU: 0.05, resSys: 150}, 20},
	{"file-io", [numRes]float64{resCPU: 0.05, resIO: 300, resSys: 5}, 60},
	{"net", [numRes]float64{resCPU: 0.05, resNet: 200, resSys: 2}, 40},
	{"hold-memory", [numRes]float64{resCPU: 0.02}, 2000},
	{"mixed-a", [numRes]float64{resCPU: 0.5, resMem: 1, resIO: 50}, 300},
	{"mixed-b", [numRes]float64{resCPU: 0.3, resSys: 40, resNet: 40}, 100},
	{"mixed-c", [numRes]float64{resCPU: 0.4, resMem: 0.5, resSys: 20, resIO: 100}, 800},
	{"mixed-d", [numRes]float64{resCPU: 0.8, resMem: 2, resNet: 20}, 150},
}

// heldOutJobs are not in the suite.
var heldOutJobs = []struct {
	name string
	w    [numRes]float64
	rss  float64
}{
	{"compile", [numRes]float64{resCPU: 30, resMem: 8, resIO: 200, resSys: 300}, 400},
	{"compress", [numRes]float64{resCPU: 12, resMem: 20, resIO: 500, resSys: 20}, 100},
	{"sort", [numRes]float64{resCPU: 6, resMem: 30, resIO: 50, resSys: 5}, 1200},
	{"python-loop", [numRes]float64{resCPU: 20, resMem: 1, resSys: 2}, 30},
	{"grep-tree", [numRes]float64{resCPU: 2, resIO: 3000, resSys: 800}, 50},
	{"download", [numRes]float64{resCPU: 1, resNet: 1500, resIO: 1500, resSys: 100}, 80},
}

// synthFairness is the fairness experiment of the synthetic world.
func synthFairness(rng *rand.Rand, sd, perScore float64) FairnessInput {
	in := FairnessInput{Prices: Prices{PerScore: perScore}}
	// The reference machine's own run of the suite, as scores are
	// relative to it.
	ref := Calibration{Hash: "reference"}
	for _, st := range suite {
		ref.Rows = append(ref.Rows, Row{Step: st.name, Rates: map[string]float64{}, Score: 1 / cpuTime(st.w, reference)})
	}
	in.Reference = &ref
	for _, p := range providers {
		pr := ProviderRun{Name: p.name}
		var cal Calibration
		for _, st := range suite {
			c, wall := run(st.w, st.rss, p)
			rates := map[string]float64{}
			for k, x := range c {
				rates[k] = x / wall
			}
			// Score: iterations per second, the workload's own unit.
			score := 1 / wall
			cal.Rows = append(cal.Rows, Row{Step: st.name, Rates: noisy(rng, rates, sd), Seconds: 30, Score: score})
		}
		pr.Calibrations = []Calibration{cal}
		for _, j := range heldOutJobs {
			c, wall := run(j.w, j.rss, p)
			pr.Jobs = append(pr.Jobs, Job{Name: j.name, Seconds: wall, Usage: toUsage(noisy(rng, c, sd))})
		}
		in.Providers = append(in.Providers, pr)
	}
	return in
}
