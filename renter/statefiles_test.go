package renter

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/zennet/zennet/market"
)

// FuzzCheckStateFiles: whatever the providers file, the reputation book
// and known_providers hold, once CheckStateFiles has run every one of
// them reads (what could not is set aside, and said), and nothing panics.
func FuzzCheckStateFiles(f *testing.F) {
	f.Add([]byte(`{"format":"zennet-providers","version":1,"announcements":[]}`))
	f.Add([]byte(`{"format":"zennet-reputation","version":1,"records":[]}`))
	f.Add([]byte("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\nnot a pin\n"))
	f.Add([]byte("\x00\x01{"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		for _, p := range []string{ProvidersPath(dir), market.BookPath(dir), KnownProvidersPath(dir)} {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		notes := CheckStateFiles(dir)
		for _, n := range notes {
			if !strings.Contains(n, ".damaged-") {
				t.Errorf("a note that names no set-aside file: %s", n)
			}
		}
		if _, _, err := market.NewDirectory(0).Load(ProvidersPath(dir), time.Now(), 0); err != nil {
			t.Errorf("providers file after the check: %v", err)
		}
		if _, err := market.OpenBook(market.BookPath(dir)).All(); err != nil {
			t.Errorf("reputation book after the check: %v", err)
		}
		if _, err := knownhosts.New(KnownProvidersPath(dir)); err != nil {
			t.Errorf("known_providers after the check: %v", err)
		}
	})
}
