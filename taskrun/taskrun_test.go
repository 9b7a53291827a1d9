package taskrun

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/zennet/zennet/renter"
)

func TestLinePrefixer(t *testing.T) {
	long := strings.Repeat("x", maxPrefixedLine+10)
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"empty", nil, ""},
		{"one line", []string{"hello\n"}, "[h] hello\n"},
		{"two lines in one write", []string{"a\nb\n"}, "[h] a\n[h] b\n"},
		{"line split across writes", []string{"hel", "lo", "\nwor", "ld\n"}, "[h] hello\n[h] world\n"},
		{"last line without newline", []string{"a\nb"}, "[h] a\n[h] b\n"},
		{"empty lines", []string{"\n\n"}, "[h] \n[h] \n"},
		{"carriage return kept", []string{"50%\r100%\n"}, "[h] 50%\r100%\n"},
		{"long line broken", []string{long + "\n"}, "[h] " + long[:maxPrefixedLine] + "\n[h] " + long[maxPrefixedLine:] + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := &linePrefixer{mu: &sync.Mutex{}, w: &out, prefix: "[h] "}
			for _, w := range tc.writes {
				if n, err := p.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			p.Flush()
			if got := out.String(); got != tc.want {
				if len(got) > 200 {
					got, tc.want = fmt.Sprintf("%d bytes, lines of %v", len(got), lineLens(got)), fmt.Sprintf("%d bytes, lines of %v", len(tc.want), lineLens(tc.want))
				}
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func lineLens(s string) []int {
	var ls []int
	for l := range strings.Lines(s) {
		ls = append(ls, len(l))
	}
	return ls
}

// recorder keeps each Write as one piece.
type recorder struct{ writes []string }

func (r *recorder) Write(b []byte) (int, error) {
	r.writes = append(r.writes, string(b))
	return len(b), nil
}

// Lines of several prefixers sharing a writer never interleave: each line
// is one Write of prefix and line.
func TestLinePrefixerNoInterleaving(t *testing.T) {
	var mu sync.Mutex
	rec := &recorder{}
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c", "d"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &linePrefixer{mu: &mu, w: rec, prefix: "[" + name + "] "}
			for range 200 {
				p.Write([]byte(name + name))
				p.Write([]byte(name + "\n" + name))
				p.Write([]byte("\n"))
			}
			p.Flush()
		}()
	}
	wg.Wait()
	if len(rec.writes) != 4*400 {
		t.Fatalf("%d writes, want %d", len(rec.writes), 4*400)
	}
	for _, w := range rec.writes {
		name := w[1:2]
		if w != "["+name+"] "+name+name+name+"\n" && w != "["+name+"] "+name+"\n" {
			t.Fatalf("interleaved line %q", w)
		}
	}
}

func TestAssignReplicas(t *testing.T) {
	for _, tc := range []struct {
		name      string
		providers []string
		tasks     int
		replicas  int
		want      [][]int
	}{
		{"one replica keeps the host order", []string{"A", "A", "B"}, 3, 1, [][]int{{0}, {1}, {2}}},
		{"two providers, rented in order", []string{"A", "A", "B", "B"}, 2, 2, [][]int{{0, 2}, {1, 3}}},
		{"two providers, interleaved", []string{"A", "B", "A", "B"}, 2, 2, [][]int{{0, 1}, {2, 3}}},
		{"three providers, three replicas", []string{"A", "A", "B", "B", "C", "C"}, 2, 3, [][]int{{0, 2, 4}, {1, 3, 5}}},
		{"three providers, two replicas", []string{"A", "A", "B", "B", "C", "C"}, 3, 2, [][]int{{0, 2}, {4, 1}, {3, 5}}},
		// The most hosts left first: otherwise task 2 would get A twice.
		{"uneven providers", []string{"A", "A", "B", "C"}, 2, 2, [][]int{{0, 2}, {1, 3}}},
		{"one provider: shared", []string{"A", "A", "A", "A"}, 2, 2, [][]int{{0, 1}, {2, 3}}},
		{"too few of one provider", []string{"A", "A", "A", "B"}, 2, 2, [][]int{{0, 3}, {1, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := assignReplicas(tc.providers, tc.tasks, tc.replicas)
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			// Every host is used once.
			var all []int
			for _, s := range got {
				all = append(all, s...)
			}
			slices.Sort(all)
			for i, h := range all {
				if h != i {
					t.Fatalf("hosts used: %v", all)
				}
			}
		})
	}
}

// The replicas of every task are on different providers whenever the
// counts allow it: no provider has more hosts than there are tasks.
func TestAssignReplicasSpread(t *testing.T) {
	for _, tc := range []struct {
		counts   []int
		replicas int
	}{
		{[]int{2, 2}, 2}, {[]int{3, 3, 3}, 3}, {[]int{3, 3, 3}, 2} /* 9 hosts: not a multiple, skipped */, {[]int{4, 2, 2}, 2},
		{[]int{4, 3, 3, 2}, 3}, {[]int{6, 6}, 2}, {[]int{2, 2, 1, 1}, 3}, {[]int{3, 1, 1, 1}, 2}, {[]int{5, 5, 4, 3, 3}, 4},
	} {
		counts, replicas := tc.counts, tc.replicas
		var providers []string
		total := 0
		for i, n := range counts {
			for range n {
				providers = append(providers, string(rune('A'+i)))
			}
			total += n
		}
		if total%replicas != 0 {
			continue
		}
		tasks := total / replicas
		if slices.Max(counts) > tasks {
			t.Fatalf("counts %v: no spread possible over %d tasks", counts, tasks)
		}
		for ti, s := range assignReplicas(providers, tasks, replicas) {
			seen := map[string]bool{}
			for _, h := range s {
				if seen[providers[h]] {
					t.Errorf("counts %v, %d replicas: task %d has two replicas on %s", counts, replicas, ti+1, providers[h])
				}
				seen[providers[h]] = true
			}
		}
	}
}

func TestRemoteScript(t *testing.T) {
	args := []string{"sh", "-c", `printf '%s|' "$ZENNET_TASK" "$X" "$1" "$2"; pwd`, "arg0", "it's", `$HOME "q" \ ;|&`}
	script := remoteScript(args, [][2]string{{"ZENNET_TASK", "3"}, {"X", "a b'c"}})
	if !strings.HasPrefix(script, "mkdir -p "+RemoteResultsDir+" && cd "+RemoteResultsDir+" && export ") {
		t.Fatalf("script %q", script)
	}
	// Run it with the working dir moved to a temporary one.
	dir := t.TempDir()
	local := strings.ReplaceAll(script, RemoteResultsDir, filepath.Join(dir, "res"))
	out, err := exec.Command("sh", "-c", local).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := `3|a b'c|it's|$HOME "q" \ ;|&|` + filepath.Join(dir, "res") + "\n"
	if string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
	for in, want := range map[string]string{"": "''", "abc": "abc", "a b": "'a b'", "it's": `'it'\''s'`, "a/b.c=d": "a/b.c=d", "$x": "'$x'"} {
		if got := renter.ShellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func writeTar(t *testing.T, entries []tar.Header, bodies map[string]string) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		body := bodies[h.Name]
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	return &b
}

func TestExtractTar(t *testing.T) {
	dir := t.TempDir()
	b := writeTar(t, []tar.Header{
		{Name: "./", Typeflag: tar.TypeDir},
		{Name: "./sub/", Typeflag: tar.TypeDir},
		{Name: "./sub/a.txt", Typeflag: tar.TypeReg},
		{Name: "./link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		{Name: "./run.sh", Typeflag: tar.TypeReg, Mode: 0o755},
	}, map[string]string{"./sub/a.txt": "hello\n", "./run.sh": "#!/bin/sh\n"})
	if err := extractTar(b, dir, resultsLimit(0)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "sub", "a.txt")); string(got) != "hello\n" {
		t.Errorf("sub/a.txt = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("run.sh: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "link")); err != nil || l != "/etc/passwd" {
		t.Errorf("link = %q, %v", l, err)
	}
	d1, err := treeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "sub", "a.txt"), []byte("hellO\n"), 0o644)
	if d2, _ := treeDigest(dir); d2 == d1 {
		t.Error("the digest does not change with a file's content")
	}

	for _, tc := range []struct {
		name    string
		entries []tar.Header
		bodies  map[string]string
	}{
		{"dot-dot", []tar.Header{{Name: "../escape", Typeflag: tar.TypeReg}}, map[string]string{"../escape": "x"}},
		{"absolute", []tar.Header{{Name: "/tmp/escape", Typeflag: tar.TypeReg}}, map[string]string{"/tmp/escape": "x"}},
		{"through a symlinked dir", []tar.Header{
			{Name: "d", Typeflag: tar.TypeSymlink, Linkname: ".."},
			{Name: "d/escape", Typeflag: tar.TypeReg},
		}, map[string]string{"d/escape": "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "res")
			os.Mkdir(dir, 0o755)
			extractTar(writeTar(t, tc.entries, tc.bodies), dir, resultsLimit(0))
			if _, err := os.Lstat(filepath.Join(parent, "escape")); err == nil {
				t.Fatal("a file was written outside the results dir")
			}
			if _, err := os.Lstat("/tmp/escape"); err == nil {
				t.Fatal("a file was written outside the results dir")
			}
		})
	}
}

// A host's results write no more than its disk could hold, nor more
// entries than the bound, however large the stream: a 1 GiB stream (a
// sparse file tar sends whole) into a host limit of 1 MiB writes 1 MiB.
func TestExtractTarBounds(t *testing.T) {
	dir := t.TempDir()
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		tw.WriteHeader(&tar.Header{Name: "./sparse", Typeflag: tar.TypeReg, Size: 1 << 30, Mode: 0o644})
		zeros := make([]byte, 1<<20)
		for range 1 << 10 {
			if _, err := tw.Write(zeros); err != nil {
				break
			}
		}
		tw.Close()
		pw.Close()
	}()
	err := extractTar(pr, dir, archiveLimit{Bytes: 1 << 20, Entries: 10})
	pr.Close()
	if err == nil || !strings.Contains(err.Error(), "larger than the host's 1 MiB of disk") {
		t.Fatalf("a 1 GiB stream into 1 MiB: err = %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sparse")); err != nil || fi.Size() > 1<<20+1 {
		t.Fatalf("wrote %v, %v; want at most 1 MiB", fi, err)
	}
	var many []tar.Header
	for i := range 20 {
		many = append(many, tar.Header{Name: fmt.Sprintf("f%d", i), Typeflag: tar.TypeReg})
	}
	dir = t.TempDir()
	if err := extractTar(writeTar(t, many, nil), dir, archiveLimit{Bytes: 1 << 20, Entries: 10}); err == nil || !strings.Contains(err.Error(), "more than 10 entries") {
		t.Fatalf("20 entries under a bound of 10: err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 10 {
		t.Fatalf("%d entries written, want 10", len(ents))
	}
}

func TestCompareReplicas(t *testing.T) {
	run := func(task, replica int, host, prov, out, res string) Task {
		return Task{Task: task, Replica: replica, Host: host, Provider: prov, StdoutSHA256: out, ResultsSHA256: res}
	}
	const a, b = "3f2a000000000000aaaa", "9c1b000000000000bbbb"
	for _, tc := range []struct {
		name string
		runs []Task
		want []string
	}{
		{"agree", []Task{run(1, 1, "zennet-1", "A", a, a), run(1, 2, "zennet-2", "B", a, a)}, nil},
		{"stdout differs", []Task{run(1, 1, "zennet-1", "A", a, a), run(1, 2, "zennet-2", "B", a, a),
			run(2, 1, "zennet-3", "A", a, a), run(2, 2, "zennet-4", "B", b, a)},
			[]string{"task 2: replicas disagree: zennet-3 (provider A) 3f2a00000000… vs zennet-4 (provider B) 9c1b00000000…"}},
		{"files differ", []Task{run(1, 1, "zennet-1", "A", a, a), run(1, 2, "zennet-2", "B", a, b)},
			[]string{"task 1: replicas disagree (files): zennet-1 (provider A) 3f2a00000000… vs zennet-2 (provider B) 9c1b00000000…"}},
		{"both differ", []Task{run(1, 1, "zennet-1", "A", a, a), run(1, 2, "zennet-2", "B", b, b)},
			[]string{"task 1: replicas disagree (stdout and files): zennet-1 (provider A) 3f2a00000000… vs zennet-2 (provider B) 9c1b00000000…"}},
		{"three replicas, one odd", []Task{run(1, 1, "zennet-1", "A", a, a), run(1, 2, "zennet-2", "B", a, a), run(1, 3, "zennet-3", "C", b, a)},
			[]string{"task 1: replicas disagree: zennet-1 (provider A) 3f2a00000000… vs zennet-3 (provider C) 9c1b00000000…"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range compareReplicas(tc.runs) {
				got = append(got, d.Message)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}
