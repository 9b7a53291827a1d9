package meter

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/procfs"
)

// The files under testdata/meter were copied from a running runsc sandbox
// (its cgroup and the /proc files of its gofer, Sentry, a Sentry thread and
// a systrap stub) and from two host processes: one whose command name holds
// ") b (", and a zombie. See testdata/meter/README.md.
const testdata = "../testdata/meter"

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		in      string
		want    procStat
		wantErr bool
	}{
		{name: "sentry", file: "proc/29205/stat", want: procStat{state: 'S', ppid: 1, minflt: 41035, cminflt: 1065, majflt: 6,
			utime: 50, stime: 104, threads: 15, start: 95602}},
		{name: "gofer", file: "proc/29203/stat", want: procStat{state: 'S', ppid: 1, minflt: 1908, utime: 1, stime: 1, threads: 6, start: 95602}},
		{name: "systrap stub", file: "proc/29228/stat", want: procStat{state: 'S', ppid: 29205, minflt: 2, threads: 1, start: 95608}},
		{name: "command name with parentheses", file: "proc/3983/stat", want: procStat{state: 'S', ppid: 3940, minflt: 143, threads: 1, start: 130781}},
		{name: "zombie", file: "proc/3992/stat", want: procStat{state: 'Z', ppid: 3990, minflt: 99, threads: 1, start: 130802}},
		{name: "negative cutime reads 0", in: "1 (x) S 0 1 1 0 -1 0 5 6 7 8 9 10 -11 -12 20 0 1 0 99 0 0",
			want: procStat{state: 'S', minflt: 5, cminflt: 6, majflt: 7, cmajflt: 8, utime: 9, stime: 10, threads: 1, start: 99}},
		{name: "empty", in: "", wantErr: true},
		{name: "no command name", in: "1 x S 0 1 1 0 -1 0 5 6 7 8 9 10 11 12 20 0 1 0 99", wantErr: true},
		{name: "truncated", in: "1 (x) S 0 1 1 0 -1 0 5 6 7 8 9", wantErr: true},
		{name: "nothing after name", in: "1 (x)", wantErr: true},
		{name: "not a number", in: "1 (x) S 0 1 1 0 -1 0 5 6 seven 8 9 10 11 12 20 0 1 0 99", wantErr: true},
		{name: "overflow", in: "1 (x) S 0 1 1 0 -1 0 99999999999999999999999 6 7 8 9 10 11 12 20 0 1 0 99", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			got, err := parseStat(in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		in      string
		want    taskStatus
		wantErr bool
	}{
		{name: "sentry leader", file: "proc/29205/status", want: taskStatus{tgid: 29205, vol: 83, invol: 8}},
		{name: "sentry thread", file: "proc/29205/task/29209/status", want: taskStatus{tgid: 29205, vol: 1599, invol: 1195}},
		{name: "stub", file: "proc/29228/status", want: taskStatus{tgid: 29228, vol: 69}},
		{name: "zombie", file: "proc/3992/status", want: taskStatus{tgid: 3992, vol: 2, invol: 1}},
		{name: "no switches", in: "Name:\tx\nTgid:\t5\n", wantErr: true},
		{name: "no tgid", in: "voluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t2\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			got, err := parseStatus(in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseIO(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		in      string
		want    procIO
		wantErr bool
	}{
		{name: "sentry", file: "proc/29205/io", want: procIO{rchar: 158273653, wchar: 262146945, syscr: 3586, syscw: 543,
			readBytes: 372736, writeBytes: 262148096}},
		{name: "gofer", file: "proc/29203/io", want: procIO{rchar: 9011, wchar: 714, syscr: 49, syscw: 3, readBytes: 4096, writeBytes: 24576}},
		{name: "idle stub", file: "proc/29228/io", want: procIO{}},
		{name: "missing write_bytes", in: "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			got, err := parseIO(in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		in      string
		want    schedstat
		wantErr bool
	}{
		{name: "sentry leader", file: "proc/29205/schedstat", want: schedstat{13546166, 5438040, 91}},
		{name: "sentry thread", file: "proc/29205/task/29209/schedstat", want: schedstat{284542781, 77722754, 2794}},
		{name: "no schedstats", in: "0 0 0\n", want: schedstat{}},
		{name: "two fields", in: "1 2\n", wantErr: true},
		{name: "not a number", in: "1 x 3\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			got, err := parseSchedstat(in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseMemoryStat(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		in      string
		want    memStat
		wantErr bool
	}{
		{name: "sandbox", file: "cgroup/memory.stat", want: memStat{rss: 15368192, shmem: 106418176}},
		{name: "prefers total", in: "rss 1\nshmem 2\ntotal_rss 10\ntotal_shmem 20\n", want: memStat{rss: 10, shmem: 20}},
		{name: "local only", in: "cache 0\nrss 1\nshmem 2\n", want: memStat{rss: 1, shmem: 2}},
		{name: "no shmem", in: "rss 1\ntotal_rss 1\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			got, err := parseMemoryStat(in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCPUSplit(t *testing.T) {
	tests := []struct {
		name             string
		file             string
		in               string
		parse            func([]byte) (uint64, uint64, error)
		wantUser, wantSy uint64
		wantErr          bool
	}{
		{name: "usage_all", file: "cgroup/cpuacct.usage_all", parse: parseUsageAll,
			wantUser: 451910597 + 459829197, wantSy: 803946400 + 511948324},
		{name: "usage_all bad header", in: "user system\n0 1 2\n", parse: parseUsageAll, wantErr: true},
		{name: "usage_all short line", in: "cpu user system\n0 1\n", parse: parseUsageAll, wantErr: true},
		{name: "usage_all no cpus", in: "cpu user system\n", parse: parseUsageAll},
		{name: "stat", file: "cgroup/cpuacct.stat", parse: parseCPUAcctStat, wantUser: 950_000_000, wantSy: 1_370_000_000},
		{name: "stat no system", in: "user 5\n", parse: parseCPUAcctStat, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			user, sys, err := tt.parse(in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if user != tt.wantUser || sys != tt.wantSy {
				t.Errorf("got user %d system %d, want %d %d", user, sys, tt.wantUser, tt.wantSy)
			}
		})
	}
}

func TestParseSingleAndIDs(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		in      string
		want    uint64
		wantErr bool
	}{
		{name: "cpuacct.usage", file: "cgroup/cpuacct.usage", want: 2321834455},
		{name: "pids.current", file: "cgroup/pids.current", want: 60},
		{name: "two numbers", in: "1 2\n", wantErr: true},
		{name: "empty", in: "\n", wantErr: true},
		{name: "max", in: "18446744073709551615\n", want: 1<<64 - 1},
		{name: "overflow", in: "18446744073709551616\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			got, err := parseSingle(in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("tasks", func(t *testing.T) {
		var ids []int
		if err := parseIDs(readTestdata(t, "cgroup/tasks"), func(id int) { ids = append(ids, id) }); err != nil {
			t.Fatal(err)
		}
		if len(ids) != 60 || ids[0] != 29203 {
			t.Errorf("got %d ids from %v, want 60 from 29203", len(ids), ids[:min(len(ids), 1)])
		}
	})
	t.Run("tasks bad id", func(t *testing.T) {
		if err := parseIDs([]byte("1\n0\n"), func(int) {}); err == nil {
			t.Error("id 0 accepted")
		}
	})
}

// TestParsersAgreeWithProcfs holds the meter's allocation-free parsers to
// github.com/prometheus/procfs on every captured process.
func TestParsersAgreeWithProcfs(t *testing.T) {
	fs, err := procfs.NewFS(filepath.Join(testdata, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(testdata, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			p, err := fs.Proc(pid)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := p.Stat()
			if err != nil {
				t.Fatal(err)
			}
			st, err := parseStat(readTestdata(t, "proc/"+e.Name()+"/stat"))
			if err != nil {
				t.Fatal(err)
			}
			want := procStat{state: ref.State[0], ppid: ref.PPID, minflt: uint64(ref.MinFlt), cminflt: uint64(ref.CMinFlt),
				majflt: uint64(ref.MajFlt), cmajflt: uint64(ref.CMajFlt), utime: uint64(ref.UTime), stime: uint64(ref.STime),
				cutime: uint64(ref.CUTime), cstime: uint64(ref.CSTime), threads: ref.NumThreads, start: ref.Starttime}
			if st != want {
				t.Errorf("stat: got %+v, procfs %+v", st, want)
			}
			refIO, err := p.IO()
			if err != nil {
				t.Fatal(err)
			}
			io, err := parseIO(readTestdata(t, "proc/"+e.Name()+"/io"))
			if err != nil {
				t.Fatal(err)
			}
			if want := (procIO{refIO.RChar, refIO.WChar, refIO.SyscR, refIO.SyscW, refIO.ReadBytes, refIO.WriteBytes}); io != want {
				t.Errorf("io: got %+v, procfs %+v", io, want)
			}
			refStatus, err := p.NewStatus()
			if err != nil {
				t.Fatal(err)
			}
			status, err := parseStatus(readTestdata(t, "proc/"+e.Name()+"/status"))
			if err != nil {
				t.Fatal(err)
			}
			if want := (taskStatus{refStatus.TGID, refStatus.VoluntaryCtxtSwitches, refStatus.NonVoluntaryCtxtSwitches}); status != want {
				t.Errorf("status: got %+v, procfs %+v", status, want)
			}
		})
	}
}

// FuzzParsers feeds every parser the same input: none may panic, and no id
// list may yield an id that is not positive.
func FuzzParsers(f *testing.F) {
	for _, name := range []string{"proc/29205/stat", "proc/3983/stat", "proc/3992/stat", "proc/29205/status",
		"proc/29205/io", "proc/29205/schedstat", "cgroup/memory.stat", "cgroup/cpuacct.usage_all",
		"cgroup/cpuacct.stat", "cgroup/cpuacct.usage", "cgroup/tasks"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte("1 (x) S 0 1 1 0 -1 0 5 6 7 8 9 10 -11 -12 20 0 1 0 99"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStat(b)
		parseStatus(b)
		parseIO(b)
		parseSchedstat(b)
		parseMemoryStat(b)
		parseUsageAll(b)
		parseCPUAcctStat(b)
		parseSingle(b)
		parseIDs(b, func(id int) {
			if id <= 0 {
				t.Fatalf("id %d", id)
			}
		})
	})
}
