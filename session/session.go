// Package session keeps a renter's local state for one run of zennet: the
// hosts it holds and the files it writes for ssh, MPI and GNU parallel.
// Each run gets its own directory under the config dir, locked for as long as
// the run lives, so concurrent runs never clobber each other's files, and the
// shared ssh_config includes every live run's entries.
package session

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zennet/zennet/internal/atomicfile"
	"github.com/zennet/zennet/proto"
)

// Host is one rented host as the renter uses it.
type Host struct {
	Name      string       `json:"name"`
	LocalPort int          `json:"local_port"`
	Provider  string       `json:"provider"`
	LeaseID   string       `json:"lease_id"`
	Limits    proto.Limits `json:"limits"`
	HostKey   string       `json:"host_key"`
	// ClusterAddr is the host's address on the session's private network.
	ClusterAddr string `json:"cluster_addr,omitempty"`
	// PricePerWorkMsat is the agreed price per reference CPU-second of work
	// (0: flat rates).
	PricePerWorkMsat float64 `json:"price_per_work_msat,omitempty"`
}

// Files are the paths a session writes.
type Files struct {
	SSHConfig     string `json:"ssh_config"`
	SessionConfig string `json:"session_ssh_config"`
	KnownHosts    string `json:"known_hosts"`
	MPIHostfile   string `json:"mpi_hostfile"`
	SSHLoginFile  string `json:"parallel_sshloginfile"`
	Hosts         string `json:"hosts"`
}

// Record is what hosts.json holds: enough for 'zennet release' and for
// other runs to see which names are taken.
type Record struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Started time.Time `json:"started"`
	Names   []string  `json:"names"`
	Hosts   []Host    `json:"hosts"`
	// Ready is set once the hosts are ready for use: probed, checked, on
	// the session's network. A script that waits for hosts waits for it.
	Ready bool `json:"ready,omitempty"`
	// Detached is set once a background holder ('zennet -n -d') holds the
	// session, its stdout and stderr in Log. A detached session whose
	// holder is gone is kept, as a dead one (Dead), until it is forgotten
	// (Forget), so that its holder's death is reported and its log read.
	Detached bool   `json:"detached,omitempty"`
	Log      string `json:"log,omitempty"`
}

// LogName is the file in a session's directory that its detached holder
// writes its stdout and stderr to.
const LogName = "holder.log"

// Session is one live run. Its methods are safe for concurrent use: writes
// of its files are serialized, and once Close has begun they fail with
// ErrClosed.
type Session struct {
	ID   string
	Dir  string
	root string
	lock *os.File

	mu     sync.Mutex // serializes the writes of the session's files and Close
	closed bool
	rec    Record
}

// ErrClosed is returned by a Session's writes once it is closed.
var ErrClosed = errors.New("session closed")

// Open creates and locks a new session directory under configDir.
func Open(configDir string) (*Session, error) {
	sessions := filepath.Join(configDir, "sessions")
	if err := os.MkdirAll(sessions, 0o700); err != nil {
		return nil, fmt.Errorf("create session dir: %w", err)
	}
	if err := writeMainConfig(configDir); err != nil {
		return nil, err
	}
	return open(configDir)
}

// staging prefixes the name a session directory has while it is being
// made: Live leaves such directories alone (a fresh one has no lock held
// yet), so a session only appears under its id once its lock is taken.
const staging = ".new-"

// stagingMaxAge: a staging directory this old was left by a run that
// died while opening its session; Live removes it.
const stagingMaxAge = time.Hour

func open(configDir string) (*Session, error) {
	var b [6]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	dir := Dir(configDir, id)
	tmp := filepath.Join(configDir, "sessions", staging+id)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("create session dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(tmp, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("create session lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("lock session: %w", err)
	}
	// The lock stays with the open file through the rename: Live finds
	// the directory under its id already locked.
	if err := os.Rename(tmp, dir); err != nil {
		lock.Close()
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("create session dir: %w", err)
	}
	return &Session{ID: id, Dir: dir, root: configDir, lock: lock,
		rec: Record{ID: id, Pid: os.Getpid(), Started: time.Now().UTC()}}, nil
}

// Dir is where session id of configDir keeps its files; it is gone once
// the session has ended.
func Dir(configDir, id string) string { return filepath.Join(configDir, "sessions", id) }

// Live returns the records of runs that still hold their lock, and removes
// the directories of runs that do not (a crashed run's leftovers), but for
// detached ones (see Scan).
func Live(configDir string) ([]Record, error) {
	live, _, err := Scan(configDir)
	return live, err
}

// ErrNotDead means a session named to Forget is not a dead detached one.
var ErrNotDead = errors.New("not a dead detached session")

// Forget removes what is left of a dead detached session.
func Forget(configDir, id string) error {
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return fmt.Errorf("session %q: %w", id, ErrNotDead)
	}
	dir := Dir(configDir, id)
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("session %s: %w", id, ErrNotDead)
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return fmt.Errorf("session %s is running: %w", id, ErrNotDead)
	}
	if rec, err := readRecord(dir); err != nil || !rec.Detached {
		return fmt.Errorf("session %s: %w", id, ErrNotDead)
	}
	return os.RemoveAll(dir)
}

func readRecord(dir string) (Record, error) {
	var rec Record
	b, err := os.ReadFile(filepath.Join(dir, "hosts.json"))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	return rec, err
}

// retire removes a dead detached session's files for ssh, MPI and GNU
// parallel (the shared ssh_config would still include its hosts), and
// keeps its record, usage and log.
func retire(dir string) {
	for _, name := range []string{"ssh_config", "known_hosts", "hostfile", "sshloginfile"} {
		os.Remove(filepath.Join(dir, name))
	}
}

// Scan returns, from one look at the session directories, Live's records
// and those of the detached sessions whose holder died (it holds their
// lock no more): their hosts are gone (a provider ends the leases of a
// renter that vanished) and their files for ssh with them; what is left
// of them is hosts.json, the usage file and the holder's log, until
// Forget. Oldest first. It removes the directories of other dead runs.
func Scan(configDir string) (live, dead []Record, err error) {
	sessions := filepath.Join(configDir, "sessions")
	ents, err := os.ReadDir(sessions)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(sessions, e.Name())
		if strings.HasPrefix(e.Name(), staging) {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > stagingMaxAge {
				os.RemoveAll(dir) // a run died while opening its session
			}
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err != nil {
			continue // being created or removed right now
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			// Nobody holds it: the run is gone. A detached holder's is
			// kept, to be reported; any other is removed.
			if rec, err := readRecord(dir); err == nil && rec.Detached {
				retire(dir)
				dead = append(dead, rec)
			} else {
				os.RemoveAll(dir)
			}
			f.Close()
			continue
		}
		f.Close()
		if rec, err := readRecord(dir); err == nil {
			live = append(live, rec)
		}
	}
	for _, l := range [][]Record{live, dead} {
		sort.Slice(l, func(i, j int) bool { return l[i].Started.Before(l[j].Started) })
	}
	return live, dead, nil
}

// withNamesLock runs f holding the config dir's names lock.
func withNamesLock(configDir string, f func() error) error {
	lf, err := os.OpenFile(filepath.Join(configDir, "sessions", ".names.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	return f()
}

// ReserveNames picks n host names zennet-K not used by any live run and
// records them for this session.
func (s *Session) ReserveNames(n int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	var names []string
	err := withNamesLock(s.root, func() error {
		live, err := Live(s.root)
		if err != nil {
			return err
		}
		taken := map[string]bool{}
		for _, r := range live {
			if r.ID == s.ID {
				continue
			}
			for _, nm := range r.Names {
				taken[nm] = true
			}
		}
		for k := 1; len(names) < n; k++ {
			if nm := "zennet-" + strconv.Itoa(k); !taken[nm] {
				names = append(names, nm)
			}
		}
		s.rec.Names = names
		return writeJSON(filepath.Join(s.Dir, "hosts.json"), s.rec)
	})
	return names, err
}

// Files returns the paths this session writes.
func (s *Session) Files() Files {
	return Files{
		SSHConfig:     filepath.Join(s.root, "ssh_config"),
		SessionConfig: filepath.Join(s.Dir, "ssh_config"),
		KnownHosts:    filepath.Join(s.Dir, "known_hosts"),
		MPIHostfile:   filepath.Join(s.Dir, "hostfile"),
		SSHLoginFile:  filepath.Join(s.Dir, "sshloginfile"),
		Hosts:         filepath.Join(s.Dir, "hosts.json"),
	}
}

// Write (re)writes every file of the session for hosts, each atomically.
func (s *Session) Write(hosts []Host, identityFile string) (Files, error) {
	f := s.Files()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return f, ErrClosed
	}
	s.rec.Hosts = hosts
	var cfg, kh, mpi, login strings.Builder
	fmt.Fprintf(&cfg, "# zennet session %s (pid %d): written by zennet, removed when it ends.\n", s.ID, s.rec.Pid)
	for _, h := range hosts {
		alias := "zennet-lease-" + h.LeaseID
		fmt.Fprintf(&cfg, "\nHost %s\n  HostName 127.0.0.1\n  Port %d\n  User root\n", h.Name, h.LocalPort)
		fmt.Fprintf(&cfg, "  IdentityFile %s\n  IdentitiesOnly yes\n", quote(identityFile))
		fmt.Fprintf(&cfg, "  UserKnownHostsFile %s\n  HostKeyAlias %s\n", quote(f.KnownHosts), alias)
		fmt.Fprintf(&cfg, "  StrictHostKeyChecking yes\n  CheckHostIP no\n  UpdateHostKeys no\n  Ciphers %s\n", proto.SSHCiphers)
		fmt.Fprintf(&kh, "%s %s\n", alias, strings.TrimSpace(h.HostKey))
		slots := max(1, int(math.Ceil(h.Limits.CPUs)))
		fmt.Fprintf(&mpi, "%s slots=%d\n", h.Name, slots)
		fmt.Fprintf(&login, "%d/ssh -F %s %s\n", slots, quote(f.SSHConfig), h.Name)
	}
	for _, w := range []struct {
		path string
		data string
	}{
		{f.KnownHosts, kh.String()}, {f.MPIHostfile, mpi.String()}, {f.SSHLoginFile, login.String()},
		{f.SessionConfig, cfg.String()},
	} {
		if err := atomicfile.WriteFile(w.path, []byte(w.data), 0o600); err != nil {
			return f, err
		}
	}
	if err := writeJSON(f.Hosts, s.rec); err != nil {
		return f, err
	}
	return f, nil
}

// MarkReady records in hosts.json that the session's hosts are ready.
func (s *Session) MarkReady() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.rec.Ready = true
	return writeJSON(s.Files().Hosts, s.rec)
}

// Detach records that a background holder holds the session from now on,
// writing its stdout and stderr to the file it returns (LogName in the
// session's directory): should the holder die, the session is kept as a
// dead one (Dead) for its death to be reported.
func (s *Session) Detach() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrClosed
	}
	s.rec.Detached = true
	s.rec.Log = filepath.Join(s.Dir, LogName)
	return s.rec.Log, writeJSON(s.Files().Hosts, s.rec)
}

// Close removes the session's files and releases its lock. It waits for
// a write in progress; later writes fail with ErrClosed.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := os.RemoveAll(s.Dir)
	s.lock.Close()
	return err
}

func writeMainConfig(configDir string) error {
	path := filepath.Join(configDir, "ssh_config")
	want := fmt.Sprintf("# Written by zennet: the hosts of every running zennet session.\n# Use: ssh -F %s zennet-1\nInclude %s\n",
		path, filepath.Join(configDir, "sessions", "*", "ssh_config"))
	if b, err := os.ReadFile(path); err == nil && string(b) == want {
		return nil
	}
	return atomicfile.WriteFile(path, []byte(want), 0o600)
}

func quote(p string) string {
	if strings.ContainsAny(p, " \t\"") {
		return strconv.Quote(p)
	}
	return p
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}
