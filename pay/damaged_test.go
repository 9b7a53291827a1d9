package pay

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/meter"
)

// ledgerBytes is a ledger file with two leases paid for a few intervals:
// what a real session leaves behind.
func ledgerBytes(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	rl, pl := openLedger(t, filepath.Join(dir, "renter.db"), nil), openLedger(t, filepath.Join(dir, "provider.db"), nil)
	var rates Rates
	if err := rates.Set(meter.CPU, "1/3"); err != nil {
		t.Fatal(err)
	}
	for _, lease := range []string{"zn-0123456789abcdef0", "zn-0123456789abcdef1"} {
		e := openEmbeddedPair(t, rl, pl, lease, rates, 1000)
		for range 4 {
			e.interval(t, cpuUsage(6000))
		}
	}
	rl.Close()
	pl.Close()
	b, err := os.ReadFile(filepath.Join(dir, "renter.db"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll opens a ledger file made of b and reads everything zennet
// reads of one; it returns Open's error.
func readAll(t *testing.T, b []byte) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, &Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	defer l.Close()
	rs, err := l.Receipts()
	if err != nil {
		t.Fatalf("opened, then receipts: %v", err)
	}
	if _, err := l.Pending(); err != nil {
		t.Fatalf("opened, then pending: %v", err)
	}
	if _, err := l.History(Query{}); err != nil && !errors.Is(err, ErrDamaged) {
		t.Fatalf("opened, then history: %v", err)
	}
	for _, r := range rs {
		if _, err := l.Receipt(r.Terms.Lease); err != nil {
			t.Fatalf("opened, then receipt %s: %v", r.Terms.Lease, err)
		}
	}
	return nil
}

// TestOpenDamaged: a truncated, zeroed or foreign file is a DamagedError
// naming the file, never a crash (a truncated bbolt file made every
// 'zennet -n' die of SIGBUS); an intact one opens.
func TestOpenDamaged(t *testing.T) {
	good := ledgerBytes(t)
	zeroed := append([]byte(nil), good...)
	clear(zeroed[8192:])
	tests := []struct {
		name    string
		b       []byte
		damaged bool
	}{
		{"intact", good, false},
		{"empty (a new ledger)", nil, false},
		{"truncated to 20000 bytes", good[:20000], true},
		{"truncated to a page", good[:4096], true},
		{"truncated inside the meta pages", good[:100], true},
		{"every page past the meta pages zeroed", zeroed, true},
		{"not a ledger", []byte(strings.Repeat("hello ", 5000)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readAll(t, tt.b)
			if !tt.damaged {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var de *DamagedError
			if !errors.Is(err, ErrDamaged) || !errors.As(err, &de) || !strings.HasSuffix(de.Path, "x.db") {
				t.Fatalf("got %v, want a DamagedError naming x.db", err)
			}
		})
	}
}

func TestSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	to, err := SetAside(path, time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if to != path+".damaged-20261207T100000Z" {
		t.Fatalf("set aside as %s", to)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there: %v", path, err)
	}
	if b, err := os.ReadFile(to); err != nil || string(b) != "x" {
		t.Fatalf("set-aside file: %q %v", b, err)
	}
}

// FuzzOpenLedger: any file where a ledger is expected opens or is a
// DamagedError, and what opens reads without error or crash.
func FuzzOpenLedger(f *testing.F) {
	good := ledgerBytes(f)
	f.Add(good)
	f.Add(good[:20000])
	f.Add(good[:len(good)/2])
	f.Add(good[:8192])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := readAll(t, b); err != nil && !errors.Is(err, ErrDamaged) {
			t.Fatalf("not a DamagedError: %v", err)
		}
	})
}
