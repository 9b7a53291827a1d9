// Package meter measures what a sandbox uses and reports it in a form both
// parties can check.
//
// A Sampler reads one sandbox's cumulative counters (its Vector) from the
// host: the sandbox's cgroup v1 files (cpuacct, memory, pids) and the
// /proc files of the host processes in that cgroup (the runsc gofer, the
// Sentry and its systrap stub processes). It never reads the guest's own
// /proc or getrusage, whose accounting gVisor produces itself. Every counter
// is cumulative since the cgroup was created and never goes backwards, even
// when processes exit or the cgroup vanishes.
//
// A Report carries a Vector with the lease id, a sequence number and a
// time, signed with the provider's SSH host key; Check is the renter's pure
// test of a report against the previous one and the lease's terms.
//
// docs/metering.md defines every counter, its unit and its source.
package meter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Counter names one entry of a Vector.
type Counter int

// The counters. Their names and units are part of the report format: append
// new ones at the end and bump ReportVersion.
const (
	// CPU is the sandbox's CPU time in ns, all processes and threads:
	// cgroup cpuacct.usage, the scheduler's exact runtime. It is what the
	// CPU quota limits and what CPU is billed from.
	CPU Counter = iota
	// CPUUser and CPUSystem split CPU into user and system time in ns:
	// cgroup cpuacct.usage_all, which the kernel samples at each scheduler
	// tick, so their sum follows CPU to within a few ticks.
	CPUUser
	CPUSystem
	// ProcCPU is the cross-check of CPU in ns: utime+stime+cutime+cstime of
	// /proc/PID/stat summed over the cgroup's processes (10 ms ticks). It
	// also counts what those processes did before they joined the cgroup
	// (runsc's start-up), so it reads a little above CPU.
	ProcCPU
	// CtxSwitchesVoluntary and CtxSwitchesInvoluntary count context
	// switches: voluntary_ctxt_switches and nonvoluntary_ctxt_switches of
	// /proc/PID/task/TID/status summed over the cgroup's threads.
	CtxSwitchesVoluntary
	CtxSwitchesInvoluntary
	// PageFaultsMinor and PageFaultsMajor count page faults: minflt+cminflt
	// and majflt+cmajflt of /proc/PID/stat summed over the processes.
	PageFaultsMinor
	PageFaultsMajor
	// ReadBytes and WriteBytes are bytes passed to read and write system
	// calls on the host (rchar, wchar of /proc/PID/io), page cache hits
	// included; ReadSyscalls and WriteSyscalls count those calls (syscr,
	// syscw).
	ReadBytes
	WriteBytes
	ReadSyscalls
	WriteSyscalls
	// DiskReadBytes and DiskWriteBytes are the part of that I/O that reached
	// the block layer (read_bytes, write_bytes of /proc/PID/io).
	DiskReadBytes
	DiskWriteBytes
	// MemoryTime is memory in use integrated over time in MiB·ms (MiB·s ×
	// 1000): the cgroup's memory.stat total_rss + total_shmem (the guest's
	// memory is the Sentry's shared memory file), integrated between samples
	// by the trapezoid rule.
	MemoryTime
	// MemoryPeak is the largest total_rss + total_shmem seen by a sample, in
	// bytes.
	MemoryPeak
	// NetInBytes and NetOutBytes are the sandbox's network bytes received
	// and sent, from Config.Net; zero when the sandbox has no network.
	NetInBytes
	NetOutBytes

	// NumCounters is the length of a Vector.
	NumCounters
)

var counterInfo = [NumCounters]struct{ name, unit string }{
	CPU:                    {"cpu_ns", "ns"},
	CPUUser:                {"cpu_user_ns", "ns"},
	CPUSystem:              {"cpu_system_ns", "ns"},
	ProcCPU:                {"proc_cpu_ns", "ns"},
	CtxSwitchesVoluntary:   {"ctx_switches_voluntary", "switches"},
	CtxSwitchesInvoluntary: {"ctx_switches_involuntary", "switches"},
	PageFaultsMinor:        {"page_faults_minor", "faults"},
	PageFaultsMajor:        {"page_faults_major", "faults"},
	ReadBytes:              {"io_read_bytes", "bytes"},
	WriteBytes:             {"io_write_bytes", "bytes"},
	ReadSyscalls:           {"io_read_syscalls", "calls"},
	WriteSyscalls:          {"io_write_syscalls", "calls"},
	DiskReadBytes:          {"disk_read_bytes", "bytes"},
	DiskWriteBytes:         {"disk_write_bytes", "bytes"},
	MemoryTime:             {"memory_mib_ms", "MiB·ms"},
	MemoryPeak:             {"memory_peak_bytes", "bytes"},
	NetInBytes:             {"net_in_bytes", "bytes"},
	NetOutBytes:            {"net_out_bytes", "bytes"},
}

var counterByName = func() map[string]Counter {
	m := make(map[string]Counter, NumCounters)
	for c := Counter(0); c < NumCounters; c++ {
		m[c.Name()] = c
	}
	return m
}()

// Name is the counter's name in reports, e.g. "cpu_ns".
func (c Counter) Name() string {
	if c < 0 || c >= NumCounters {
		return "counter(" + strconv.Itoa(int(c)) + ")"
	}
	return counterInfo[c].name
}

// Unit is the counter's unit, e.g. "ns" or "bytes".
func (c Counter) Unit() string {
	if c < 0 || c >= NumCounters {
		return ""
	}
	return counterInfo[c].unit
}

func (c Counter) String() string { return c.Name() }

// CounterByName returns the counter called name.
func CounterByName(name string) (Counter, bool) {
	c, ok := counterByName[name]
	return c, ok
}

// Vector holds one value per counter, indexed by Counter. In JSON it is an
// object keyed by counter name, every counter present.
type Vector [NumCounters]uint64

// Sub returns v - prev counter by counter, for the usage of an interval.
// A counter of prev above v's gives 0.
func (v Vector) Sub(prev Vector) Vector {
	var d Vector
	for i := range v {
		if v[i] > prev[i] {
			d[i] = v[i] - prev[i]
		}
	}
	return d
}

// MarshalJSON writes v as an object in counter order.
func (v Vector) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(Counter(i).Name())
		b.WriteString(`":`)
		b.WriteString(strconv.FormatUint(x, 10))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object that names every counter exactly once and
// nothing else.
func (v *Vector) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("counters: null")
	}
	var out Vector
	for name, raw := range m {
		c, ok := CounterByName(name)
		if !ok {
			return fmt.Errorf("counters: unknown counter %q", name)
		}
		x, err := strconv.ParseUint(string(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("counters: %s: not an unsigned integer: %.32s", name, raw)
		}
		out[c] = x
	}
	if len(m) != int(NumCounters) {
		for c := Counter(0); c < NumCounters; c++ {
			if _, ok := m[c.Name()]; !ok {
				return fmt.Errorf("counters: %s missing", c.Name())
			}
		}
	}
	*v = out
	return nil
}
