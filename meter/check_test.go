package meter

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestCheck(t *testing.T) {
	signer := testSigner(t)
	other, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	terms := Terms{Lease: "zn-0123456789abcdef0", Key: signer.PublicKey(), Start: start, CPUs: 1, MemoryBytes: 1 << 30}
	const s = uint64(time.Second)
	// prev: 10 s into the lease, 5 s of CPU, 512 MiB held since the start.
	prevReport := func() Report {
		r := Report{Lease: terms.Lease, Seq: 1, Start: start, Time: start.Add(10 * time.Second)}
		r.Counters[CPU], r.Counters[CPUUser], r.Counters[CPUSystem] = 5*s, 4*s, 1*s
		r.Counters[ReadBytes] = 1 << 20
		r.Counters[MemoryPeak] = 512 << 20
		r.Counters[MemoryTime] = 512 * 10000
		return r
	}
	// cur: 10 s later, 5 s more CPU, 512 MiB more read, 512 MiB held.
	curReport := func() Report {
		r := prevReport()
		r.Seq, r.Time = 2, r.Time.Add(10*time.Second)
		r.Counters[CPU], r.Counters[CPUUser], r.Counters[CPUSystem] = 10*s, 8*s, 2*s
		r.Counters[ReadBytes] += 512 << 20
		r.Counters[MemoryTime] += 512 * 10000
		return r
	}
	// maxCPU is the most CPU 1 CPU allows in 10 s.
	maxCPU := uint64(10*time.Second+CPUPeriodSlack) + uint64(CPUAccountingSlack)
	tests := []struct {
		name    string
		terms   func(*Terms)
		prev    func(*Report) // nil: no previous report
		cur     func(*Report)
		after   func(*Report) // applied after signing
		signer  ssh.Signer
		wantErr string // "" for a valid report
	}{
		{name: "next report", prev: func(*Report) {}, cur: func(*Report) {}},
		{name: "first report", cur: func(r *Report) { *r = prevReport() }},
		{name: "sequence skips ahead", prev: func(*Report) {}, cur: func(r *Report) { r.Seq = 7 }},
		{name: "CPU at the bound", prev: func(*Report) {},
			cur: func(r *Report) { r.Counters[CPU] = 5*s + maxCPU }},
		{name: "CPU over the bound", prev: func(*Report) {},
			cur: func(r *Report) { r.Counters[CPU] = 5*s + maxCPU + 1 }, wantErr: "of CPU since the last report exceeds 1 CPUs"},
		{name: "user+system within the split tolerance", prev: func(*Report) {},
			cur: func(r *Report) {
				r.Counters[CPUUser], r.Counters[CPUSystem] = 4*s+maxCPU+maxCPU/10+uint64(CPUSplitSlack), 1*s
			}},
		{name: "user+system over the split tolerance", prev: func(*Report) {},
			cur: func(r *Report) {
				r.Counters[CPUUser], r.Counters[CPUSystem] = 4*s+maxCPU+maxCPU/10+uint64(CPUSplitSlack)+1, 1*s
			}, wantErr: "of user and system CPU since the last report"},
		{name: "processes' CPU within the tolerance", prev: func(*Report) {},
			cur: func(r *Report) {
				r.Counters[ProcCPU] = maxCPU + maxCPU/10 + uint64(CPUSplitSlack) + uint64(ProcCPUStartSlack)
			}},
		{name: "processes' CPU just over the tolerance", prev: func(*Report) {},
			cur: func(r *Report) {
				r.Counters[ProcCPU] = maxCPU + maxCPU/10 + uint64(CPUSplitSlack) + uint64(ProcCPUStartSlack) + 1
			},
			wantErr: "of the processes' CPU since the last report"},
		{name: "processes' CPU ten times over", prev: func(*Report) {},
			cur: func(r *Report) { r.Counters[ProcCPU] = 10 * 5 * s }, wantErr: "of the processes' CPU since the last report exceeds 1 CPUs"},
		// Seen in make test: the tick-sampled split ran ahead of the exact
		// counter in one 1 s interval under a 0.5-CPU quota.
		{name: "split ahead of the exact counter in a short interval", terms: func(t *Terms) { t.CPUs = 0.5 },
			prev: func(*Report) {}, cur: func(r *Report) {
				r.Time = r.Time.Add(-9 * time.Second)
				r.Counters[MemoryTime] = 512 * 11000
				r.Counters[CPU] = 5*s + 580*uint64(time.Millisecond)
				r.Counters[CPUUser], r.Counters[CPUSystem] = 4*s+676*uint64(time.Millisecond), 1*s+40*uint64(time.Millisecond)
			}},
		{name: "split far ahead since the start", terms: func(t *Terms) { t.CPUs = 0.5 },
			prev: func(r *Report) {
				r.Counters[CPU], r.Counters[CPUUser], r.Counters[CPUSystem] = 5*s, 5*s+500*uint64(time.Millisecond), 0
			},
			cur: func(r *Report) {
				r.Counters[CPU], r.Counters[CPUUser], r.Counters[CPUSystem] = 10*s, 11*s+200*uint64(time.Millisecond), 0
			}, wantErr: "of user and system CPU since the start"},
		{name: "first report over the bound", cur: func(r *Report) { *r = prevReport(); r.Counters[CPU] = maxCPU + 1 },
			wantErr: "of CPU since the last report"},
		{name: "CPU over the bound since the start", prev: func(r *Report) { r.Counters[CPU] = maxCPU },
			cur: func(r *Report) { r.Counters[CPU] = 2 * maxCPU }, wantErr: "of CPU since the start"},
		{name: "half a CPU", terms: func(t *Terms) { t.CPUs = 0.5 }, prev: func(*Report) {},
			cur: func(r *Report) { r.Counters[CPU] = 11 * s }, wantErr: "exceeds 0.5 CPUs"},
		{name: "no CPU quota", terms: func(t *Terms) { t.CPUs = 0 }, prev: func(*Report) {},
			cur: func(r *Report) { r.Counters[CPU] = 1000 * s }},
		{name: "counter backwards", prev: func(*Report) {}, cur: func(r *Report) { r.Counters[ReadBytes] = 1<<20 - 1 },
			wantErr: "counter io_read_bytes went backwards"},
		{name: "peak backwards", prev: func(*Report) {}, cur: func(r *Report) { r.Counters[MemoryPeak]-- },
			wantErr: "counter memory_peak_bytes went backwards"},
		{name: "sequence repeats", prev: func(*Report) {}, cur: func(r *Report) { r.Seq = 1 }, wantErr: "sequence number 1 does not follow 1"},
		{name: "time stands still", prev: func(*Report) {}, cur: func(r *Report) { r.Time = start.Add(10 * time.Second) },
			wantErr: "does not move forward"},
		{name: "time goes back", prev: func(*Report) {}, cur: func(r *Report) { r.Time = start.Add(5 * time.Second) },
			wantErr: "does not move forward"},
		{name: "time before the start", cur: func(r *Report) { *r = prevReport(); r.Time = start.Add(-time.Second) },
			wantErr: "before the start"},
		{name: "from the future", terms: func(t *Terms) { t.Now = start.Add(10 * time.Second) }, prev: func(*Report) {},
			cur: func(*Report) {}, wantErr: "ahead of the renter's clock"},
		{name: "within the clock skew", terms: func(t *Terms) { t.Now = start.Add(20*time.Second - ClockSkew) },
			prev: func(*Report) {}, cur: func(*Report) {}},
		{name: "other lease", prev: func(*Report) {}, cur: func(r *Report) { r.Lease = "zn-0123456789abcdef1" },
			wantErr: `report is for lease "zn-0123456789abcdef1"`},
		{name: "start not the lease's", cur: func(r *Report) { *r = prevReport(); r.Start = start.Add(-time.Hour) },
			wantErr: "is not the lease's start"},
		{name: "start changes", terms: func(t *Terms) { t.Start = time.Time{} }, prev: func(*Report) {},
			cur: func(r *Report) { r.Start = start.Add(-time.Hour) }, wantErr: "start changed"},
		{name: "tampered after signing", prev: func(*Report) {}, cur: func(*Report) {},
			after: func(r *Report) { r.Counters[CPU]-- }, wantErr: "bad usage report signature"},
		{name: "unsigned", prev: func(*Report) {}, cur: func(*Report) {},
			after: func(r *Report) { r.Signature = nil }, wantErr: "not signed"},
		{name: "signed by another key", prev: func(*Report) {}, cur: func(*Report) {}, signer: other,
			wantErr: "bad usage report signature"},
		{name: "no key", terms: func(t *Terms) { t.Key = nil }, cur: func(*Report) {}, wantErr: "no provider key"},
		{name: "peak at the limit", prev: func(*Report) {}, cur: func(r *Report) { r.Counters[MemoryPeak] = 1<<30 + MemorySlackBytes }},
		{name: "peak over the limit", prev: func(*Report) {}, cur: func(r *Report) { r.Counters[MemoryPeak] = 1<<30 + MemorySlackBytes + 1 },
			wantErr: "peak memory"},
		{name: "memory integral too fast", prev: func(*Report) {}, cur: func(r *Report) { r.Counters[MemoryTime] += 1100 * 10000 },
			wantErr: "memory integral grew"},
		{name: "no memory limit", terms: func(t *Terms) { t.MemoryBytes = 0 }, prev: func(*Report) {},
			cur: func(r *Report) { r.Counters[MemoryPeak] = 1 << 40 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := terms
			if tt.terms != nil {
				tt.terms(&tm)
			}
			sign := func(r *Report, s ssh.Signer) {
				if err := r.Sign(s); err != nil {
					t.Fatal(err)
				}
			}
			var prev *Report
			if tt.prev != nil {
				p := prevReport()
				tt.prev(&p)
				sign(&p, signer)
				prev = &p
			}
			cur := curReport()
			tt.cur(&cur)
			s := signer
			if tt.signer != nil {
				s = tt.signer
			}
			sign(&cur, s)
			if tt.after != nil {
				tt.after(&cur)
			}
			err := Check(tm, prev, cur)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", tt.wantErr)
			}
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want ErrRejected with %q", err, tt.wantErr)
			}
		})
	}
}

// TestCheckSampledReports runs real samples of a host process through a
// Reporter and Check: a provider that meters honestly passes.
func TestCheckSampledReports(t *testing.T) {
	rel := testCgroup(t)
	s := newSampler(t, Config{Cgroup: rel})
	h := startHelper(t, rel)
	start := time.Now().UTC()
	signer := testSigner(t)
	rep := NewReporter("zn-0123456789abcdef0", start, s, signer)
	terms := Terms{Lease: "zn-0123456789abcdef0", Key: signer.PublicKey(), Start: start.Round(0), CPUs: 1, MemoryBytes: 1 << 30}
	var prev *Report
	for i := range 5 {
		h.do("burn 20")
		h.do("alloc 4")
		r, err := rep.Next()
		if err != nil {
			t.Fatal(err)
		}
		enc, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		terms.Now = time.Now()
		if err := Check(terms, prev, got); err != nil {
			t.Fatalf("report %d: %v", i+1, err)
		}
		if got.Seq != uint64(i+1) {
			t.Errorf("seq %d, want %d", got.Seq, i+1)
		}
		prev = &got
	}
}
