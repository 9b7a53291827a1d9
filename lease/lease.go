// Package lease is the provider's book of leases: it checks demands against
// capacity, creates one sandbox per granted host, lets only the lease's owner
// in, and ends leases (on release, on the renter's disconnect, on shutdown),
// destroying their sandboxes.
package lease

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
)

// Runtime is the sandbox runtime the manager drives; *sandbox.Runtime is the
// real one.
type Runtime interface {
	Create(ctx context.Context, s sandbox.Spec) error
	Destroy(ctx context.Context, id string) error
	Command(ctx context.Context, id string, argv ...string) *exec.Cmd
	Bundles() ([]string, error)
}

// Paths inside every sandbox where the provider binds the agent.
const (
	AgentBinary    = "/.zennet/bin/zennet"
	AgentConfigDir = "/.zennet/etc"
)

// Capacity is what the provider sells at most, across all live leases.
type Capacity struct {
	Leases int
	Memory int64
	CPUs   float64
}

// Config configures a Manager.
type Config struct {
	Runtime Runtime
	// AgentBinary is a statically linked zennet binary on the host, bound
	// read-only into every sandbox to serve SSH inside it.
	AgentBinary string
	// Dir keeps each lease's agent configuration (host key, authorized key).
	Dir      string
	Capacity Capacity
	Log      *slog.Logger
	// Parallel bounds concurrent sandbox creations (default 8).
	Parallel int
}

// Lease is one granted host.
type Lease struct {
	ID      string
	Owner   ssh.PublicKey
	Holder  string
	Limits  proto.Limits
	HostKey ssh.PublicKey
	Started time.Time
}

// Proto returns the lease as sent to the renter.
func (l *Lease) Proto() proto.Lease {
	return proto.Lease{
		ID:      l.ID,
		Limits:  l.Limits,
		HostKey: string(ssh.MarshalAuthorizedKey(l.HostKey)[:len(ssh.MarshalAuthorizedKey(l.HostKey))-1]),
		Started: l.Started,
	}
}

// Manager holds the live leases.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	leases   map[string]*Lease
	reserved Capacity // capacity held by live leases and grants in progress
	closed   bool
}

// ErrShutdown is returned for grants after Shutdown.
var ErrShutdown = errors.New("provider is shutting down")

// New checks cfg and returns a manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("lease manager needs a sandbox runtime")
	}
	if err := CheckAgentBinary(cfg.AgentBinary); err != nil {
		return nil, err
	}
	if cfg.Capacity.Leases < 1 || cfg.Capacity.Memory < proto.MinMemory || cfg.Capacity.CPUs <= 0 {
		return nil, fmt.Errorf("capacity %+v: need at least one lease, 64M of memory and some CPU", cfg.Capacity)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create lease dir: %w", err)
	}
	if cfg.Parallel < 1 {
		cfg.Parallel = 8
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: log.With("subsystem", "lease"), leases: map[string]*Lease{}}, nil
}

// CheckAgentBinary makes sure path is a statically linked executable: it
// runs inside a root filesystem that is not the host's.
func CheckAgentBinary(path string) error {
	if path == "" {
		return errors.New("no agent binary configured")
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("agent binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("agent binary %s is dynamically linked; build zennet with CGO_ENABLED=0 ('make build') or pass --agent-binary", path)
		}
	}
	return nil
}

// Free returns the capacity not held by leases.
func (m *Manager) Free() Capacity {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.freeLocked()
}

func (m *Manager) freeLocked() Capacity {
	c := m.cfg.Capacity
	return Capacity{Leases: c.Leases - m.reserved.Leases, Memory: c.Memory - m.reserved.Memory, CPUs: c.CPUs - m.reserved.CPUs}
}

// Offer answers a demand with how many hosts can be had now.
func (m *Manager) Offer(d proto.Demand) (proto.Offer, error) {
	if err := d.Validate(); err != nil {
		return proto.Offer{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return proto.Offer{}, ErrShutdown
	}
	n := fit(m.freeLocked(), d.Limits, d.Count)
	if n == 0 {
		return proto.Offer{}, fmt.Errorf("%w: %s", proto.ErrCapacity, m.describeFreeLocked(d.Limits))
	}
	return proto.Offer{Count: n, Limits: d.Limits, Expiry: time.Now().Add(time.Minute).UTC()}, nil
}

func (m *Manager) describeFreeLocked(l proto.Limits) string {
	f := m.freeLocked()
	return fmt.Sprintf("free: %d leases, %d MiB, %.2f CPUs; one host needs %d MiB and %.2f CPUs",
		max(f.Leases, 0), max(f.Memory, 0)>>20, max(f.CPUs, 0), l.MemoryBytes>>20, l.CPUs)
}

// fit returns how many hosts of limits l fit in free, up to want.
func fit(free Capacity, l proto.Limits, want int) int {
	n := min(want, free.Leases)
	n = min(n, int(free.Memory/l.MemoryBytes))
	n = min(n, int(free.CPUs/l.CPUs+1e-9))
	return max(n, 0)
}

// Grant creates n hosts for owner, all or none. holder names the renter's
// negotiation session; EndHolder ends what it holds.
func (m *Manager) Grant(ctx context.Context, owner ssh.PublicKey, holder string, n int, l proto.Limits) ([]*Lease, error) {
	d := proto.Demand{Count: n, Limits: l}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	need := Capacity{Leases: n, Memory: int64(n) * l.MemoryBytes, CPUs: float64(n) * l.CPUs}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrShutdown
	}
	if fit(m.freeLocked(), l, n) < n {
		msg := m.describeFreeLocked(l)
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %d hosts wanted; %s", proto.ErrCapacity, n, msg)
	}
	m.reserved = add(m.reserved, need, 1)
	m.mu.Unlock()

	leases := make([]*Lease, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.cfg.Parallel)
	for i := range leases {
		g.Go(func() error {
			le, err := m.create(gctx, owner, holder, l)
			leases[i] = le
			return err
		})
	}
	err := g.Wait()
	if err != nil {
		for _, le := range leases {
			if le != nil {
				m.destroy(context.WithoutCancel(ctx), le)
			}
		}
		m.mu.Lock()
		m.reserved = add(m.reserved, need, -1)
		m.mu.Unlock()
		return nil, err
	}
	m.mu.Lock()
	for _, le := range leases {
		m.leases[le.ID] = le
	}
	m.mu.Unlock()
	return leases, nil
}

func add(a, b Capacity, sign int) Capacity {
	return Capacity{Leases: a.Leases + sign*b.Leases, Memory: a.Memory + int64(sign)*b.Memory, CPUs: a.CPUs + float64(sign)*b.CPUs}
}

// NewID returns a fresh lease id of the fixed length.
func NewID() string {
	var b [9]byte
	rand.Read(b[:])
	return proto.LeaseIDPrefix + hex.EncodeToString(b[:])[:proto.LeaseIDLen-len(proto.LeaseIDPrefix)]
}

func (m *Manager) create(ctx context.Context, owner ssh.PublicKey, holder string, l proto.Limits) (*Lease, error) {
	id := NewID()
	dir := filepath.Join(m.cfg.Dir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "zennet lease "+id)
	if err != nil {
		return nil, err
	}
	hostKey, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "host_key"), pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(owner), 0o600); err != nil {
		return nil, err
	}
	le := &Lease{ID: id, Owner: owner, Holder: holder, Limits: l, HostKey: hostKey, Started: time.Now().UTC()}
	err = m.cfg.Runtime.Create(ctx, sandbox.Spec{
		ID:          id,
		MemoryBytes: l.MemoryBytes,
		CPUs:        l.CPUs,
		Hostname:    id,
		Args:        []string{AgentBinary, "agent", "init"},
		Mounts: []sandbox.Mount{
			{Source: m.cfg.AgentBinary, Destination: AgentBinary, ReadOnly: true},
			{Source: dir, Destination: AgentConfigDir, ReadOnly: true},
		},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	m.log.Info("lease granted", "lease", id, "owner", ssh.FingerprintSHA256(owner), "memory", l.MemoryBytes, "cpus", l.CPUs)
	return le, nil
}

// Get returns the live lease id if owner holds it. A lease held by someone
// else is reported as not found, so ids cannot be probed.
func (m *Manager) Get(id string, owner ssh.PublicKey) (*Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	le, ok := m.leases[id]
	if !ok || owner == nil || !keysEqual(le.Owner, owner) {
		return nil, fmt.Errorf("%w: %s", proto.ErrNotFound, id)
	}
	return le, nil
}

func keysEqual(a, b ssh.PublicKey) bool {
	return a.Type() == b.Type() && string(a.Marshal()) == string(b.Marshal())
}

// Connect returns an unstarted command that serves one SSH connection on its
// stdio from inside the sandbox of lease id, if owner holds it.
func (m *Manager) Connect(ctx context.Context, id string, owner ssh.PublicKey) (*exec.Cmd, error) {
	if _, err := m.Get(id, owner); err != nil {
		return nil, err
	}
	return m.cfg.Runtime.Command(ctx, id, AgentBinary, "agent", "serve", "--config", AgentConfigDir), nil
}

// End ends lease id of owner and destroys its sandbox.
func (m *Manager) End(ctx context.Context, id string, owner ssh.PublicKey, reason string) error {
	m.mu.Lock()
	le, ok := m.leases[id]
	if !ok || !keysEqual(le.Owner, owner) {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", proto.ErrNotFound, id)
	}
	delete(m.leases, id)
	m.mu.Unlock()
	return m.finish(ctx, le, reason)
}

func (m *Manager) finish(ctx context.Context, le *Lease, reason string) error {
	err := m.destroy(ctx, le)
	m.mu.Lock()
	m.reserved = add(m.reserved, Capacity{Leases: 1, Memory: le.Limits.MemoryBytes, CPUs: le.Limits.CPUs}, -1)
	m.mu.Unlock()
	m.log.Info("lease ended", "lease", le.ID, "reason", reason, "age", time.Since(le.Started).Round(time.Millisecond))
	return err
}

func (m *Manager) destroy(ctx context.Context, le *Lease) error {
	err := m.cfg.Runtime.Destroy(ctx, le.ID)
	if rerr := os.RemoveAll(filepath.Join(m.cfg.Dir, le.ID)); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		m.log.Error("destroy sandbox", "lease", le.ID, "err", err)
	}
	return err
}

// EndHolder ends every lease that holder holds, as when the renter's
// negotiation session goes away.
func (m *Manager) EndHolder(ctx context.Context, holder, reason string) error {
	return m.endWhere(ctx, func(le *Lease) bool { return le.Holder == holder }, reason)
}

func (m *Manager) endWhere(ctx context.Context, match func(*Lease) bool, reason string) error {
	m.mu.Lock()
	var ending []*Lease
	for id, le := range m.leases {
		if match(le) {
			ending = append(ending, le)
			delete(m.leases, id)
		}
	}
	m.mu.Unlock()
	var g errgroup.Group
	g.SetLimit(m.cfg.Parallel)
	for _, le := range ending {
		g.Go(func() error { return m.finish(ctx, le, reason) })
	}
	return g.Wait()
}

// List returns the live leases, oldest first.
func (m *Manager) List() []*Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Lease, 0, len(m.leases))
	for _, le := range m.leases {
		out = append(out, le)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Shutdown refuses new grants and ends every lease.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return m.endWhere(ctx, func(*Lease) bool { return true }, "provider shutting down")
}

// Recover destroys what an earlier run left behind: sandboxes and lease
// directories with no live lease. It runs before the provider takes leases.
func (m *Manager) Recover(ctx context.Context) (int, error) {
	ids, err := m.cfg.Runtime.Bundles()
	if err != nil {
		return 0, err
	}
	ents, _ := os.ReadDir(m.cfg.Dir)
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	for _, e := range ents {
		seen[e.Name()] = true
	}
	var errs []error
	n := 0
	for id := range seen {
		if !proto.ValidLeaseID(id) {
			continue
		}
		m.mu.Lock()
		_, live := m.leases[id]
		m.mu.Unlock()
		if live {
			continue
		}
		n++
		if err := m.destroy(ctx, &Lease{ID: id}); err != nil {
			errs = append(errs, err)
		}
		m.log.Warn("removed leftover sandbox", "lease", id)
	}
	return n, errors.Join(errs...)
}
