package pay

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zennet/zennet/internal/atomicfile"
)

// ErrDamaged: a ledger file that is not a readable ledger (truncated,
// overwritten, not a ledger at all).
var ErrDamaged = errors.New("ledger file damaged")

// DamagedError names a damaged ledger file; it matches ErrDamaged.
type DamagedError struct {
	Path string
	Err  error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("ledger %s is damaged: %v", e.Path, e.Err)
}

func (e *DamagedError) Unwrap() []error { return []error{ErrDamaged, e.Err} }

// openBolt opens path with bbolt and reads every page of it once, so
// that a damaged file is an error here and not a crash later: bbolt
// trusts its file, and a truncated one makes it read past the end of its
// memory map (SIGBUS, which this goroutine turns into a panic) or panic
// on a page that is not what it points at. Whatever goes wrong reading
// the file is a *DamagedError; a file locked by another process, or one
// that cannot be opened at all, is returned as bbolt or the OS says.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			// The half-open DB is left to the process's end: closing it
			// would touch the same pages again.
			db, err = nil, &DamagedError{Path: path, Err: fmt.Errorf("unreadable, truncated or overwritten (%v)", r)}
		}
	}()
	db, err = bolt.Open(path, 0o600, o)
	if err != nil {
		var pe *fs.PathError
		if errors.Is(err, bolt.ErrTimeout) || errors.As(err, &pe) {
			return nil, err
		}
		return nil, &DamagedError{Path: path, Err: err}
	}
	if err := checkLayout(db); err != nil {
		db.Close()
		return nil, &DamagedError{Path: path, Err: err}
	}
	return db, nil
}

// checkLayout reads every key and value of db (so every page it uses) and
// checks what a ledger holds: the meta and leases buckets, and in each
// lease its terms, its state, its entries and its intents, decodable.
// An empty file (a new ledger) has no buckets yet.
func checkLayout(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		var touched byte
		defer func() { runtime.KeepAlive(touched) }()
		var walk func(b *bolt.Bucket) error
		walk = func(b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					sb := b.Bucket(k)
					if sb == nil {
						return fmt.Errorf("key %q is neither a value nor a bucket", k)
					}
					return walk(sb)
				}
				// Touch the value's last byte: a value past the end of
				// the file faults here, under this goroutine's guard.
				if len(v) > 0 {
					touched ^= v[len(v)-1]
				}
				return nil
			})
		}
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) }); err != nil {
			return err
		}
		leases := tx.Bucket(bucketLeases)
		if tx.Bucket(bucketMeta) == nil {
			if leases != nil {
				return errors.New("no meta bucket")
			}
			return nil // a new ledger
		}
		if leases == nil {
			return errors.New("no leases bucket")
		}
		return leases.ForEach(func(name, v []byte) error {
			lb := leases.Bucket(name)
			if lb == nil {
				return fmt.Errorf("lease %q is not a bucket", name)
			}
			if lb.Bucket(bucketEntries) == nil {
				return fmt.Errorf("lease %s has no entries", name)
			}
			if _, err := readLease(lb); err != nil {
				return fmt.Errorf("lease %s: %w", name, err)
			}
			return nil
		})
	})
}

// SetAside renames a damaged ledger file out of the way, to
// PATH.damaged-TIMESTAMP, and returns the new name: the file is kept
// (what it still holds may be recovered by hand) and the next Open of
// path starts an empty ledger.
func SetAside(path string, now time.Time) (string, error) { return atomicfile.SetAside(path, now) }
