package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/zennet/zennet/internal/atomicfile"
)

// ErrLocked is a data dir another provider runs on. New's error matches
// it with errors.Is and names the other provider's pid.
var ErrLocked = errors.New("data dir in use")

type lockedError struct{ pid, dir string }

func (e lockedError) Error() string {
	return fmt.Sprintf("another zennet provider (pid %s) is running on data dir %s; stop it or pass another --data-dir", e.pid, e.dir)
}

func (e lockedError) Is(target error) bool { return target == ErrLocked }

// lockDataDir creates dir and takes its lock, which the returned file
// holds until closed; the lock file says the holder's pid.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	// Not through a symlink: whoever could plant one would have the
	// provider truncate and write the file it points at.
	path := filepath.Join(dir, "provider.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("data dir %s: its lock file provider.lock is a symbolic link: remove it (zennet makes its own)", dir)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("data dir %s: its lock file provider.lock is not a regular file: remove it (zennet makes its own)", dir)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(f.Name())
		f.Close()
		return nil, lockedError{pid: strings.TrimSpace(string(b)), dir: dir}
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// checkDataDir refuses a data dir that another user owns or can write:
// its host key, ledger and leases would be theirs to read or replace.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("data dir %s belongs to user %d, not to this user (%d): use a data dir of your own (--data-dir)", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("data dir %s can be written by other users (mode %04o): chmod 700 %s", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// InfoFile is the file in the data dir that says where the provider
// listens (Info, in the --json envelope of kind "provider"); it exists
// only while the provider runs.
const InfoFile = "provider.json"

// Info is a running provider's identity and size.
type Info struct {
	Address string `json:"address"`
	// Market are the libp2p market node's multiaddrs, each ending in
	// /p2p/ID: what other providers give as --peer and renters as --seed.
	Market      []string `json:"market,omitempty"`
	HostKey     string   `json:"host_key"`
	Fingerprint string   `json:"fingerprint"`
	DataDir     string   `json:"data_dir"`
	MaxLeases   int      `json:"max_leases"`
	MemoryBytes int64    `json:"memory_bytes"`
	CPUs        float64  `json:"cpus"`
	// Pid is the provider's process: an info file whose process is gone
	// is stale (left by a crash).
	Pid int `json:"pid"`
}

// infoDoc is the info file: the envelope of zennet's --json documents
// (schema version 1), kind "provider".
type infoDoc struct {
	SchemaVersion int    `json:"schema_version"`
	Kind          string `json:"kind"`
	Data          Info   `json:"data"`
}

// writeInfo writes the info file at path, atomically.
func writeInfo(path string, info Info) error {
	b, err := json.MarshalIndent(infoDoc{SchemaVersion: 1, Kind: "provider", Data: info}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}
