package market

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestScore(t *testing.T) {
	for _, tt := range []struct {
		r    Record
		want float64
	}{
		{Record{}, 0.5},
		{Record{Leases: 10}, 0.5},
		{Record{Completed: 1}, 2.0 / 3},
		{Record{Dropped: 1}, 1.0 / 3},
		{Record{Completed: 10, FailedChecks: 1}, 11.0 / 13},
		{Record{Dropped: 1, FailedChecks: 1, LatePayments: 1}, 0.2},
		{Record{Completed: 1 << 60}, 1},
	} {
		if got := tt.r.Score(); math.Abs(got-tt.want) > 1e-9 || got < 0 || got > 1 {
			t.Errorf("%+v: Score = %v, want %v", tt.r, got, tt.want)
		}
	}
}

func TestApply(t *testing.T) {
	var r Record
	r.Apply(Leased(3), t0.Add(time.Hour))
	r.Apply(Completed(), t0.Add(2*time.Hour))
	r.Apply(Dropped(strings.Repeat("x", 500)), t0)
	r.Apply(FailedCheck("int did 23% less work per msat billed than claimed"), t0.Add(3*time.Hour))
	r.Apply(LatePayment(), t0.Add(90*time.Minute))
	r.Apply(Event{Kind: 99}, t0.Add(10*time.Hour)) // unknown: ignored
	if r.Leases != 3 || r.Completed != 1 || r.Dropped != 1 || r.FailedChecks != 1 || r.LatePayments != 1 {
		t.Fatalf("%+v", r)
	}
	if !r.First.Equal(t0) || !r.Last.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("first %v last %v", r.First, r.Last)
	}
	if r.LastFailedCheck != "int did 23% less work per msat billed than claimed" {
		t.Fatalf("last failed check %q", r.LastFailedCheck)
	}
	if len(r.LastDrop) > maxReasonLen+len("…") {
		t.Fatalf("drop reason of %d bytes", len(r.LastDrop))
	}
}

func TestBook(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "reputation.json")
	b := OpenBook(path)
	if r, ok, err := b.Get("SHA256:a"); err != nil || ok || r.Key != "SHA256:a" || r.Score() != 0.5 {
		t.Fatalf("Get of an empty book = %+v, %v, %v", r, ok, err)
	}
	if _, err := b.Note("SHA256:a", Leased(2), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Note("SHA256:a", Completed(), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r, err := b.Update("SHA256:b", func(r *Record) { r.Key = "changed"; r.Dropped = 2 })
	if err != nil || r.Key != "SHA256:b" {
		t.Fatalf("Update = %+v, %v", r, err)
	}
	all, err := b.All()
	if err != nil || len(all) != 2 || all[0].Key != "SHA256:a" || all[1].Key != "SHA256:b" {
		t.Fatalf("All = %+v, %v", all, err)
	}
	if all[0].Leases != 2 || all[0].Completed != 1 || !all[0].Last.Equal(t0.Add(time.Hour)) {
		t.Fatalf("record a = %+v", all[0])
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("book file: %v, %v", fi.Mode(), err)
	}
	for _, bad := range []string{"", "a b", strings.Repeat("k", 300)} {
		if _, err := b.Update(bad, func(*Record) {}); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	os.WriteFile(path, []byte(`{"format":"zennet-reputation","version":1,"records":[],"x":0}`), 0o600)
	if _, err := b.All(); err == nil {
		t.Fatal("unknown field read")
	}
	os.WriteFile(path, []byte(`{"format":"zennet-reputation","version":1,"records":[{"key":"k"},{"key":"k"}]}`), 0o600)
	if _, err := b.All(); err == nil {
		t.Fatal("duplicate key read")
	}
}

// TestBookConcurrent updates one book from goroutines of this process and
// from other processes at once: no update may be lost.
func TestBookConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reputation.json")
	const procs, goroutines, updates = 3, 4, 25
	var cmds []*exec.Cmd
	for p := 0; p < procs; p++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBookHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "ZENNET_MARKET_BOOK="+path, "ZENNET_MARKET_UPDATES="+strconv.Itoa(updates))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	b := OpenBook(path)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Go(func() {
			for i := 0; i < updates; i++ {
				key := fmt.Sprintf("SHA256:k%d", i%3)
				if _, err := b.Note(key, Completed(), t0); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper process: %v", err)
		}
	}
	all, err := b.All()
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, r := range all {
		total += r.Completed
	}
	if want := uint64((procs + goroutines) * updates); total != want {
		t.Fatalf("%d completions recorded, want %d: updates lost", total, want)
	}
}

func TestBookHelperProcess(t *testing.T) {
	path := os.Getenv("ZENNET_MARKET_BOOK")
	if path == "" {
		t.Skip("helper process for TestBookConcurrent")
	}
	n, _ := strconv.Atoi(os.Getenv("ZENNET_MARKET_UPDATES"))
	b := OpenBook(path)
	for i := 0; i < n; i++ {
		if _, err := b.Note(fmt.Sprintf("SHA256:k%d", i%3), Completed(), t0); err != nil {
			t.Fatal(err)
		}
	}
}
