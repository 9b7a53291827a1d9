package renter

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/zennet/zennet/internal/atomicfile"
	"github.com/zennet/zennet/market"
)

// CheckStateFiles reads the renter's state files in configDir as their
// readers do (the providers file, the reputation book, known_providers)
// and sets aside each that cannot be read, so that one damaged file
// stops nothing: renting, 'zennet providers' and 'zennet reputation' go
// on without it. It returns a sentence per file set aside: which, why,
// where it went, and what it means. (Session ledgers are checked as they
// are opened: settleOldLedgers, ReadLedger.)
func CheckStateFiles(configDir string) []string {
	var notes []string
	check := func(path, what, meaning string, read func() error) {
		err := read()
		var pe *fs.PathError
		if err == nil || errors.As(err, &pe) {
			return // readable, absent, or unreadable for a reason of the OS's
		}
		to, serr := atomicfile.SetAside(path, time.Now())
		if serr != nil {
			notes = append(notes, fmt.Sprintf("%s %s is damaged (%v) and could not be set aside (%v): move it away", what, path, err, serr))
			return
		}
		notes = append(notes, fmt.Sprintf("%s %s is damaged (%v); set aside as %s: %s", what, path, err, to, meaning))
	}
	check(ProvidersPath(configDir), "providers file", "the market's providers are learned again from --seed",
		func() error {
			_, _, err := market.NewDirectory(0).Load(ProvidersPath(configDir), time.Now(), 0)
			return err
		})
	check(market.BookPath(configDir), "reputation book", "your record of providers starts anew (the old one is in that file)",
		func() error {
			_, err := market.OpenBook(market.BookPath(configDir)).All()
			return err
		})
	if n := checkKnownProviders(KnownProvidersPath(configDir)); n != "" {
		notes = append(notes, n)
	}
	return notes
}

// checkKnownProviders keeps the pins of a damaged known_providers: the
// lines that read are written back, the file as it was is set aside, and
// the sentence says so ("" when the file reads, or is absent).
func checkKnownProviders(path string) string {
	var pe *fs.PathError
	if _, err := knownhosts.New(path); err == nil || errors.As(err, &pe) {
		return "" // readable, absent, or unreadable for a reason of the OS's
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var keep []string
	dropped := 0
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if _, _, _, _, _, err := gossh.ParseKnownHosts([]byte(t)); err != nil {
			dropped++
			continue
		}
		keep = append(keep, t)
	}
	to, err := atomicfile.SetAside(path, time.Now())
	if err != nil {
		return fmt.Sprintf("known_providers %s is damaged and could not be set aside (%v): move it away", path, err)
	}
	data := strings.Join(keep, "\n")
	if data != "" {
		data += "\n"
	}
	if err := atomicfile.WriteFile(path, []byte(data), 0o600); err != nil {
		return fmt.Sprintf("known_providers %s was damaged, and was set aside as %s, but its %d readable pins could not be written back (%v)", path, to, len(keep), err)
	}
	return fmt.Sprintf("known_providers %s was damaged (%d unreadable lines); set aside as %s, and its %d readable pins kept: a provider whose pin was lost is trusted on first use again, and said so", path, dropped, to, len(keep))
}
