package meter

import (
	"bytes"
	"errors"
	"fmt"
)

// The parsers below read the kernel's text formats from a buffer without
// allocating: a Sampler reads these files thousands of times a second on a
// busy provider. TestParsersAgreeWithProcfs holds them to
// github.com/prometheus/procfs on the same files.

// userHZ is the unit of the tick counts in /proc/PID/stat and
// cpuacct.stat (USER_HZ, 100 on every Linux architecture Go supports).
const userHZ = 100

// procStat is what the meter uses of /proc/PID/stat.
type procStat struct {
	state                            byte
	ppid                             int
	minflt, cminflt, majflt, cmajflt uint64
	utime, stime, cutime, cstime     uint64 // ticks
	threads                          int
	start                            uint64 // ticks after boot
}

var errShort = errors.New("short")

// parseStat parses /proc/PID/stat. The command name, field 2, may hold
// spaces and parentheses; it ends at the last ')'.
func parseStat(b []byte) (procStat, error) {
	var st procStat
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) || b[i+1] != ' ' {
		return procStat{}, errors.New("stat: no command name")
	}
	rest := b[i+2:]
	for n := 3; n <= 22; n++ {
		var f []byte
		f, rest = nextField(rest)
		if f == nil {
			return procStat{}, fmt.Errorf("stat: field %d: %w", n, errShort)
		}
		var err error
		switch n {
		case 3:
			st.state = f[0]
		case 4:
			var v uint64
			v, err = parseU(f)
			st.ppid = int(v)
		case 10:
			st.minflt, err = parseU(f)
		case 11:
			st.cminflt, err = parseU(f)
		case 12:
			st.majflt, err = parseU(f)
		case 13:
			st.cmajflt, err = parseU(f)
		case 14:
			st.utime, err = parseU(f)
		case 15:
			st.stime, err = parseU(f)
		case 16:
			st.cutime, err = parseNonNeg(f)
		case 17:
			st.cstime, err = parseNonNeg(f)
		case 20:
			var v uint64
			v, err = parseU(f)
			st.threads = int(v)
		case 22:
			st.start, err = parseU(f)
		}
		if err != nil {
			return procStat{}, fmt.Errorf("stat: field %d: %w", n, err)
		}
	}
	if st.ppid < 0 || st.threads < 0 { // overflowed int
		return procStat{}, errors.New("stat: out of range")
	}
	return st, nil
}

// nextField returns the next space-separated field of b and the rest, or
// nil at the end.
func nextField(b []byte) (field, rest []byte) {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n') {
		b = b[1:]
	}
	if len(b) == 0 {
		return nil, nil
	}
	i := 0
	for i < len(b) && b[i] != ' ' && b[i] != '\n' {
		i++
	}
	return b[:i], b[i:]
}

// parseU parses a decimal uint64.
func parseU(b []byte) (uint64, error) {
	v, ok := atou(b)
	if !ok {
		return 0, fmt.Errorf("bad number %q", b)
	}
	return v, nil
}

// atou parses a decimal uint64 without allocating.
func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseNonNeg parses a signed decimal that the kernel prints from a signed
// type but never makes negative; a negative value reads as 0.
func parseNonNeg(b []byte) (uint64, error) {
	if len(b) > 1 && b[0] == '-' {
		if _, err := parseU(b[1:]); err != nil {
			return 0, err
		}
		return 0, nil
	}
	return parseU(b)
}

// keyValues calls fn for each "key value" or "key: value" line of b whose
// value is a number; lines that are not are skipped.
func keyValues(b []byte, fn func(key []byte, v uint64)) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		i := bytes.IndexAny(line, ": \t")
		if i <= 0 {
			continue
		}
		key := line[:i]
		val := bytes.TrimLeft(line[i:], ": \t")
		if j := bytes.IndexAny(val, " \t"); j >= 0 { // "VmRSS:  123 kB"
			val = val[:j]
		}
		if v, ok := atou(val); ok {
			fn(key, v)
		}
	}
}

// taskStatus is what the meter uses of /proc/PID/task/TID/status.
type taskStatus struct {
	tgid       int
	vol, invol uint64
}

// parseStatus parses /proc/PID/status. Its context switch counts are the
// thread's own, not the process's. It looks for its three lines rather than
// splitting all sixty.
func parseStatus(b []byte) (taskStatus, error) {
	var st taskStatus
	var ok [3]bool
	var tgid uint64
	tgid, ok[0] = statusField(b, "\nTgid:")
	st.vol, ok[1] = statusField(b, "\nvoluntary_ctxt_switches:")
	st.invol, ok[2] = statusField(b, "\nnonvoluntary_ctxt_switches:")
	if ok != [3]bool{true, true, true} || tgid == 0 || tgid > 1<<31 {
		return taskStatus{}, errors.New("status: no Tgid or context switch counts")
	}
	st.tgid = int(tgid)
	return st, nil
}

// statusField finds "\nKey:" in b and parses the number after it.
func statusField(b []byte, key string) (uint64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	end := 0
	for end < len(b) && b[end] >= '0' && b[end] <= '9' {
		end++
	}
	if end < len(b) && b[end] != '\n' {
		return 0, false
	}
	return atou(b[:end])
}

// procIO is /proc/PID/io.
type procIO struct {
	rchar, wchar, syscr, syscw, readBytes, writeBytes uint64
}

// parseIO parses /proc/PID/io.
func parseIO(b []byte) (procIO, error) {
	var io procIO
	var seen int
	keyValues(b, func(k []byte, v uint64) {
		switch string(k) {
		case "rchar":
			io.rchar, seen = v, seen|1
		case "wchar":
			io.wchar, seen = v, seen|2
		case "syscr":
			io.syscr, seen = v, seen|4
		case "syscw":
			io.syscw, seen = v, seen|8
		case "read_bytes":
			io.readBytes, seen = v, seen|16
		case "write_bytes":
			io.writeBytes, seen = v, seen|32
		}
	})
	if seen != 63 {
		return procIO{}, errors.New("io: missing fields")
	}
	return io, nil
}

// schedstat is /proc/PID/task/TID/schedstat: the task's time on a CPU
// (ns), its time waiting for one (ns), and the number of times it was
// scheduled in. Without CONFIG_SCHEDSTATS all three read 0.
type schedstat struct {
	run, wait, count uint64
}

func parseSchedstat(b []byte) (schedstat, error) {
	var s schedstat
	var f []byte
	var err error
	for i, p := range []*uint64{&s.run, &s.wait, &s.count} {
		f, b = nextField(b)
		if f == nil {
			return schedstat{}, fmt.Errorf("schedstat: field %d: %w", i+1, errShort)
		}
		if *p, err = parseU(f); err != nil {
			return schedstat{}, fmt.Errorf("schedstat: %w", err)
		}
	}
	return s, nil
}

// memStat is what the meter uses of the cgroup's memory.stat.
type memStat struct {
	rss, shmem uint64
}

// inUse is the memory the meter bills: anonymous memory (the Sentry's and
// gofer's heaps) plus shared memory (the guest's memory file and tmpfs).
// Page cache is left out: the kernel reclaims it under pressure.
func (m memStat) inUse() uint64 { return m.rss + m.shmem }

// parseMemoryStat parses cgroup v1 memory.stat, preferring the hierarchical
// total_ lines (the same as the local ones for a leaf cgroup).
func parseMemoryStat(b []byte) (memStat, error) {
	var local, total memStat
	var seen int
	keyValues(b, func(k []byte, v uint64) {
		switch string(k) {
		case "rss":
			local.rss, seen = v, seen|1
		case "shmem":
			local.shmem, seen = v, seen|2
		case "total_rss":
			total.rss, seen = v, seen|4
		case "total_shmem":
			total.shmem, seen = v, seen|8
		}
	})
	switch {
	case seen&12 == 12:
		return total, nil
	case seen&3 == 3:
		return local, nil
	}
	return memStat{}, errors.New("memory.stat: no rss and shmem")
}

// parseUsageAll parses cpuacct.usage_all ("cpu user system" and one line
// per CPU, in ns) into user and system totals.
func parseUsageAll(b []byte) (user, system uint64, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 || string(bytes.TrimSpace(b[:i])) != "cpu user system" {
		return 0, 0, errors.New("cpuacct.usage_all: bad header")
	}
	b = b[i+1:]
	for len(b) > 0 {
		var f [3][]byte
		for j := range f {
			f[j], b = nextField(b)
		}
		if f[0] == nil {
			break
		}
		if f[2] == nil {
			return 0, 0, fmt.Errorf("cpuacct.usage_all: %w", errShort)
		}
		if _, err := parseU(f[0]); err != nil {
			return 0, 0, fmt.Errorf("cpuacct.usage_all: %w", err)
		}
		u, err := parseU(f[1])
		if err != nil {
			return 0, 0, fmt.Errorf("cpuacct.usage_all: %w", err)
		}
		s, err := parseU(f[2])
		if err != nil {
			return 0, 0, fmt.Errorf("cpuacct.usage_all: %w", err)
		}
		user += u
		system += s
	}
	return user, system, nil
}

// parseCPUAcctStat parses cpuacct.stat ("user N", "system N" in USER_HZ
// ticks) into ns: the fallback for kernels without cpuacct.usage_all.
func parseCPUAcctStat(b []byte) (user, system uint64, err error) {
	var seen int
	keyValues(b, func(k []byte, v uint64) {
		switch string(k) {
		case "user":
			user, seen = v*(1e9/userHZ), seen|1
		case "system":
			system, seen = v*(1e9/userHZ), seen|2
		}
	})
	if seen != 3 {
		return 0, 0, errors.New("cpuacct.stat: no user and system")
	}
	return user, system, nil
}

// parseSingle parses a file holding one number, like cpuacct.usage.
func parseSingle(b []byte) (uint64, error) {
	f, rest := nextField(b)
	if f == nil {
		return 0, errShort
	}
	if g, _ := nextField(rest); g != nil {
		return 0, errors.New("more than one number")
	}
	return parseU(f)
}

// parseIDs calls fn for each id of a cgroup tasks or cgroup.procs file.
func parseIDs(b []byte, fn func(id int)) error {
	for {
		var f []byte
		f, b = nextField(b)
		if f == nil {
			return nil
		}
		v, err := parseU(f)
		if err != nil || v == 0 || v > 1<<31 {
			return fmt.Errorf("bad id %q", f)
		}
		fn(int(v))
	}
}
