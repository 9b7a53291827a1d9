package renter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/session"
)

// LedgerQuery selects what ReadLedgers reads: one session's ledger or
// all, one lease's records or all, receipts or (History) every entry,
// the last Limit of them (0: all).
type LedgerQuery struct {
	Session, Lease string
	History        bool
	Limit          int
}

// LedgerFile is one ledger file's content. A file a running zennet holds
// is Live: a renter's then carries its session's own figures (Hosts, as
// 'zennet usage' shows them) instead of its records.
type LedgerFile struct {
	Session  string          `json:"session,omitempty"`
	Path     string          `json:"path"`
	Live     bool            `json:"live,omitempty"`
	Receipts []pay.Receipt   `json:"receipts,omitempty"`
	Entries  []pay.Entry     `json:"entries,omitempty"`
	Hosts    []session.Usage `json:"live_hosts,omitempty"`
	// Damaged says why the file could not be read, and where it was set
	// aside (it is no longer at Path); its records are left out.
	Damaged string `json:"damaged,omitempty"`
}

// Empty tells whether f holds nothing to show.
func (f LedgerFile) Empty() bool {
	return len(f.Receipts) == 0 && len(f.Entries) == 0 && len(f.Hosts) == 0 && f.Damaged == ""
}

// Total adds up what files hold: their receipts, and the live figures of
// sessions still running (a live host counts as a lease: its bill and
// payments so far, what it owes as due).
func Total(files []LedgerFile) pay.Totals {
	var rs []pay.Receipt
	for _, f := range files {
		rs = append(rs, f.Receipts...)
	}
	t := pay.Total(rs, "")
	for _, f := range files {
		for _, h := range f.Hosts {
			t.Leases++
			t.Billed += h.BilledMsat
			t.Paid += h.PaidMsat
			t.Due += h.DueMsat
		}
	}
	return t
}

// ErrNoSessionLedger means the session asked for has no ledger.
var ErrNoSessionLedger = errors.New("no ledger of this session")

// ReadLedgers reads the renter's session ledgers in configDir, oldest
// first.
func ReadLedgers(configDir string, q LedgerQuery) ([]LedgerFile, error) {
	dir := LedgerDir(configDir)
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var paths []string
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".db")
		if !ok || q.Session != "" && id != q.Session {
			continue
		}
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	if q.Session != "" && len(paths) == 0 {
		return nil, fmt.Errorf("%w: %q in %s", ErrNoSessionLedger, q.Session, dir)
	}
	slices.SortFunc(paths, func(a, b string) int { return modTime(a).Compare(modTime(b)) })
	var files []LedgerFile
	for _, p := range paths {
		f, err := ReadLedger(p, q)
		if err != nil {
			return nil, err
		}
		f.Session = strings.TrimSuffix(filepath.Base(p), ".db")
		if f.Live {
			hosts, _ := session.ReadUsage(configDir, f.Session)
			for _, h := range hosts {
				if q.Lease == "" || h.LeaseID == q.Lease {
					f.Hosts = append(f.Hosts, h)
				}
			}
		}
		files = append(files, f)
	}
	return files, nil
}

// ReadLedger reads one ledger file (a session's or a provider's); one
// that a running zennet holds comes back Live and empty, and a damaged one
// is set aside and comes back with Damaged saying so.
func ReadLedger(path string, q LedgerQuery) (LedgerFile, error) {
	f := LedgerFile{Path: path}
	l, err := pay.Open(path, &pay.Options{Timeout: 100 * time.Millisecond})
	if errors.Is(err, bolt.ErrTimeout) {
		f.Live = true
		return f, nil
	}
	if errors.Is(err, pay.ErrDamaged) {
		f.Damaged = setAsideDamaged(path, err)
		return f, nil
	}
	if err != nil {
		return f, err
	}
	defer l.Close()
	if q.History {
		f.Entries, err = l.History(pay.Query{Lease: q.Lease, Limit: q.Limit})
		if errors.Is(err, pay.ErrNoLease) {
			err = nil
		}
		if errors.Is(err, pay.ErrDamaged) {
			// Its entries are readable no more: the file goes aside
			// once closed.
			l.Close()
			f.Entries, f.Damaged = nil, setAsideDamaged(path, err)
			return f, nil
		}
		return f, err
	}
	rs, err := l.Receipts()
	if err != nil {
		return f, err
	}
	for _, r := range rs {
		if q.Lease == "" || r.Terms.Lease == q.Lease {
			f.Receipts = append(f.Receipts, r)
		}
	}
	return f, nil
}

func modTime(p string) time.Time {
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}
