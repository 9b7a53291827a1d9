package pay

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Roles of a ledger's leases.
const (
	RoleRenter   = "renter"
	RoleProvider = "provider"
)

// Entry kinds.
const (
	// EntryOpen: the lease's payments began, on these terms.
	EntryOpen = "open"
	// EntryBill: a usage report and what it adds to the bill.
	EntryBill = "bill"
	// EntryIntent: a payment about to be sent (renter) or a request
	// about to be sent (provider).
	EntryIntent = "intent"
	// EntryPaid: the renter's payment is done.
	EntryPaid = "paid"
	// EntryCredit: the provider counted a payment.
	EntryCredit = "credit"
	// EntryFailed: an intent failed or was withdrawn.
	EntryFailed = "failed"
	// EntryRejected: the provider refused a proof (a bad voucher).
	EntryRejected = "rejected"
	// EntryClose: the lease's payments ended.
	EntryClose = "close"
)

// Errors of the ledger.
var (
	// ErrLeaseOpen: the lease's account is open already in this process.
	ErrLeaseOpen = errors.New("lease account already open")
	// ErrLeaseTerms: a lease is resumed with another role or method.
	ErrLeaseTerms = errors.New("lease resumed on other terms")
	// ErrNoLease: the ledger has no such lease.
	ErrNoLease = errors.New("no such lease in the ledger")
	// ErrClosed: the lease's account is closed.
	ErrClosed = errors.New("lease account closed")
	// ErrDuplicate: an intent with that ID exists already: paying it
	// again would pay twice.
	ErrDuplicate = errors.New("payment recorded already")
)

// Entry is one line of a lease's history.
type Entry struct {
	Lease string `json:"lease"`
	// N numbers the lease's entries from 1.
	N    uint64    `json:"n"`
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	// Msat is the entry's amount: billed, paid, asked or counted.
	Msat uint64 `json:"msat,omitempty"`
	// Billed and Paid are the lease's totals after the entry; Paid is
	// what the provider counted, on a provider's ledger.
	Billed uint64 `json:"billed_msat"`
	Paid   uint64 `json:"paid_msat"`
	// Report is the encoded usage report billed (EntryBill).
	Report json.RawMessage `json:"report,omitempty"`
	Bill   *Bill           `json:"bill,omitempty"`
	// Intent is the ID of the intent the entry is about.
	Intent string `json:"intent,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Terms are a lease's payment terms as the ledger keeps them.
type Terms struct {
	Lease string `json:"lease"`
	// Role is RoleRenter or RoleProvider: whose ledger this is.
	Role   string `json:"role"`
	Method string `json:"method"`
	Rates  Rates  `json:"rates"`
	// Peer is the other party's SSH key fingerprint: the provider's host
	// key on a renter's ledger, the renter's key on a provider's.
	Peer string `json:"peer,omitempty"`
	// MinPayable is the least amount paid at once, in msat.
	MinPayable uint64 `json:"min_payable_msat"`
	// Prepay is owed from the start, before any report: the price of the
	// host's first interval at its limits, which a provider asks up front
	// of renters it does not know, raised to MinPayable. The bill counts
	// against it: the renter owes the larger of its bill and Prepay.
	Prepay uint64    `json:"prepay_msat,omitempty"`
	Opened time.Time `json:"opened"`
}

// accountState is a lease's running state, rewritten with every entry.
type accountState struct {
	Acc     AccumulatorState `json:"acc"`
	Reports uint64           `json:"reports"`
	// Paid is what the renter paid, or the provider counted.
	Paid uint64 `json:"paid_msat"`
	// Pending is what the renter has in flight, or the provider has
	// asked and not yet counted.
	Pending uint64 `json:"pending_msat"`
	Fees    uint64 `json:"fee_msat"`
	// Intents is the number of intents made; the next has Seq Intents+1.
	Intents uint64 `json:"intents"`
	// Claim is the latest voucher: signed (renter) or accepted (provider).
	Claim       *Voucher  `json:"claim,omitempty"`
	LastBill    time.Time `json:"last_bill,omitzero"`
	LastPaid    time.Time `json:"last_paid,omitzero"`
	UnpaidSince time.Time `json:"unpaid_since,omitzero"`
	Closed      time.Time `json:"closed,omitzero"`
}

// LedgerVersion is the version of the ledger's layout.
const LedgerVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketLeases  = []byte("leases")
	bucketEntries = []byte("entries")
	bucketIntents = []byte("intents")
	keyVersion    = []byte("version")
	keyTerms      = []byte("terms")
	keyState      = []byte("state")
)

// Options configure a Ledger.
type Options struct {
	// Timeout bounds the wait for another process's lock on the file;
	// 0 waits a second.
	Timeout time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Logger receives the ledger's log lines; nil discards them.
	Logger *slog.Logger
}

// Ledger is a party's record of its leases' reports, bills and payments in
// a bbolt file. Every change is one transaction, fsynced before the method
// that makes it returns: what a Renter or Provider acts on has been
// recorded first. One process holds a ledger file at a time.
type Ledger struct {
	db  *bolt.DB
	now func() time.Time
	log *slog.Logger

	mu   sync.Mutex
	open map[string]bool
}

// Open opens or creates the ledger at path. A file that is not a readable
// ledger is a *DamagedError (errors.Is ErrDamaged), never a crash: the
// caller says so and may SetAside the file.
func Open(path string, opts *Options) (*Ledger, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := openBolt(path, &bolt.Options{Timeout: o.Timeout, FreelistType: bolt.FreelistMapType})
	var de *DamagedError
	if errors.As(err, &de) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil {
			if len(v) != 4 || binary.BigEndian.Uint32(v) != LedgerVersion {
				return fmt.Errorf("ledger layout version %x, this build reads %d", v, LedgerVersion)
			}
		} else if err := meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, LedgerVersion)); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bucketLeases)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	return &Ledger{db: db, now: o.Now, log: o.Logger.With("subsystem", "pay"), open: map[string]bool{}}, nil
}

// Close closes the ledger file.
func (l *Ledger) Close() error {
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("close ledger: %w", err)
	}
	return nil
}

// Path is the ledger's file.
func (l *Ledger) Path() string { return l.db.Path() }

// claim marks lease open in this process.
func (l *Ledger) claim(lease string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[lease] {
		return fmt.Errorf("%w: %s", ErrLeaseOpen, lease)
	}
	l.open[lease] = true
	return nil
}

func (l *Ledger) release(lease string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.open, lease)
}

// loaded is a lease as read from the ledger.
type loaded struct {
	terms   Terms
	st      accountState
	pending []Intent
}

// openLease loads lease, or creates it with terms (Opened set now) when it
// is new. A resumed lease must have the same role and method.
func (l *Ledger) openLease(terms Terms) (loaded, bool, error) {
	var out loaded
	created := false
	err := l.db.Update(func(tx *bolt.Tx) error {
		leases := tx.Bucket(bucketLeases)
		if lb := leases.Bucket([]byte(terms.Lease)); lb != nil {
			var err error
			out, err = readLease(lb)
			if err != nil {
				return err
			}
			if out.terms.Role != terms.Role || out.terms.Method != terms.Method {
				return fmt.Errorf("%w: %s was a %s lease paid by %s, not a %s lease paid by %s", ErrLeaseTerms,
					terms.Lease, out.terms.Role, out.terms.Method, terms.Role, terms.Method)
			}
			return nil
		}
		created = true
		terms.Opened = l.now().UTC()
		lb, err := leases.CreateBucket([]byte(terms.Lease))
		if err != nil {
			return err
		}
		if _, err := lb.CreateBucket(bucketEntries); err != nil {
			return err
		}
		if _, err := lb.CreateBucket(bucketIntents); err != nil {
			return err
		}
		if err := putJSON(lb, keyTerms, terms); err != nil {
			return err
		}
		st := accountState{Acc: AccumulatorState{Carry: "0"}}
		if err := putJSON(lb, keyState, st); err != nil {
			return err
		}
		out = loaded{terms: terms, st: st}
		return appendEntry(lb, Entry{Lease: terms.Lease, Time: terms.Opened, Kind: EntryOpen,
			Note: fmt.Sprintf("%s paying by %s", terms.Role, terms.Method)})
	})
	if err != nil {
		return loaded{}, false, fmt.Errorf("open lease %s in ledger: %w", terms.Lease, err)
	}
	return out, created, nil
}

func readLease(lb *bolt.Bucket) (loaded, error) {
	var out loaded
	if err := getJSON(lb, keyTerms, &out.terms); err != nil {
		return out, err
	}
	if err := getJSON(lb, keyState, &out.st); err != nil {
		return out, err
	}
	ib := lb.Bucket(bucketIntents)
	if ib == nil {
		return out, errors.New("lease without intents")
	}
	err := ib.ForEach(func(k, v []byte) error {
		in, err := decodeIntent(v)
		if err != nil {
			return fmt.Errorf("intent %q: %w", k, err)
		}
		if in.State == StatePending {
			out.pending = append(out.pending, in)
		}
		return nil
	})
	slices.SortFunc(out.pending, func(a, b Intent) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, err
}

// change is one transaction on a lease: the new state, intents to write
// (new or resolved), entries to append.
type change struct {
	state   accountState
	intents []Intent
	// newIntent, when set, must not exist yet (ErrDuplicate).
	newIntent string
	// resolve lists intents that must still be pending in the ledger.
	resolve []string
	entries []Entry
}

// commit writes c in one fsynced transaction. Entries get their numbers and
// the lease's totals from c.state.
func (l *Ledger) commit(lease string, c change) error {
	err := l.db.Update(func(tx *bolt.Tx) error {
		lb := tx.Bucket(bucketLeases).Bucket([]byte(lease))
		if lb == nil {
			return fmt.Errorf("%w: %s", ErrNoLease, lease)
		}
		ib := lb.Bucket(bucketIntents)
		if c.newIntent != "" && ib.Get([]byte(c.newIntent)) != nil {
			return fmt.Errorf("%w: %s", ErrDuplicate, c.newIntent)
		}
		for _, id := range c.resolve {
			v := ib.Get([]byte(id))
			if v == nil {
				return fmt.Errorf("%w: intent %s", ErrUnknownPayment, id)
			}
			in, err := decodeIntent(v)
			if err != nil {
				return err
			}
			if in.State != StatePending {
				return fmt.Errorf("%w: intent %s is %s already", ErrDuplicate, id, in.State)
			}
		}
		for _, in := range c.intents {
			if err := putJSON(ib, []byte(in.ID), in); err != nil {
				return err
			}
		}
		if err := putJSON(lb, keyState, c.state); err != nil {
			return err
		}
		for _, e := range c.entries {
			e.Lease = lease
			e.Billed, e.Paid = c.state.Acc.Billed, c.state.Paid
			if err := appendEntry(lb, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record in ledger: %w", err)
	}
	return nil
}

func appendEntry(lb *bolt.Bucket, e Entry) error {
	eb := lb.Bucket(bucketEntries)
	n, err := eb.NextSequence()
	if err != nil {
		return err
	}
	e.N = n
	return putJSON(eb, binary.BigEndian.AppendUint64(nil, n), e)
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return fmt.Errorf("no %s", key)
	}
	if err := decodeStrict(data, v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// decodeIntent reads an intent record.
func decodeIntent(b []byte) (Intent, error) {
	var in Intent
	if err := decodeStrict(b, &in); err != nil {
		return Intent{}, fmt.Errorf("decode intent: %w", err)
	}
	switch in.State {
	case StatePending, StateDone, StateFailed:
	default:
		return Intent{}, fmt.Errorf("decode intent: state %q", in.State)
	}
	if in.ID == "" || !knownMethod(in.Method) {
		return Intent{}, fmt.Errorf("decode intent: id %q method %q", in.ID, in.Method)
	}
	return in, nil
}

// decodeEntry reads an entry record.
func decodeEntry(b []byte) (Entry, error) {
	var e Entry
	if err := decodeStrict(b, &e); err != nil {
		return Entry{}, fmt.Errorf("decode ledger entry: %w", err)
	}
	if e.N == 0 || e.Kind == "" {
		return Entry{}, fmt.Errorf("decode ledger entry: number %d kind %q", e.N, e.Kind)
	}
	return e, nil
}

// Query selects entries for History. Zero fields select everything.
type Query struct {
	// Lease selects one lease.
	Lease string
	// Since and Until bound the entries' times, Until excluded.
	Since, Until time.Time
	// Kinds selects entry kinds.
	Kinds []string
	// Limit keeps the last Limit entries.
	Limit int
}

// History returns the entries q selects, oldest first (by time, then
// lease and number).
func (l *Ledger) History(q Query) ([]Entry, error) {
	var out []Entry
	err := l.db.View(func(tx *bolt.Tx) error {
		leases := tx.Bucket(bucketLeases)
		return leases.ForEachBucket(func(name []byte) error {
			if q.Lease != "" && string(name) != q.Lease {
				return nil
			}
			eb := leases.Bucket(name).Bucket(bucketEntries)
			return eb.ForEach(func(_, v []byte) error {
				e, err := decodeEntry(v)
				if err != nil {
					return &DamagedError{Path: l.db.Path(), Err: fmt.Errorf("lease %s: %w", name, err)}
				}
				if !q.Since.IsZero() && e.Time.Before(q.Since) || !q.Until.IsZero() && !e.Time.Before(q.Until) {
					return nil
				}
				if len(q.Kinds) > 0 && !slices.Contains(q.Kinds, e.Kind) {
					return nil
				}
				out = append(out, e)
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger history: %w", err)
	}
	if q.Lease != "" && len(out) == 0 {
		if _, err := l.Receipt(q.Lease); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := bytes.Compare([]byte(a.Lease), []byte(b.Lease)); c != 0 {
			return c
		}
		return cmp.Compare(a.N, b.N)
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// Receipt is a lease's account: its terms and where its payments stand.
type Receipt struct {
	Terms  Terms  `json:"terms"`
	Status Status `json:"status"`
}

// Receipt returns lease's receipt.
func (l *Ledger) Receipt(lease string) (Receipt, error) {
	var r Receipt
	err := l.db.View(func(tx *bolt.Tx) error {
		lb := tx.Bucket(bucketLeases).Bucket([]byte(lease))
		if lb == nil {
			return fmt.Errorf("%w: %s", ErrNoLease, lease)
		}
		ld, err := readLease(lb)
		if err != nil {
			return err
		}
		r = receiptOf(ld)
		return nil
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("ledger receipt: %w", err)
	}
	return r, nil
}

// Receipts returns every lease's receipt, in the order they were opened.
func (l *Ledger) Receipts() ([]Receipt, error) {
	var out []Receipt
	err := l.db.View(func(tx *bolt.Tx) error {
		leases := tx.Bucket(bucketLeases)
		return leases.ForEachBucket(func(name []byte) error {
			ld, err := readLease(leases.Bucket(name))
			if err != nil {
				return fmt.Errorf("lease %s: %w", name, err)
			}
			out = append(out, receiptOf(ld))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger receipts: %w", err)
	}
	slices.SortStableFunc(out, func(a, b Receipt) int { return a.Terms.Opened.Compare(b.Terms.Opened) })
	return out, nil
}

// Pending returns every lease's pending intents: what Reconcile must
// resolve after a crash.
func (l *Ledger) Pending() ([]Intent, error) {
	var out []Intent
	err := l.db.View(func(tx *bolt.Tx) error {
		leases := tx.Bucket(bucketLeases)
		return leases.ForEachBucket(func(name []byte) error {
			ld, err := readLease(leases.Bucket(name))
			if err != nil {
				return fmt.Errorf("lease %s: %w", name, err)
			}
			out = append(out, ld.pending...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger pending: %w", err)
	}
	return out, nil
}

func receiptOf(ld loaded) Receipt {
	return Receipt{Terms: ld.terms, Status: statusOf(ld.terms, ld.st, ld.terms.MinPayable)}
}

// Totals add up receipts.
type Totals struct {
	Leases  int    `json:"leases"`
	Billed  uint64 `json:"billed_msat"`
	Paid    uint64 `json:"paid_msat"`
	Pending uint64 `json:"pending_msat"`
	Due     uint64 `json:"due_msat"`
	Fees    uint64 `json:"fee_msat"`
}

// Total adds up the receipts of one role ("" for all).
func Total(rs []Receipt, role string) Totals {
	var t Totals
	for _, r := range rs {
		if role != "" && r.Terms.Role != role {
			continue
		}
		t.Leases++
		t.Billed += r.Status.Billed
		t.Paid += r.Status.Paid
		t.Pending += r.Status.Pending
		t.Due += r.Status.Due
		t.Fees += r.Status.Fees
	}
	return t
}
