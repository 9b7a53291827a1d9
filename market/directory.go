package market

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zennet/zennet/internal/atomicfile"
)

// MaxEntries is the default bound of a Directory: the number of providers
// it keeps.
const MaxEntries = 10000

// Directory is the set of announcements a node knows: at most one per
// provider key, the one with the highest Seq, each checked when added.
// Its methods are safe for concurrent use.
type Directory struct {
	max int

	mu    sync.Mutex
	byKey map[string]*entry // by Provider
	byFP  map[string]string // fingerprint → Provider
	heap  expiryHeap        // the same entries, soonest to expire first
}

type entry struct {
	a  Announcement
	fp string
	i  int // index in the heap
}

// expiryHeap orders entries by Expires, then Provider (container/heap).
type expiryHeap []*entry

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if !h[i].a.Expires.Equal(h[j].a.Expires) {
		return h[i].a.Expires.Before(h[j].a.Expires)
	}
	return h[i].a.Provider < h[j].a.Provider
}
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.i = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// NewDirectory returns an empty directory keeping at most max providers
// (MaxEntries when max <= 0).
func NewDirectory(max int) *Directory {
	if max <= 0 {
		max = MaxEntries
	}
	return &Directory{max: max, byKey: make(map[string]*entry), byFP: make(map[string]string)}
}

// Add adds a if it is new: it returns true when a is now the directory's
// announcement for its provider. An announcement whose Seq is not above
// the one known for its provider is a duplicate (equal) or stale (lower):
// Add ignores it, returning false and no error, without verifying its
// signature. Otherwise a must pass Check(a, now, minBits), whose error Add
// returns. When the directory is full, expired entries go first, then the
// entry that expires soonest, if it expires before a does; otherwise a is
// not added (false, no error). Add costs one signature verification (about
// 0.1 ms) and O(log n) besides.
func (d *Directory) Add(a Announcement, now time.Time, minBits uint) (bool, error) {
	if err := a.validate(); err != nil {
		return false, err
	}
	d.mu.Lock()
	old, known := d.byKey[a.Provider]
	stale := known && a.Seq <= old.a.Seq
	d.mu.Unlock()
	if stale {
		return false, nil
	}
	if err := Check(&a, now, minBits); err != nil {
		return false, err
	}
	a = clone(a)
	fp := a.Fingerprint()

	d.mu.Lock()
	defer d.mu.Unlock()
	old, known = d.byKey[a.Provider] // again: another Add may have run
	if known {
		if a.Seq <= old.a.Seq {
			return false, nil
		}
		old.a = a
		heap.Fix(&d.heap, old.i)
		return true, nil
	}
	if len(d.byKey) >= d.max {
		d.expireLocked(now)
	}
	if len(d.byKey) >= d.max {
		if victim := d.heap[0]; !victim.a.Expires.Before(a.Expires) {
			return false, nil
		}
		d.removeLocked(d.heap[0])
	}
	e := &entry{a: a, fp: fp}
	heap.Push(&d.heap, e)
	d.byKey[a.Provider] = e
	d.byFP[fp] = a.Provider
	return true, nil
}

func (d *Directory) removeLocked(e *entry) {
	heap.Remove(&d.heap, e.i)
	delete(d.byKey, e.a.Provider)
	delete(d.byFP, e.fp)
}

// clone copies a's slices so that the directory's entries share nothing
// with callers.
func clone(a Announcement) Announcement {
	a.Methods = slices.Clone(a.Methods)
	if a.Signature != nil {
		s := *a.Signature
		s.Blob = slices.Clone(s.Blob)
		s.Rest = slices.Clone(s.Rest)
		a.Signature = &s
	}
	return a
}

// Expire removes the announcements that have expired at now and returns
// how many.
func (d *Directory) Expire(now time.Time) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expireLocked(now)
}

func (d *Directory) expireLocked(now time.Time) int {
	n := 0
	for len(d.heap) > 0 && !d.heap[0].a.Expires.After(now) {
		d.removeLocked(d.heap[0])
		n++
	}
	return n
}

// List returns the announcements that have not expired at now, sorted by
// address and then provider key.
func (d *Directory) List(now time.Time) []Announcement {
	d.mu.Lock()
	out := make([]Announcement, 0, len(d.byKey))
	for _, e := range d.byKey {
		if e.a.Expires.After(now) {
			out = append(out, clone(e.a))
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(x, y Announcement) int {
		if c := strings.Compare(x.Address, y.Address); c != 0 {
			return c
		}
		return strings.Compare(x.Provider, y.Provider)
	})
	return out
}

// Get returns the announcement known for a provider, named by its key in
// authorized_keys form (Announcement.Provider) or by its SHA256
// fingerprint. It may have expired: callers compare Expires with their
// clock (List does).
func (d *Directory) Get(provider string) (Announcement, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if k, ok := d.byFP[provider]; ok {
		provider = k
	}
	e, ok := d.byKey[provider]
	if !ok {
		return Announcement{}, false
	}
	return clone(e.a), true
}

// Len is the number of announcements held, expired or not.
func (d *Directory) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.byKey)
}

// Directory files.
const (
	directoryFormat  = "zennet-directory"
	directoryVersion = 1
	// maxDirectoryFile bounds a directory file: MaxEntries announcements
	// of the largest size, with room.
	maxDirectoryFile = MaxEntries*(MaxAnnouncementSize+8) + 4096
)

type directoryJSON struct {
	Format        string            `json:"format"`
	Version       int               `json:"version"`
	Announcements []json.RawMessage `json:"announcements"`
}

// Save writes the directory's announcements, expired or not, to path:
// one JSON object {"format": "zennet-directory", "version": 1,
// "announcements": [...]}, written to a temporary file beside path with
// mode 0600 and renamed into place, so a reader never sees half a file.
// Concurrent Saves by several processes leave one of them whole.
func (d *Directory) Save(path string) error {
	d.mu.Lock()
	list := make([]Announcement, 0, len(d.byKey))
	for _, e := range d.byKey {
		list = append(list, e.a)
	}
	d.mu.Unlock()
	slices.SortFunc(list, func(x, y Announcement) int { return strings.Compare(x.Provider, y.Provider) })
	w := directoryJSON{Format: directoryFormat, Version: directoryVersion, Announcements: make([]json.RawMessage, 0, len(list))}
	for _, a := range list {
		b, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("save directory: %w", err)
		}
		w.Announcements = append(w.Announcements, b)
	}
	b, err := json.MarshalIndent(w, "", " ")
	if err != nil {
		return fmt.Errorf("save directory: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save directory: %w", err)
	}
	return nil
}

// Load adds the announcements saved at path with Add(a, now, minBits): the
// expired, unverifiable, too weak and superseded are dropped. It returns
// how many were added and how many dropped. A missing file is an empty
// directory (0, 0, nil); a file that is not a directory file is an error.
func (d *Directory) Load(path string, now time.Time, minBits uint) (added, dropped int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("load directory: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDirectoryFile+1))
	if err != nil {
		return 0, 0, fmt.Errorf("load directory: %w", err)
	}
	if len(b) > maxDirectoryFile {
		return 0, 0, fmt.Errorf("load directory %s: larger than %d bytes", path, maxDirectoryFile)
	}
	var w directoryJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return 0, 0, fmt.Errorf("load directory %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, 0, fmt.Errorf("load directory %s: trailing data", path)
	}
	if w.Format != directoryFormat || w.Version != directoryVersion {
		return 0, 0, fmt.Errorf("load directory %s: format %q version %d, this build reads %q version %d",
			path, w.Format, w.Version, directoryFormat, directoryVersion)
	}
	for _, raw := range w.Announcements {
		a, err := DecodeAnnouncement(raw)
		if err != nil {
			dropped++
			continue
		}
		ok, err := d.Add(a, now, minBits)
		if ok {
			added++
		} else {
			dropped++ // err says why, or it was a duplicate, stale or did not fit
		}
	}
	return added, dropped, nil
}
