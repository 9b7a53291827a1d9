package renter

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/session"
)

func TestReadLedgers(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(LedgerDir(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"aaaa", "bbbb"} {
		l, err := pay.Open(filepath.Join(LedgerDir(dir), id+".db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(LedgerDir(dir), "notes.txt"), []byte("x"), 0o600)

	files, err := ReadLedgers(dir, LedgerQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Live || !files[0].Empty() {
		t.Fatalf("got %+v, want two closed empty ledgers", files)
	}

	// A running session holds its ledger: it reads as live.
	held, err := pay.Open(filepath.Join(LedgerDir(dir), "bbbb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	files, err = ReadLedgers(dir, LedgerQuery{Session: "bbbb"})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Session != "bbbb" || !files[0].Live {
		t.Fatalf("got %+v, want session bbbb live", files)
	}

	if _, err := ReadLedgers(dir, LedgerQuery{Session: "cccc"}); !errors.Is(err, ErrNoSessionLedger) {
		t.Fatalf("unknown session: got %v, want ErrNoSessionLedger", err)
	}
	if files, err := ReadLedgers(t.TempDir(), LedgerQuery{}); err != nil || len(files) != 0 {
		t.Fatalf("no ledger dir: got %v, %v", files, err)
	}
}

// TestTotal: the total counts live sessions' hosts with the closed
// ledgers' receipts ('zennet ledger' said total 0 under live rows billed
// 2,678 msat).
func TestTotal(t *testing.T) {
	files := []LedgerFile{
		{Session: "aaaa", Receipts: []pay.Receipt{{Status: pay.Status{Billed: 100, Paid: 90, Due: 10}}}},
		{Session: "bbbb", Live: true, Hosts: []session.Usage{{BilledMsat: 2678, PaidMsat: 2000, DueMsat: 678}, {BilledMsat: 2, PaidMsat: 2}}},
	}
	got := Total(files)
	want := pay.Totals{Leases: 3, Billed: 2780, Paid: 2092, Due: 688}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
