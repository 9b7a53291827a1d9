package market

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/zennet/zennet/internal/atomicfile"
)

// Record is one side's own history with one counterpart, named by its SSH
// key's SHA256 fingerprint: a renter's record of a provider, or a
// provider's of a renter. Nobody else's opinion enters it.
type Record struct {
	// Key is the counterpart's key fingerprint (ssh.FingerprintSHA256).
	Key string `json:"key"`
	// Leases counts the hosts leased with the counterpart.
	Leases uint64 `json:"leases"`
	// Completed counts leases that ended as agreed: released by the
	// renter, settled.
	Completed uint64 `json:"completed"`
	// Dropped counts leases the counterpart ended or lost early (the
	// provider died, a forged or impossible usage report, unpaid).
	Dropped uint64 `json:"dropped"`
	// FailedChecks counts failed calibration spot-checks and rejected
	// usage reports.
	FailedChecks uint64 `json:"failed_checks"`
	// LatePayments counts bills paid after their grace, or not at all.
	LatePayments uint64 `json:"late_payments"`
	// Unpaid counts leases the counterpart (a renter) let end unpaid,
	// also counted as dropped: a provider refuses such a key.
	Unpaid uint64 `json:"unpaid,omitempty"`
	// LastDrop is the reason of the latest drop.
	LastDrop string `json:"last_drop,omitempty"`
	// LastFailedCheck is what the latest failed check found: a spot check
	// that measured less than the calibration claimed, or an offer refused
	// for what its calibration set claims.
	LastFailedCheck string `json:"last_failed_check,omitempty"`
	// First and Last are the times of the first and latest events.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// Score is the record's reputation in [0, 1]: the mean of a Beta
// distribution with a prior of one good and one bad outcome, over
// completed leases as good and drops, failed checks and late payments as
// bad:
//
//	(Completed + 1) / (Completed + Dropped + FailedChecks + LatePayments + 2)
//
// A counterpart never met scores 0.5; one lease completed 0.67, one
// dropped 0.33; ten completed and one failed check 0.85.
func (r Record) Score() float64 {
	good := float64(r.Completed) + 1
	bad := float64(r.Dropped) + float64(r.FailedChecks) + float64(r.LatePayments) + 1
	return good / (good + bad)
}

// EventKind names what happened.
type EventKind int

// Event kinds.
const (
	EventLeased EventKind = iota + 1
	EventCompleted
	EventDropped
	EventFailedCheck
	EventLatePayment
	EventUnpaid
)

// Event is one thing that happened with a counterpart; Leased, Completed,
// Dropped, FailedCheck and LatePayment make them.
type Event struct {
	Kind EventKind
	// N is the number of hosts of a Leased event.
	N uint64
	// Reason is why a lease was dropped.
	Reason string
}

// Leased is the event of n hosts leased.
func Leased(n uint64) Event { return Event{Kind: EventLeased, N: n} }

// Completed is the event of a lease that ended as agreed.
func Completed() Event { return Event{Kind: EventCompleted} }

// Dropped is the event of a lease ended early by the counterpart's fault,
// for reason.
func Dropped(reason string) Event { return Event{Kind: EventDropped, Reason: reason} }

// EndedUnpaid is the event of a lease ended because its renter did not
// pay, for reason: a drop, and a mark against the key.
func EndedUnpaid(reason string) Event { return Event{Kind: EventUnpaid, Reason: reason} }

// FailedCheck is the event of a failed spot-check, a rejected report or
// an offer refused for its calibration, for reason (what was found).
func FailedCheck(reason string) Event { return Event{Kind: EventFailedCheck, Reason: reason} }

// LatePayment is the event of a bill paid late or not at all.
func LatePayment() Event { return Event{Kind: EventLatePayment} }

// maxReasonLen bounds Record.LastDrop.
const maxReasonLen = 200

// clipReason makes a reason valid UTF-8 of at most maxReasonLen bytes.
func clipReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "?")
	if len(reason) > maxReasonLen {
		reason = strings.ToValidUTF8(reason[:maxReasonLen], "") + "…"
	}
	return reason
}

// Apply adds ev, which happened at time at, to the record.
func (r *Record) Apply(ev Event, at time.Time) {
	switch ev.Kind {
	case EventLeased:
		r.Leases += ev.N
	case EventCompleted:
		r.Completed++
	case EventDropped, EventUnpaid:
		r.Dropped++
		if ev.Kind == EventUnpaid {
			r.Unpaid++
		}
		r.LastDrop = clipReason(ev.Reason)
	case EventFailedCheck:
		r.FailedChecks++
		if ev.Reason != "" {
			r.LastFailedCheck = clipReason(ev.Reason)
		}
	case EventLatePayment:
		r.LatePayments++
	default:
		return
	}
	at = at.Round(0).UTC()
	if r.First.IsZero() || at.Before(r.First) {
		r.First = at
	}
	if at.After(r.Last) {
		r.Last = at
	}
}

// Book is a reputation book kept in a JSON file, shared by every zennet
// process of a user: each change is a read-modify-write under an
// exclusive flock of PATH.lock, written to a temporary file and renamed
// into place, so concurrent processes and goroutines lose no update and
// readers never see half a file. A Book holds no state of its own.
type Book struct {
	path string
}

// BookPath is the file of a party's book in its state directory (a
// renter's config dir, a provider's data dir).
func BookPath(dir string) string { return filepath.Join(dir, "reputation.json") }

// OpenBook returns the book kept at path. Nothing is read or created until
// it is used; the directory and files are created 0700 and 0600.
func OpenBook(path string) *Book { return &Book{path: path} }

// Path is the book's file.
func (b *Book) Path() string { return b.path }

// Book files.
const (
	bookFormat  = "zennet-reputation"
	bookVersion = 1
	maxBookFile = 64 << 20
	maxKeyLen   = 256
)

type bookJSON struct {
	Format  string   `json:"format"`
	Version int      `json:"version"`
	Records []Record `json:"records"`
}

// Update runs fn on the record of key (a new one, Key set, when there is
// none) under the book's lock, saves the result and returns it. fn cannot
// change the record's Key. When fn panics nothing is saved.
func (b *Book) Update(key string, fn func(*Record)) (Record, error) {
	if err := checkKey(key); err != nil {
		return Record{}, err
	}
	unlock, err := b.lock(syscall.LOCK_EX)
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	recs, err := b.read()
	if err != nil {
		return Record{}, err
	}
	r, ok := recs[key]
	if !ok {
		r = Record{Key: key}
	}
	fn(&r)
	r.Key = key
	recs[key] = r
	if err := b.write(recs); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Note records ev, which happened at time at, for key.
func (b *Book) Note(key string, ev Event, at time.Time) (Record, error) {
	return b.Update(key, func(r *Record) { r.Apply(ev, at) })
}

// Get returns the record of key, or a fresh Record{Key: key} (score 0.5)
// and false when the book has none.
func (b *Book) Get(key string) (Record, bool, error) {
	unlock, err := b.lock(syscall.LOCK_SH)
	if err != nil {
		return Record{}, false, err
	}
	defer unlock()
	recs, err := b.read()
	if err != nil {
		return Record{}, false, err
	}
	r, ok := recs[key]
	if !ok {
		return Record{Key: key}, false, nil
	}
	return r, true, nil
}

// All returns every record, sorted by key.
func (b *Book) All() ([]Record, error) {
	unlock, err := b.lock(syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	recs, err := b.read()
	if err != nil {
		return nil, err
	}
	return sortedRecords(recs), nil
}

func sortedRecords(recs map[string]Record) []Record {
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y Record) int { return strings.Compare(x.Key, y.Key) })
	return out
}

func checkKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("reputation: key of %d bytes", len(key))
	}
	for _, c := range []byte(key) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("reputation: key %q: bad character", key)
		}
	}
	return nil
}

// lock takes a flock of how on PATH.lock (a file of its own: the book is
// replaced by rename, so a lock on it would be on a file that is gone).
func (b *Book) lock(how int) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(b.path), 0o700); err != nil {
		return nil, fmt.Errorf("reputation book: %w", err)
	}
	f, err := os.OpenFile(b.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("reputation book: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reputation book: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}

func (b *Book) read() (map[string]Record, error) {
	recs := make(map[string]Record)
	f, err := os.Open(b.path)
	if errors.Is(err, fs.ErrNotExist) {
		return recs, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reputation book: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBookFile+1))
	if err != nil {
		return nil, fmt.Errorf("reputation book: %w", err)
	}
	if len(data) > maxBookFile {
		return nil, fmt.Errorf("reputation book %s: larger than %d bytes", b.path, maxBookFile)
	}
	var w bookJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("reputation book %s: %w", b.path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("reputation book %s: trailing data", b.path)
	}
	if w.Format != bookFormat || w.Version != bookVersion {
		return nil, fmt.Errorf("reputation book %s: format %q version %d, this build reads %q version %d",
			b.path, w.Format, w.Version, bookFormat, bookVersion)
	}
	for _, r := range w.Records {
		if err := checkKey(r.Key); err != nil {
			return nil, fmt.Errorf("reputation book %s: %w", b.path, err)
		}
		if _, dup := recs[r.Key]; dup {
			return nil, fmt.Errorf("reputation book %s: key %s twice", b.path, r.Key)
		}
		recs[r.Key] = r
	}
	return recs, nil
}

func (b *Book) write(recs map[string]Record) error {
	data, err := json.MarshalIndent(bookJSON{Format: bookFormat, Version: bookVersion, Records: sortedRecords(recs)}, "", " ")
	if err != nil {
		return fmt.Errorf("reputation book: %w", err)
	}
	if err := atomicfile.WriteFile(b.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("reputation book: %w", err)
	}
	return nil
}
