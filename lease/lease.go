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
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/zennet/zennet/agent"
	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/internal/atomicfile"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/netsandbox"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
)

// Runtime is the sandbox runtime the manager drives; *sandbox.Runtime is the
// real one.
type Runtime interface {
	Create(ctx context.Context, s sandbox.Spec) error
	Destroy(ctx context.Context, id string) error
	Command(ctx context.Context, id string, argv ...string) *exec.Cmd
	// Wait blocks until the sandbox stops on its own or ctx ends.
	Wait(ctx context.Context, id string) (sandbox.Exit, error)
	// Bundles and Cgroups name what exists of sandboxes on this machine,
	// live or left by a crash.
	Bundles() ([]string, error)
	Cgroups() []string
	// CgroupPath and NetCounters are what the meter reads.
	CgroupPath(id string) string
	NetCounters(id string) (in, out uint64, ok bool)
	// Pause freezes a sandbox; Resume thaws it.
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	// ClusterPort takes frames for a sandbox's cluster link (nil without
	// one); SetHosts rewrites its /etc/hosts with extra lines.
	ClusterPort(id string) interface{ Deliver(frame []byte) }
	SetHosts(id string, extra []byte) error
	// DialGuest connects to a port of the sandbox through its own
	// network (sandbox.ErrNoNetwork without one).
	DialGuest(ctx context.Context, id string, port uint16) (net.Conn, error)
}

// State is where a lease is in its life.
type State int

// The states of a live lease.
const (
	Running State = iota
	// Paused: the sandbox is frozen (for example, while unpaid); its
	// connections hang and new ones are refused until it resumes.
	Paused
)

func (s State) String() string {
	if s == Paused {
		return "paused"
	}
	return "running"
}

// ErrPaused refuses connections to a paused lease.
var ErrPaused = errors.New("lease is paused")

// ErrTooManyConns refuses a connection past a lease's or a renter's cap.
var ErrTooManyConns = errors.New("too many connections")

// Default caps on connections into leases (OpenSSH's MaxSessions is per
// connection; these are per host and per renter key, whatever carries
// them).
const (
	DefaultMaxConnsPerLease  = 64
	DefaultMaxConnsPerRenter = 512
	// MaxExecConnsPerLease caps the connections into one lease that each
	// need a runsc exec process on the host (Connect: a host whose
	// resident agent cannot be reached), which runs outside the lease's
	// cgroup and costs the provider tens of MiB.
	MaxExecConnsPerLease = 4
)

// Paths inside every sandbox where the provider binds the agent.
const (
	AgentBinary    = agent.Binary
	ServeBinary    = agent.ServeBinary
	AgentConfigDir = agent.ConfigDir
)

// FindServeBinary returns the small SSH server binary, zennet-agent, next to
// the zennet binary agentBinary, or "" when there is none (or it is not
// statically linked): 'make build' puts both in bin/.
func FindServeBinary(agentBinary string) string {
	p := filepath.Join(filepath.Dir(agentBinary), "zennet-agent")
	if CheckAgentBinary(p) != nil {
		return ""
	}
	return p
}

// Capacity is what the provider sells at most, across all live leases.
type Capacity struct {
	Leases int
	// Memory is host memory: each host takes what its guest sees plus the
	// sandbox's overhead (sandbox.MemoryOverhead).
	Memory int64
	CPUs   float64
	Disk   int64
}

// Config configures a Manager.
type Config struct {
	Runtime Runtime
	// AgentBinary is a statically linked zennet binary on the host, bound
	// read-only into every sandbox to serve SSH inside it ('zennet agent
	// serve') and to run benchmark steps.
	AgentBinary string
	// ServeBinary, if set, is the statically linked zennet-agent binary
	// (cmd/zennet-agent), bound beside it and run for each SSH connection
	// instead: it starts in a third of the time and takes a fraction of
	// the memory of the renter's sandbox (FindServeBinary).
	ServeBinary string
	// Dir keeps each lease's agent configuration (host key, authorized key).
	Dir      string
	Capacity Capacity
	// PerRenter caps what one renter key may hold at once, in each
	// dimension that is not zero (zero: only Capacity bounds it): a
	// stranger that never pays can take no more than this.
	PerRenter Capacity
	// DefaultDisk is a host's disk when the demand leaves it to the
	// provider (default 4 GiB, at most Capacity.Disk).
	DefaultDisk int64
	// Pids bounds the tasks inside each sandbox (default 1024).
	Pids int64
	// Signer signs usage reports: the provider's SSH host key, which the
	// renter pinned when it connected.
	Signer ssh.Signer
	Log    *slog.Logger
	// Parallel bounds concurrent sandbox creations (default 8).
	Parallel int
	// MaxConnsPerLease and MaxConnsPerRenter cap the connections open at
	// once into one lease and into all of one renter key's leases: each
	// holds the provider's memory and goroutines, and on a host with no
	// network a runsc exec process (0: the defaults).
	MaxConnsPerLease, MaxConnsPerRenter int
	// Fabric carries the frames of sessions' private networks; nil: no
	// grant may put hosts on one.
	Fabric *cluster.Fabric
}

// Join puts the hosts of a grant on a session's private network.
type Join struct {
	Key    cluster.SessionKey
	Subnet netip.Prefix
	// Addrs are the hosts' addresses, one per host granted.
	Addrs []netip.Addr
	// AuthorizedKey is the session's own key: it opens every host of the
	// session, for ssh from one to another. PrivateKey is its private half
	// (OpenSSH PEM), put in each host for that.
	AuthorizedKey ssh.PublicKey
	PrivateKey    []byte
}

// ClusterPort is the port the agent listens on at a host's cluster
// address, for ssh from the session's other hosts.
const ClusterPort = 22

// Lease is one granted host.
type Lease struct {
	ID      string
	Owner   ssh.PublicKey
	Holder  string
	Limits  proto.Limits
	HostKey ssh.PublicKey
	Started time.Time
	// Cluster is the host's place on its session's network; nil for none.
	Cluster *Membership

	state State // guarded by Manager.mu
	pause Pause // guarded by Manager.mu; why it is paused

	// ctx lives as long as the lease: its watcher and every connection
	// into its sandbox end when it is cancelled.
	ctx    context.Context
	cancel context.CancelFunc

	meterMu  sync.Mutex // one report at a time; guards sampler, reporter
	sampler  *meter.Sampler
	reporter *meter.Reporter
	final    *meter.Report // the last report, once the lease ended
	last     *meter.Report // the latest report handed out
}

// Proto returns the lease as sent to the renter.
func (l *Lease) Proto() proto.Lease {
	return proto.Lease{
		ID:      l.ID,
		Limits:  l.Limits,
		HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(l.HostKey))),
		Started: l.Started,
		ClusterAddr: func() string {
			if l.Cluster == nil {
				return ""
			}
			return l.Cluster.Addr.String()
		}(),
	}
}

// Membership is a lease's place on its session's network.
type Membership struct {
	Key  cluster.SessionKey
	Addr netip.Addr
}

// Manager holds the live leases.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	leases   map[string]*Lease
	reserved Capacity // capacity held by live leases and grants in progress
	// byOwner is reserved, by owner key fingerprint.
	byOwner map[string]Capacity
	// conns counts the connections open into each lease, and
	// connsByOwner into each owner's leases; execs those of conns served
	// by a runsc exec.
	conns, connsByOwner, execs map[string]int
	closed                     bool
	draining                   bool
	hold                       string // why new leases are refused for now, if they are
	notifiers                  map[string]func(e proto.Ended, final *meter.Report)
	inflight                   sync.WaitGroup // grants and ends under way
}

// ErrShutdown is returned for grants after Shutdown.
var ErrShutdown = errors.New("provider is shutting down")

// New checks cfg and returns a manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("lease manager needs a sandbox runtime")
	}
	if cfg.Signer == nil {
		return nil, errors.New("lease manager needs a signer for usage reports")
	}
	if err := CheckAgentBinary(cfg.AgentBinary); err != nil {
		return nil, err
	}
	if cfg.ServeBinary != "" {
		if err := CheckAgentBinary(cfg.ServeBinary); err != nil {
			return nil, err
		}
	}
	if cfg.Capacity.Leases < 1 || cfg.Capacity.Memory < proto.MinMemory || cfg.Capacity.CPUs <= 0 || cfg.Capacity.Disk < proto.MinDisk {
		return nil, fmt.Errorf("capacity %+v: need at least one lease, 64M of memory and of disk, and some CPU", cfg.Capacity)
	}
	if cfg.DefaultDisk <= 0 {
		cfg.DefaultDisk = 4 << 30
	}
	cfg.DefaultDisk = min(cfg.DefaultDisk, cfg.Capacity.Disk)
	if cfg.Pids <= 0 {
		cfg.Pids = 1024
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create lease dir: %w", err)
	}
	if cfg.Parallel < 1 {
		cfg.Parallel = 8
	}
	if cfg.MaxConnsPerLease < 1 {
		cfg.MaxConnsPerLease = DefaultMaxConnsPerLease
	}
	if cfg.MaxConnsPerRenter < 1 {
		cfg.MaxConnsPerRenter = DefaultMaxConnsPerRenter
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: log.With("subsystem", "lease"), leases: map[string]*Lease{}, byOwner: map[string]Capacity{}, conns: map[string]int{}, connsByOwner: map[string]int{}, execs: map[string]int{}, notifiers: map[string]func(proto.Ended, *meter.Report){}}, nil
}

// mounts are what every sandbox gets bound: the agent binaries and the
// lease's agent configuration in dir.
func (m *Manager) mounts(dir string) []sandbox.Mount {
	ms := []sandbox.Mount{
		{Source: m.cfg.AgentBinary, Destination: AgentBinary, ReadOnly: true},
		{Source: dir, Destination: AgentConfigDir, ReadOnly: true},
	}
	if m.cfg.ServeBinary != "" {
		ms = append(ms, sandbox.Mount{Source: m.cfg.ServeBinary, Destination: ServeBinary, ReadOnly: true})
	}
	return ms
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
	return add(m.cfg.Capacity, m.reserved, -1)
}

// freeForLocked is what owner may still take: the free capacity within
// the per-renter cap, and whether that cap is what binds.
func (m *Manager) freeForLocked(owner ssh.PublicKey) (free Capacity, capped bool) {
	free = m.freeLocked()
	c := m.cfg.PerRenter
	if c == (Capacity{}) || owner == nil {
		return free, false
	}
	left := add(c, m.byOwner[ssh.FingerprintSHA256(owner)], -1)
	if c.Leases > 0 && left.Leases < free.Leases {
		free.Leases, capped = left.Leases, true
	}
	if c.Memory > 0 && left.Memory < free.Memory {
		free.Memory, capped = left.Memory, true
	}
	if c.CPUs > 0 && left.CPUs < free.CPUs {
		free.CPUs, capped = left.CPUs, true
	}
	if c.Disk > 0 && left.Disk < free.Disk {
		free.Disk, capped = left.Disk, true
	}
	return free, capped
}

// reserveLocked adds (sign 1) or returns (sign -1) c held by owner.
func (m *Manager) reserveLocked(owner ssh.PublicKey, c Capacity, sign int) {
	m.reserved = add(m.reserved, c, sign)
	if owner == nil {
		return
	}
	fp := ssh.FingerprintSHA256(owner)
	if left := add(m.byOwner[fp], c, sign); left.Leases > 0 {
		m.byOwner[fp] = left
	} else {
		delete(m.byOwner, fp)
	}
}

// refusalLocked says why owner gets no host of limits l.
func (m *Manager) refusalLocked(owner ssh.PublicKey, l proto.Limits) string {
	if _, capped := m.freeForLocked(owner); capped {
		c, held := m.cfg.PerRenter, m.byOwner[ssh.FingerprintSHA256(owner)]
		return fmt.Sprintf("this provider sells at most %s to one renter key, and key %s holds %d leases, %d MiB, %.2f CPUs, %d MiB disk; one host needs %d MiB (with sandbox overhead), %.2f CPUs, %d MiB disk",
			describeCap(c), ssh.FingerprintSHA256(owner), held.Leases, held.Memory>>20, held.CPUs, held.Disk>>20, need(1, l).Memory>>20, l.CPUs, l.DiskBytes>>20)
	}
	return m.describeFreeLocked(l)
}

// describeCap names the dimensions of a per-renter cap that are set.
func describeCap(c Capacity) string {
	var parts []string
	if c.Leases > 0 {
		parts = append(parts, fmt.Sprintf("%d leases", c.Leases))
	}
	if c.Memory > 0 {
		parts = append(parts, fmt.Sprintf("%d MiB", c.Memory>>20))
	}
	if c.CPUs > 0 {
		parts = append(parts, fmt.Sprintf("%.2f CPUs", c.CPUs))
	}
	if c.Disk > 0 {
		parts = append(parts, fmt.Sprintf("%d MiB disk", c.Disk>>20))
	}
	return strings.Join(parts, ", ")
}

// withDefaults fills what a demand leaves to the provider.
func (m *Manager) withDefaults(l proto.Limits) proto.Limits {
	if l.DiskBytes == 0 {
		l.DiskBytes = m.cfg.DefaultDisk
	}
	return l
}

// need is the capacity n hosts of limits l take.
func need(n int, l proto.Limits) Capacity {
	host := l.MemoryBytes + sandbox.MemoryOverhead(l.MemoryBytes)
	return Capacity{Leases: n, Memory: int64(n) * host, CPUs: float64(n) * l.CPUs, Disk: int64(n) * l.DiskBytes}
}

// Offer answers owner's demand with how many hosts it can have now.
func (m *Manager) Offer(owner ssh.PublicKey, d proto.Demand) (proto.Offer, error) {
	if err := d.Validate(); err != nil {
		return proto.Offer{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return proto.Offer{}, ErrShutdown
	}
	if m.draining {
		return proto.Offer{}, fmt.Errorf("%w: the provider is draining: it takes no new leases", proto.ErrCapacity)
	}
	if m.hold != "" {
		return proto.Offer{}, fmt.Errorf("%w: %s: no new leases for now", proto.ErrCapacity, m.hold)
	}
	l := m.withDefaults(d.Limits)
	free, _ := m.freeForLocked(owner)
	n := fit(free, l, d.Count)
	if n == 0 {
		return proto.Offer{}, fmt.Errorf("%w: %s", proto.ErrCapacity, m.refusalLocked(owner, l))
	}
	iv := d.IntervalSeconds
	if iv == 0 {
		iv = proto.DefaultInterval
	}
	return proto.Offer{Count: n, Limits: l, Expiry: time.Now().Add(time.Minute).UTC(), IntervalSeconds: iv}, nil
}

func (m *Manager) describeFreeLocked(l proto.Limits) string {
	f := m.freeLocked()
	return fmt.Sprintf("free: %d leases, %d MiB, %.2f CPUs, %d MiB disk; one host needs %d MiB (with sandbox overhead), %.2f CPUs, %d MiB disk",
		max(f.Leases, 0), max(f.Memory, 0)>>20, max(f.CPUs, 0), max(f.Disk, 0)>>20, need(1, l).Memory>>20, l.CPUs, l.DiskBytes>>20)
}

// fit returns how many hosts of limits l fit in free, up to want.
func fit(free Capacity, l proto.Limits, want int) int {
	n := min(want, free.Leases)
	n = min(n, int(free.Memory/need(1, l).Memory))
	n = min(n, int(free.CPUs/l.CPUs+1e-9))
	if l.DiskBytes > 0 {
		n = min(n, int(free.Disk/l.DiskBytes))
	}
	return max(n, 0)
}

// Grant creates n hosts for owner, all or none. holder names the renter's
// negotiation session; EndHolder ends what it holds. join, if not nil, puts
// them on a session's private network.
func (m *Manager) Grant(ctx context.Context, owner ssh.PublicKey, holder string, n int, l proto.Limits, join *Join) ([]*Lease, error) {
	return m.GrantProgress(ctx, owner, holder, n, l, join, nil)
}

// GrantProgress is Grant, calling started (if not nil) with how many of
// the n hosts have started as each one has (its agent answers), in order
// 1..n, from the goroutines that start them: started must not block long.
func (m *Manager) GrantProgress(ctx context.Context, owner ssh.PublicKey, holder string, n int, l proto.Limits, join *Join, started func(int)) ([]*Lease, error) {
	d := proto.Demand{Count: n, Limits: l}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if join != nil {
		if err := m.checkJoin(owner, n, join); err != nil {
			return nil, err
		}
	}
	l = m.withDefaults(l)
	need := need(n, l)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrShutdown
	}
	m.inflight.Add(1)
	defer m.inflight.Done()
	if m.draining {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: the provider is draining: it takes no new leases", proto.ErrCapacity)
	}
	if m.hold != "" { // set since the offer
		reason := m.hold
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %s: no new leases for now", proto.ErrCapacity, reason)
	}
	if free, _ := m.freeForLocked(owner); fit(free, l, n) < n {
		msg := m.refusalLocked(owner, l)
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %d hosts wanted; %s", proto.ErrCapacity, n, msg)
	}
	m.reserveLocked(owner, need, 1)
	m.mu.Unlock()

	leases := make([]*Lease, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.cfg.Parallel)
	var startedMu sync.Mutex
	count := 0
	for i := range leases {
		g.Go(func() error {
			var place *placement
			if join != nil {
				place = &placement{join: join, addr: join.Addrs[i]}
			}
			le, err := m.create(gctx, owner, holder, l, place)
			leases[i] = le
			if err == nil && started != nil {
				startedMu.Lock() // the counts go out in order
				count++
				started(count)
				startedMu.Unlock()
			}
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
		m.reserveLocked(owner, need, -1)
		m.mu.Unlock()
		return nil, err
	}
	m.mu.Lock()
	if m.closed { // Shutdown began while the sandboxes were starting
		m.reserveLocked(owner, need, -1)
		m.mu.Unlock()
		for _, le := range leases {
			m.destroy(context.WithoutCancel(ctx), le)
		}
		return nil, ErrShutdown
	}
	for _, le := range leases {
		m.leases[le.ID] = le
		le.ctx, le.cancel = context.WithCancel(context.Background())
		go m.watch(le.ctx, le)
	}
	m.mu.Unlock()
	return leases, nil
}

// watch ends le when its sandbox stops on its own (a memory overrun, a
// crash) and tells the holder why.
func (m *Manager) watch(ctx context.Context, le *Lease) {
	exit, err := m.cfg.Runtime.Wait(ctx, le.ID)
	if ctx.Err() != nil {
		return // ended by us
	}
	e := proto.Ended{ID: le.ID, Cause: proto.EndSandboxExited, Reason: exit.Reason()}
	if err != nil {
		e.Reason = "lost track of the sandbox: " + err.Error()
	}
	if exit.OOM {
		e.Cause = proto.EndMemoryExceeded
		e.Reason = fmt.Sprintf("memory limit exceeded: the host used more than its %d MiB (plus %d MiB sandbox overhead) and was stopped",
			le.Limits.MemoryBytes>>20, sandbox.MemoryOverhead(le.Limits.MemoryBytes)>>20)
	}
	m.mu.Lock()
	if cur, ok := m.leases[le.ID]; !ok || cur != le {
		m.mu.Unlock()
		return
	}
	delete(m.leases, le.ID)
	notify := m.notifiers[le.Holder]
	m.inflight.Add(1)
	m.mu.Unlock()
	defer m.inflight.Done()
	m.log.Warn("sandbox stopped on its own", "lease", le.ID, "cause", e.Cause, "reason", e.Reason, "console", exit.Console)
	m.finish(context.Background(), le, e.Cause, e.Reason)
	if notify != nil {
		notify(e, le.final)
	}
}

// Report samples lease id's sandbox and returns a signed, cumulative usage
// report; after the lease ended, it returns the final one.
func (m *Manager) Report(id string) (meter.Report, error) {
	m.mu.Lock()
	le, ok := m.leases[id]
	m.mu.Unlock()
	if !ok {
		return meter.Report{}, fmt.Errorf("%w: %s", proto.ErrNotFound, id)
	}
	return le.report()
}

func (le *Lease) report() (meter.Report, error) {
	le.meterMu.Lock()
	defer le.meterMu.Unlock()
	if le.final != nil {
		return *le.final, nil
	}
	if le.reporter == nil {
		return meter.Report{}, errors.New("lease is not metered")
	}
	r, err := le.reporter.Next()
	if err != nil && !errors.Is(err, meter.ErrGone) {
		return r, fmt.Errorf("usage of %s: %w", le.ID, err)
	}
	le.last = &r
	return r, nil
}

// Last returns the latest report of lease id handed out, without taking
// a new one (which would take a sequence number from the renter's).
func (m *Manager) Last(id string) (meter.Report, bool) {
	m.mu.Lock()
	le, ok := m.leases[id]
	m.mu.Unlock()
	if !ok {
		return meter.Report{}, false
	}
	le.meterMu.Lock()
	defer le.meterMu.Unlock()
	if le.last == nil {
		return meter.Report{}, false
	}
	return *le.last, true
}

// SetDraining makes the manager refuse new leases (on) or take them again.
// Live leases go on.
func (m *Manager) SetDraining(on bool) {
	m.mu.Lock()
	m.draining = on
	m.mu.Unlock()
	m.log.Info("draining", "on", on)
}

// SetHold refuses new leases for now, saying why (the owner is using the
// machine); "" takes them again. Unlike draining, it is the provider's
// own passing state, not the operator's.
func (m *Manager) SetHold(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hold = reason
}

// Draining reports whether new leases are refused.
func (m *Manager) Draining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.draining
}

// Capacity returns what the manager sells in all.
func (m *Manager) Capacity() Capacity { return m.cfg.Capacity }

// closeMeter takes the lease's final report and stops metering it.
func (le *Lease) closeMeter() *meter.Report {
	le.meterMu.Lock()
	defer le.meterMu.Unlock()
	if le.final != nil || le.reporter == nil {
		return le.final
	}
	if r, err := le.reporter.Next(); err == nil || errors.Is(err, meter.ErrGone) {
		le.final = &r
	}
	le.sampler.Close()
	le.reporter = nil
	return le.final
}

// Pause is why a lease is paused: who paused it (the writers of pauses
// tell theirs from the others' by it), and the sentence the renter and
// the provider's dashboard are shown.
type Pause struct {
	Cause  proto.PauseCause
	Reason string
}

// State returns lease id's state and, when paused, why.
func (m *Manager) State(id string) (State, Pause) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if le, ok := m.leases[id]; ok {
		return le.state, le.pause
	}
	return Running, Pause{}
}

// Lookup returns lease id's state and, when paused, why; ok is false when
// there is no such live lease.
func (m *Manager) Lookup(id string) (state State, why Pause, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	le, ok := m.leases[id]
	if !ok {
		return Running, Pause{}, false
	}
	return le.state, le.pause, true
}

// Pause freezes lease id's sandbox, saying why. Pausing a paused lease
// only records the new why: the latest writer owns the pause.
func (m *Manager) Pause(ctx context.Context, id string, why Pause) error {
	m.mu.Lock()
	le, ok := m.leases[id]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", proto.ErrNotFound, id)
	}
	if le.state == Paused {
		le.pause = why
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	if err := m.cfg.Runtime.Pause(ctx, id); err != nil {
		return fmt.Errorf("pause %s: %w", id, err)
	}
	m.mu.Lock()
	le.state, le.pause = Paused, why
	m.mu.Unlock()
	m.log.Info("lease paused", "lease", id, "cause", why.Cause, "reason", why.Reason)
	return nil
}

// Resume thaws a paused lease.
func (m *Manager) Resume(ctx context.Context, id string) error {
	m.mu.Lock()
	le, ok := m.leases[id]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", proto.ErrNotFound, id)
	}
	paused := le.state == Paused
	m.mu.Unlock()
	if !paused {
		return nil
	}
	if err := m.cfg.Runtime.Resume(ctx, id); err != nil {
		return fmt.Errorf("resume %s: %w", id, err)
	}
	m.mu.Lock()
	le.state, le.pause = Running, Pause{}
	m.mu.Unlock()
	m.log.Info("lease resumed", "lease", id)
	return nil
}

// Holding returns the live leases of holder.
func (m *Manager) Holding(holder string) []*Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Lease
	for _, le := range m.leases {
		if le.Holder == holder {
			out = append(out, le)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Notify registers fn to hear of holder's leases that end on the provider's
// side (why, as the renter is told), with the lease's final usage report
// (nil if it could not be taken); nil unregisters.
func (m *Manager) Notify(holder string, fn func(e proto.Ended, final *meter.Report)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fn == nil {
		delete(m.notifiers, holder)
		return
	}
	m.notifiers[holder] = fn
}

func add(a, b Capacity, sign int) Capacity {
	return Capacity{Leases: a.Leases + sign*b.Leases, Memory: a.Memory + int64(sign)*b.Memory,
		CPUs: a.CPUs + float64(sign)*b.CPUs, Disk: a.Disk + int64(sign)*b.Disk}
}

// NewID returns a fresh lease id of the fixed length.
func NewID() string {
	var b [9]byte
	rand.Read(b[:])
	return proto.LeaseIDPrefix + hex.EncodeToString(b[:])[:proto.LeaseIDLen-len(proto.LeaseIDPrefix)]
}

// placement is one host's place on a session network.
type placement struct {
	join *Join
	addr netip.Addr
}

// checkJoin checks a grant's join: a fabric to carry it, one address per
// host, each on the subnet and not taken by a live host of the session.
func (m *Manager) checkJoin(owner ssh.PublicKey, n int, j *Join) error {
	if m.cfg.Fabric == nil {
		return fmt.Errorf("%w: this provider has no cluster network", proto.ErrBadRequest)
	}
	if j.Key.Renter != ssh.FingerprintSHA256(owner) {
		return fmt.Errorf("%w: a session of another renter", proto.ErrBadRequest)
	}
	if err := cluster.CheckSubnet(j.Subnet); err != nil {
		return fmt.Errorf("%w: %v", proto.ErrBadRequest, err)
	}
	if len(j.Addrs) != n || j.AuthorizedKey == nil {
		return fmt.Errorf("%w: a cluster join needs an address for each of the %d hosts and the session's key", proto.ErrBadRequest, n)
	}
	seen := map[netip.Addr]bool{}
	m.mu.Lock()
	for _, le := range m.leases {
		if le.Cluster != nil && le.Cluster.Key == j.Key {
			seen[le.Cluster.Addr] = true
		}
	}
	m.mu.Unlock()
	for _, a := range j.Addrs {
		if err := cluster.CheckHostAddr(j.Subnet, a); err != nil {
			return fmt.Errorf("%w: cluster %v", proto.ErrBadRequest, err)
		}
		if seen[a] {
			return fmt.Errorf("%w: cluster address %v is taken in the session", proto.ErrBadRequest, a)
		}
		seen[a] = true
	}
	return nil
}

func (m *Manager) create(ctx context.Context, owner ssh.PublicKey, holder string, l proto.Limits, place *placement) (*Lease, error) {
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
	authorized := ssh.MarshalAuthorizedKey(owner)
	if place != nil {
		authorized = append(authorized, ssh.MarshalAuthorizedKey(place.join.AuthorizedKey)...)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), authorized, 0o600); err != nil {
		return nil, err
	}
	le := &Lease{ID: id, Owner: owner, Holder: holder, Limits: l, HostKey: hostKey, Started: time.Now().UTC()}
	spec := sandbox.Spec{
		ID:          id,
		MemoryBytes: l.MemoryBytes,
		CPUs:        l.CPUs,
		DiskBytes:   l.DiskBytes,
		Pids:        m.cfg.Pids,
		Hostname:    id,
		Args:        m.agentArgs(),
		Mounts:      m.mounts(dir),
	}
	if place != nil {
		le.Cluster = &Membership{Key: place.join.Key, Addr: place.addr}
		spec.Cluster = &netsandbox.ClusterLink{Addr: netip.PrefixFrom(place.addr, place.join.Subnet.Bits()), MAC: cluster.MAC(place.addr), MTU: cluster.MTU}
		spec.ClusterReceive = func(frame []byte) { m.cfg.Fabric.FromHost(id, frame) }
		mounts, err := sessionFiles(dir, place.join)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		spec.Mounts = append(spec.Mounts, mounts...)
	}
	err = m.cfg.Runtime.Create(ctx, spec)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	if place != nil {
		port := m.cfg.Runtime.ClusterPort(id)
		if port == nil {
			err = errors.New("the sandbox has no cluster link")
		} else {
			_, err = m.cfg.Fabric.Attach(id, place.join.Key, place.join.Subnet, place.addr, port)
		}
		if err != nil {
			m.cfg.Runtime.Destroy(context.WithoutCancel(ctx), id)
			os.RemoveAll(dir)
			return nil, fmt.Errorf("join the session's network: %w", err)
		}
	}
	if err := m.awaitAgent(ctx, id); err != nil {
		m.cfg.Runtime.Destroy(context.WithoutCancel(ctx), id)
		os.RemoveAll(dir)
		return nil, err
	}
	rt := m.cfg.Runtime
	le.sampler, err = meter.New(meter.Config{
		Cgroup: rt.CgroupPath(id),
		Net: func() (uint64, uint64) {
			in, out, _ := rt.NetCounters(id)
			return in, out
		},
		Log: m.log,
	})
	if err != nil {
		m.destroy(context.WithoutCancel(ctx), le)
		return nil, fmt.Errorf("meter sandbox: %w", err)
	}
	le.reporter = meter.NewReporter(id, le.Started, le.sampler, m.cfg.Signer)
	m.log.Info("lease granted", "lease", id, "owner", ssh.FingerprintSHA256(owner), "memory", l.MemoryBytes, "cpus", l.CPUs)
	return le, nil
}

// Get returns the live lease id if owner holds it. A lease held by someone
// else is reported as not found, so ids cannot be probed.
func (m *Manager) Get(id string, owner ssh.PublicKey) (*Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	le, ok := m.leases[id]
	if !ok || owner == nil || !KeysEqual(le.Owner, owner) {
		return nil, fmt.Errorf("%w: %s", proto.ErrNotFound, id)
	}
	return le, nil
}

// agentArgs are a lease's first process: the resident agent itself
// (agent.ServeInit), listening for ssh on every address of the host: the
// provider reaches it on the host's own network (Dial), the session's
// other hosts on its cluster address. It is the first process, not
// started by a shell that stays to reap, because three fewer programs to
// load took a fifth off a host's start-up CPU (docs/architecture.md).
func (m *Manager) agentArgs() []string {
	listen := netip.AddrPortFrom(netip.IPv4Unspecified(), ClusterPort).String()
	return m.agentServe("--listen", listen, "--init")
}

// agentServe is the agent's 'serve' command line inside a sandbox, with
// extra flags: the small zennet-agent when the provider has one, else
// 'zennet agent serve'.
func (m *Manager) agentServe(extra ...string) []string {
	args := []string{AgentBinary, "agent", "serve"}
	if m.cfg.ServeBinary != "" {
		args = []string{ServeBinary, "serve"}
	}
	return append(append(args, "--config", AgentConfigDir), extra...)
}

// sessionFiles writes a cluster host's session files in its lease dir and
// returns their mounts, all read-only: the session directory (the
// session's key now; known hosts and hostfiles as memberships come, through
// SetClusterFiles), ssh's configuration for the session's hosts and Open
// MPI's parameters.
func sessionFiles(dir string, j *Join) ([]sandbox.Mount, error) {
	sdir := filepath.Join(dir, "session")
	if err := os.Mkdir(sdir, 0o700); err != nil {
		return nil, err
	}
	sshConfig, mpiParams := cluster.StaticFiles(j.Key.Session, j.Subnet)
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{filepath.Join(sdir, cluster.KeyFile), j.PrivateKey, 0o600},
		{filepath.Join(sdir, cluster.KeyFile+".pub"), ssh.MarshalAuthorizedKey(j.AuthorizedKey), 0o644},
		{filepath.Join(sdir, cluster.KnownHostsFile), nil, 0o644},
		{filepath.Join(dir, "ssh_config"), sshConfig, 0o644},
		{filepath.Join(dir, "mca-params.conf"), mpiParams, 0o644},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return []sandbox.Mount{
		{Source: sdir, Destination: cluster.SessionDir, ReadOnly: true},
		{Source: filepath.Join(dir, "ssh_config"), Destination: cluster.HostSSHConfig, ReadOnly: true},
		{Source: filepath.Join(dir, "mca-params.conf"), Destination: cluster.HostMPIParams, ReadOnly: true},
	}, nil
}

// SetClusterFiles writes a session's files (from its latest membership)
// onto its live hosts here: /etc/hosts, and the session directory's files,
// each replaced whole.
func (m *Manager) SetClusterFiles(key cluster.SessionKey, f cluster.Files) error {
	m.mu.Lock()
	var ids []string
	for _, le := range m.leases {
		if le.Cluster != nil && le.Cluster.Key == key {
			ids = append(ids, le.ID)
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := m.cfg.Runtime.SetHosts(id, f.EtcHosts); err != nil {
			errs = append(errs, fmt.Errorf("lease %s: %w", id, err))
		}
		for name, data := range f.InDir {
			if err := atomicfile.WriteFile(filepath.Join(m.cfg.Dir, id, "session", name), data, 0o644); err != nil {
				errs = append(errs, fmt.Errorf("lease %s: %w", id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// KeysEqual reports whether a and b are the same public key.
func KeysEqual(a, b ssh.PublicKey) bool {
	return a.Type() == b.Type() && string(a.Marshal()) == string(b.Marshal())
}

// agentStart bounds how long Dial waits for a lease's agent to listen
// again (after it was killed, say).
const agentStart = 5 * time.Second

// agentReady bounds how long a new lease waits for its agent to listen:
// longer than agentStart, since a grant of many hosts starts their agents
// all at once on a loaded machine.
const agentReady = 30 * time.Second

// awaitAgent returns once sandbox id's resident agent accepts connections
// on the host's own network, so that a granted host is ssh-ready for the
// renter's ssh and for the session's other hosts alike (these reach the
// agent directly, with no retry of zennet's). A sandbox with no network
// has no resident agent to wait for.
func (m *Manager) awaitAgent(ctx context.Context, id string) error {
	c, err := m.dialAgent(ctx, id, agentReady)
	switch {
	case errors.Is(err, sandbox.ErrNoNetwork):
		return nil
	case err != nil:
		return fmt.Errorf("the host's ssh server did not start: %w", err)
	}
	return c.Close()
}

// dialAgent connects to sandbox id's resident agent, retrying for up to
// within while it does not listen yet. Each attempt has its own deadline,
// growing: a SYN sent before the guest's stack is up is lost, and TCP
// would retry it only after a second. A sandbox with no network gives
// sandbox.ErrNoNetwork at once.
func (m *Manager) dialAgent(ctx context.Context, id string, within time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	attempt := 100 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, attempt)
		c, err := m.cfg.Runtime.DialGuest(actx, id, netsandbox.AgentPort)
		acancel()
		attempt = min(2*attempt, 2*time.Second)
		if err == nil || errors.Is(err, sandbox.ErrNoNetwork) {
			return c, err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return nil, fmt.Errorf("lease %s's agent, within %s: %w", id, within, err)
			}
			return nil, fmt.Errorf("lease %s's agent: %w", id, ctx.Err())
		}
	}
}

// Dial connects to lease id's resident agent through the sandbox's own
// network: an SSH connection to the host with no process started for it.
// A just-started agent is waited for (up to agentStart). The connection
// closes when the lease ends.
func (m *Manager) Dial(ctx context.Context, id string, owner ssh.PublicKey) (net.Conn, error) {
	le, err := m.Get(id, owner)
	if err != nil {
		return nil, err
	}
	if state, why := m.State(id); state == Paused {
		return nil, fmt.Errorf("%w: %s", ErrPaused, why.Reason)
	}
	release, err := m.holdConn(le)
	if err != nil {
		return nil, err
	}
	dctx, stopLease := context.WithCancel(ctx)
	defer context.AfterFunc(le.ctx, stopLease)()
	c, err := m.dialAgent(dctx, id, agentStart)
	if err != nil {
		release()
		return nil, err
	}
	return &leaseConn{Conn: c, stop: context.AfterFunc(le.ctx, func() { c.Close() }), release: sync.OnceFunc(release)}, nil
}

// holdConn counts a connection into le against its caps, and returns what
// releases it.
func (m *Manager) holdConn(le *Lease) (release func(), err error) {
	fp := ssh.FingerprintSHA256(le.Owner)
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.conns[le.ID]; n >= m.cfg.MaxConnsPerLease {
		return nil, fmt.Errorf("%w: host %s has %d connections open, the most one host takes: close some (or multiplex them over one, ssh's ControlMaster)",
			ErrTooManyConns, le.ID, n)
	}
	if n := m.connsByOwner[fp]; n >= m.cfg.MaxConnsPerRenter {
		return nil, fmt.Errorf("%w: key %s has %d connections open into its hosts here, the most one renter takes", ErrTooManyConns, fp, n)
	}
	m.conns[le.ID]++
	m.connsByOwner[fp]++
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.conns[le.ID]--; m.conns[le.ID] <= 0 {
			delete(m.conns, le.ID)
		}
		if m.connsByOwner[fp]--; m.connsByOwner[fp] <= 0 {
			delete(m.connsByOwner, fp)
		}
	}, nil
}

// leaseConn is a connection to a lease's agent, closed when the lease ends.
type leaseConn struct {
	net.Conn
	stop    func() bool
	release func()
}

func (c *leaseConn) Close() error {
	c.stop()
	c.release()
	return c.Conn.Close()
}

// CloseWrite ends what is sent to the agent; what it sends still comes.
func (c *leaseConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// Connect returns an unstarted command that serves one SSH connection on its
// stdio from inside the sandbox of lease id, if owner holds it, by starting
// an agent there: for a sandbox Dial cannot reach (no network of its own).
// The command is killed when the lease ends, so no connection outlives its
// lease.
func (m *Manager) Connect(id string, owner ssh.PublicKey) (cmd *exec.Cmd, release func(), err error) {
	le, err := m.Get(id, owner)
	if err != nil {
		return nil, nil, err
	}
	if state, why := m.State(id); state == Paused {
		return nil, nil, fmt.Errorf("%w: %s", ErrPaused, why.Reason)
	}
	m.mu.Lock()
	if n := m.execs[id]; n >= MaxExecConnsPerLease {
		m.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: host %s has %d connections through runsc exec open, the most one host takes while its own SSH server does not answer", ErrTooManyConns, id, n)
	}
	m.execs[id]++
	m.mu.Unlock()
	unexec := func() {
		m.mu.Lock()
		if m.execs[id]--; m.execs[id] <= 0 {
			delete(m.execs, id)
		}
		m.mu.Unlock()
	}
	held, err := m.holdConn(le)
	if err != nil {
		unexec()
		return nil, nil, err
	}
	release = func() { held(); unexec() }
	return m.cfg.Runtime.Command(le.ctx, id, m.agentServe()...), sync.OnceFunc(release), nil
}

// End ends lease id of owner for cause (the renter released it, went away,
// or its payment could not be set up), destroys its sandbox and returns its
// final usage report (nil if none could be taken). Its holder is not told:
// the renter ended it, or never got it.
func (m *Manager) End(ctx context.Context, id string, owner ssh.PublicKey, cause proto.EndCause) (*meter.Report, error) {
	m.mu.Lock()
	le, ok := m.leases[id]
	if !ok || !KeysEqual(le.Owner, owner) {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", proto.ErrNotFound, id)
	}
	delete(m.leases, id)
	m.inflight.Add(1)
	m.mu.Unlock()
	defer m.inflight.Done()
	err := m.finish(ctx, le, cause, "")
	return le.final, err
}

// Terminate ends lease id on the provider's side, whoever holds it (the
// operator ended it, it went unpaid, the provider is shutting down), and
// tells its holder why, cause and reason, with its final report, as when
// its sandbox stops on its own.
func (m *Manager) Terminate(ctx context.Context, id string, cause proto.EndCause, reason string) error {
	m.mu.Lock()
	le, ok := m.leases[id]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", proto.ErrNotFound, id)
	}
	delete(m.leases, id)
	notify := m.notifiers[le.Holder]
	m.inflight.Add(1)
	m.mu.Unlock()
	defer m.inflight.Done()
	err := m.finish(ctx, le, cause, reason)
	if notify != nil {
		notify(proto.Ended{ID: le.ID, Cause: cause, Reason: reason}, le.final)
	}
	return err
}

// finish destroys an ended lease's sandbox and returns its capacity. The
// lease is already out of the map, and the caller holds an inflight count.
func (m *Manager) finish(ctx context.Context, le *Lease, cause proto.EndCause, reason string) error {
	if le.cancel != nil {
		le.cancel() // ends its watcher and its live connections
	}
	err := m.destroy(ctx, le)
	m.mu.Lock()
	m.reserveLocked(le.Owner, need(1, le.Limits), -1)
	m.mu.Unlock()
	m.log.Info("lease ended", "lease", le.ID, "cause", cause, "reason", reason, "age", time.Since(le.Started).Round(time.Millisecond))
	return err
}

func (m *Manager) destroy(ctx context.Context, le *Lease) error {
	le.closeMeter()
	if le.Cluster != nil {
		m.cfg.Fabric.Detach(le.ID)
	}
	err := m.cfg.Runtime.Destroy(ctx, le.ID)
	if rerr := os.RemoveAll(filepath.Join(m.cfg.Dir, le.ID)); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		m.log.Error("destroy sandbox", "lease", le.ID, "err", err)
	}
	return err
}

// EndHolder ends every lease that holder holds for cause, as when the
// renter's negotiation session goes away. The holder is not told.
func (m *Manager) EndHolder(ctx context.Context, holder string, cause proto.EndCause) error {
	return m.endWhere(ctx, func(le *Lease) bool { return le.Holder == holder }, cause)
}

func (m *Manager) endWhere(ctx context.Context, match func(*Lease) bool, cause proto.EndCause) error {
	m.mu.Lock()
	var ending []*Lease
	for id, le := range m.leases {
		if match(le) {
			ending = append(ending, le)
			delete(m.leases, id)
		}
	}
	m.inflight.Add(1)
	m.mu.Unlock()
	defer m.inflight.Done()
	var g errgroup.Group
	g.SetLimit(m.cfg.Parallel)
	for _, le := range ending {
		g.Go(func() error { return m.finish(ctx, le, cause, "") })
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

// Shutdown refuses new grants, ends every lease, and waits for grants and
// ends already under way, so that when it returns no sandbox is left.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	err := m.endWhere(ctx, func(*Lease) bool { return true }, proto.EndProviderShutdown)
	m.inflight.Wait()
	return err
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
	for _, id := range append(ids, m.cfg.Runtime.Cgroups()...) {
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
