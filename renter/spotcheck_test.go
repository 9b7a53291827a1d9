package renter

import (
	"errors"
	"fmt"
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

// TestBestTwo: a rotation is judged by the mean of its two best replays,
// not the best alone: on an honest provider one membw replay did 1.25 of
// its claim, which scaled by 1/1.3 (0.96) would pass a set with every
// score ×1.3; the mean with its next best (0.81/1.3) does not.
func TestBestTwo(t *testing.T) {
	honest := []spotRatio{{"memlat", 0.34}, {"int", 0.69}, {"fileio", 0.23}, {"spawn", 0.24}, {"syscall", 0.15}, {"compress", 0.81}, {"membw", 1.25}}
	var inflated []spotRatio
	for _, r := range honest {
		inflated = append(inflated, spotRatio{r.step, r.ratio / 1.3})
	}
	if b, steps := bestTwo(honest); b < 1-bench.DefaultWorkTolerance || steps != "membw, compress" {
		t.Errorf("honest: %.3f (%s), want at least %.2f", b, steps, 1-bench.DefaultWorkTolerance)
	}
	if b, _ := bestTwo(inflated); b >= 1-bench.DefaultWorkTolerance {
		t.Errorf("scores x1.3: %.3f passes", b)
	}
	if b, steps := bestTwo(honest[:1]); b != 0.34 || steps != "memlat" {
		t.Errorf("one replay: %v %q", b, steps)
	}
}
