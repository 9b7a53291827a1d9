package renter

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/sshgate"
	"github.com/zennet/zennet/terms"
)

// TestRefusalRecorded: an offer refused for what its calibration claims
// is a failed check in the reputation book, with why; an offer refused for
// another reason (no common payment method) is not the provider's fault.
func TestRefusalRecorded(t *testing.T) {
	dir := t.TempDir()
	r := &Rental{cfg: &Config{ConfigDir: dir}, errs: make(chan error, 4)}
	c := &sshgate.Client{Addr: "127.0.0.1:1", HostKey: testenv.Signer(t).PublicKey()}
	r.noteRefusal(c, errors.New("no payment method in common (choose another with --pay)"))
	r.noteRefusal(c, nil)
	r.noteRefusal(c, fmt.Errorf("its offer does not add up: pricing its calibration: %w: it has 6 of the reference's 16 steps", terms.ErrPartialSet))
	rec, ok, err := market.OpenBook(market.BookPath(dir)).Get(fingerprint(c))
	if err != nil || !ok {
		t.Fatalf("no record: %v", err)
	}
	if rec.FailedChecks != 1 || !strings.Contains(rec.LastFailedCheck, "offer refused: its offer does not add up") {
		t.Fatalf("record %+v, want one failed check naming the refusal", rec)
	}
	select {
	case err := <-r.errs:
		t.Fatal(err)
	default:
	}
}

// TestRotationMedian: a rotation is judged by the median of its CPU-bound
// replays' work per msat billed (bench.SpotWorkloads), and holds early
// only once more than half of the rotation's CPU-bound replays reached the
// floor. The rotations are measured ones (BenchmarkSpotRotations,
// docs/calibration.md "Work per msat"): honest, relative to a calibration
// of the same machine minutes before, and the same replays against a set
// of every score ×1.3 (each ratio over 1.3).
func TestRotationMedian(t *testing.T) {
	floor := 1 - bench.DefaultWorkTolerance
	// 2026-12-07, load 6.8: the median of all ten 0.98, of the five
	// CPU-bound ones 0.97; the best two (membw 1.25, tcp 1.20) 1.23.
	honest := []spotRatio{{"float", 0.97}, {"spawn", 0.87}, {"syscall", 1.00}, {"compress", 0.89}, {"fileio", 0.58},
		{"memlat", 0.80}, {"tcp", 1.20}, {"membw", 1.25}, {"int", 0.99}, {"hash", 1.05}}
	var inflated []spotRatio
	for _, r := range honest {
		inflated = append(inflated, spotRatio{r.step, r.ratio / 1.3})
	}
	tests := []struct {
		name       string
		rs         []spotRatio
		n          int  // CPU-bound replays in the rotation
		all        bool // a set without CPU-bound steps: every replay counts
		wantMedian float64
		wantHeld   bool
	}{
		{"honest rotation", honest, 5, false, 0.97, true},
		{"every score x1.3", inflated, 5, false, 0.97 / 1.3, false},
		{"one replay", honest[:1], 5, false, 0.97, false},
		{"no CPU-bound replay yet", honest[1:3], 5, false, 0, false},
		// Two of five at the floor is not more than half: the other three
		// could all fall below it.
		{"two of five", []spotRatio{{"float", 0.97}, {"syscall", 1.0}, {"int", 0.99}}, 5, false, 0.98, false},
		{"three of five", []spotRatio{{"float", 0.97}, {"syscall", 1.0}, {"int", 0.99}, {"tcp", 1.2}, {"memlat", 0.2}, {"hash", 0.9}}, 5, false, 0.935, true},
		// Classes far above their claims that a loaded machine's
		// system-call, network and memory-bandwidth steps reach do not
		// carry a rotation whose CPU-bound replays are short: what the
		// best two of a rotation would have passed.
		{"outliers outside the CPU-bound classes", []spotRatio{{"tcp", 2.5}, {"membw", 1.4}, {"syscall", 1.9}, {"int", 0.8}, {"float", 0.8},
			{"hash", 0.81}, {"compress", 0.78}, {"memlat", 2.7}, {"fileio", 1.8}, {"spawn", 1.3}}, 5, false, 0.80, false},
		{"none", nil, 5, false, 0, false},
		{"a set without CPU-bound steps", []spotRatio{{"tcp", 0.9}, {"syscall", 0.5}, {"fileio", 0.95}}, 3, true, 0.9, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			judged := bench.SpotWorkloads()
			if tt.all {
				judged = nil
			}
			m, held := rotationMedian(tt.rs, judged, tt.n, floor)
			if math.Abs(m-tt.wantMedian) > 1e-9 || held != tt.wantHeld {
				t.Errorf("rotationMedian = %.4f, held %v; want %.4f, %v", m, held, tt.wantMedian, tt.wantHeld)
			}
		})
	}
}
