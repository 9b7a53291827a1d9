package renter

import (
	"errors"
	"fmt"
	"strings"
	"testing"

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
