package meter

import (
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrRejected is wrapped by every reason Check gives for refusing a report.
var ErrRejected = errors.New("usage report rejected")

// Tolerances of Check. A provider can never legitimately exceed these; the
// renter can verify each of them from what it knows.
const (
	// CPUPeriodSlack is added to an interval before it is multiplied by
	// the CPU quota: the CFS quota is granted per 100 ms period, and the
	// periods that straddle the two ends of an interval may each have been
	// used in full inside it.
	CPUPeriodSlack = 200 * time.Millisecond
	// CPUAccountingSlack covers the scheduler's accounting lag (the CPU
	// time counters advance at ticks and context switches, a few ms) and
	// the tick sampling of the user/system split.
	CPUAccountingSlack = 20 * time.Millisecond
	// CPUSplitTolerance is the relative tolerance of cpu_user_ns +
	// cpu_system_ns over the same bound: the kernel charges the split a
	// whole tick at a time to whatever runs at the tick, which can read
	// above the exact runtime. At 5% an honest report was rejected in CI:
	// two busy loops under a 0.5-CPU quota read 2.328 s of user and system
	// time over 4.175 s, where the exact counter stayed within the bound.
	CPUSplitTolerance = 0.10
	// CPUSplitSlack is added, per CPU of the quota (at least one), to the
	// bound of cpu_user_ns + cpu_system_ns over one interval: the split is
	// the scheduler's tick-sampled cputime (cpuacct.usage_all reads it),
	// which over a short interval runs ahead of the exact counter by more
	// than a relative tolerance covers. Seen in make test on a loaded
	// machine: 716 ms of user and system time in a 1 s interval under a
	// 0.5-CPU quota, where the exact counter stayed within its 620 ms
	// bound. Since the start, the relative tolerance alone applies.
	CPUSplitSlack = 150 * time.Millisecond
	// ProcCPUStartSlack is what ProcCPU may read above the split's bound
	// on top: it counts what the sandbox's processes did before they
	// joined the cgroup (runsc's start-up), once per lease.
	ProcCPUStartSlack = time.Second
	// MemorySlackBytes covers the kernel's per-CPU batching of memory.stat
	// (64 pages per CPU) above the cgroup's hard limit.
	MemorySlackBytes = 4 << 20
	// ClockSkew is how far a report's time may be ahead of the renter's
	// clock.
	ClockSkew = 5 * time.Second
)

// Terms are what the renter knows of a lease without trusting reports.
type Terms struct {
	Lease string
	// Key is the provider's SSH host key, as pinned by the renter.
	Key ssh.PublicKey
	// Start is the lease's start as the provider announced it; zero
	// accepts the first report's.
	Start time.Time
	// CPUs is the lease's CPU quota in cores; 0 means no quota, and CPU
	// is not bounded.
	CPUs float64
	// MemoryBytes is the host memory limit of the sandbox, the guest's
	// memory plus the sandbox's overhead (sandbox.MemoryOverhead); 0 means
	// memory is not bounded.
	MemoryBytes int64
	// Now is the renter's clock at the check; zero skips the check that
	// reports are not from the future.
	Now time.Time
}

// Check is the renter's test of report cur, given the previous accepted
// report of the lease (nil for the first). It returns nil, or an error
// wrapping ErrRejected that says why, when:
//   - the signature does not verify with the provider's key;
//   - the lease, or the start, differs from the terms or the previous report;
//   - the sequence number does not increase, or time does not move forward,
//     or cur is from the future;
//   - any counter is below its previous value;
//   - the CPU used since the previous report, or since the start, exceeds the
//     quota over that time (CPUs × (interval + CPUPeriodSlack) +
//     CPUAccountingSlack), or user + system CPU exceeds that by more than
//     CPUSplitTolerance;
//   - the peak memory exceeds the limit (+ MemorySlackBytes), or the memory
//     integral grew faster than the limit allows.
func Check(t Terms, prev *Report, cur Report) error {
	reject := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrRejected, fmt.Sprintf(format, args...))
	}
	if t.Key == nil {
		return reject("no provider key to verify with")
	}
	if err := cur.Verify(t.Key); err != nil {
		return reject("%v", err)
	}
	if cur.Lease != t.Lease {
		return reject("report is for lease %q, not %q", cur.Lease, t.Lease)
	}
	if !t.Start.IsZero() && !cur.Start.Equal(t.Start) {
		return reject("start %s is not the lease's start %s", stamp(cur.Start), stamp(t.Start))
	}
	if cur.Time.Before(cur.Start) {
		return reject("time %s is before the start %s", stamp(cur.Time), stamp(cur.Start))
	}
	if !t.Now.IsZero() && cur.Time.After(t.Now.Add(ClockSkew)) {
		return reject("time %s is ahead of the renter's clock %s by more than %s", stamp(cur.Time), stamp(t.Now), ClockSkew)
	}
	if prev != nil {
		if !cur.Start.Equal(prev.Start) {
			return reject("start changed from %s to %s", stamp(prev.Start), stamp(cur.Start))
		}
		if cur.Seq <= prev.Seq {
			return reject("sequence number %d does not follow %d", cur.Seq, prev.Seq)
		}
		if !cur.Time.After(prev.Time) {
			return reject("time %s does not move forward from %s", stamp(cur.Time), stamp(prev.Time))
		}
		for c := Counter(0); c < NumCounters; c++ {
			if cur.Counters[c] < prev.Counters[c] {
				return reject("counter %s went backwards from %d to %d", c.Name(), prev.Counters[c], cur.Counters[c])
			}
		}
	}

	if t.CPUs > 0 {
		var base Vector
		from := cur.Start
		if prev != nil {
			base, from = prev.Counters, prev.Time
		}
		check := func(since string, d Vector, elapsed time.Duration, splitSlack float64) error {
			allowed := t.CPUs*float64(elapsed+CPUPeriodSlack) + float64(CPUAccountingSlack)
			if float64(d[CPU]) > allowed {
				return reject("%s of CPU %s exceeds %g CPUs × %s (+ tolerance)",
					time.Duration(d[CPU]), since, t.CPUs, elapsed.Round(time.Millisecond))
			}
			if split := d[CPUUser] + d[CPUSystem]; float64(split) > allowed*(1+CPUSplitTolerance)+splitSlack {
				return reject("%s of user and system CPU %s exceeds %g CPUs × %s (+ tolerance)",
					time.Duration(split), since, t.CPUs, elapsed.Round(time.Millisecond))
			}
			// The processes' CPU time, sampled in ticks as the split is:
			// the same bound. The negotiated tariff prices cpu_ns alone
			// (pricing.TariffCounter); flat rates or a model of `zennet
			// price` may price this too (issue 19: reported ten times over,
			// it once tripled a bill).
			if p := d[ProcCPU]; float64(p) > allowed*(1+CPUSplitTolerance)+splitSlack+float64(ProcCPUStartSlack) {
				return reject("%s of the processes' CPU %s exceeds %g CPUs × %s (+ tolerance)",
					time.Duration(p), since, t.CPUs, elapsed.Round(time.Millisecond))
			}
			return nil
		}
		splitSlack := math.Max(1, math.Ceil(t.CPUs)) * float64(CPUSplitSlack)
		if err := check("since the last report", cur.Counters.Sub(base), cur.Time.Sub(from), splitSlack); err != nil {
			return err
		}
		if prev != nil {
			if err := check("since the start", cur.Counters, cur.Time.Sub(cur.Start), 0); err != nil {
				return err
			}
		}
	}

	if t.MemoryBytes > 0 {
		limit := uint64(t.MemoryBytes) + MemorySlackBytes
		if cur.Counters[MemoryPeak] > limit {
			return reject("peak memory %d bytes exceeds the limit of %d bytes", cur.Counters[MemoryPeak], t.MemoryBytes)
		}
		var prevTime uint64
		from := cur.Start
		if prev != nil {
			prevTime, from = prev.Counters[MemoryTime], prev.Time
		}
		ms := float64(cur.Time.Sub(from)) / float64(time.Millisecond)
		allowed := float64(limit) / (1 << 20) * ms
		if grew := cur.Counters[MemoryTime] - prevTime; float64(grew) > allowed+1 {
			return reject("memory integral grew by %d MiB·ms in %s, more than the limit of %d bytes allows",
				grew, cur.Time.Sub(from).Round(time.Millisecond), t.MemoryBytes)
		}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
