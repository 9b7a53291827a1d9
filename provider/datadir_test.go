package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestLockDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "prov")
	f, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, %v; want it created 0700", fi, err)
	}
	_, err = lockDataDir(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	want := "another zennet provider (pid " + strconv.Itoa(os.Getpid()) + ") is running on data dir " + dir + "; stop it or pass another --data-dir"
	if err.Error() != want {
		t.Errorf("second lock: %q, want %q", err, want)
	}
	f.Close()
	f, err = lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	f.Close()
}

// New takes the lock first and gives it back when it fails after.
func TestNewLocksAndReleasesOnError(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Runsc, cfg.AgentBinary, cfg.Memory, cfg.Disk = dir, "/bin/true", notELF, 1<<30, 1<<30

	lock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); !errors.Is(err, ErrLocked) {
		t.Fatalf("New on a locked data dir: %v, want ErrLocked", err)
	}
	lock.Close()

	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "agent binary") {
		t.Fatalf("New with a script as agent binary: %v, want an agent binary error", err)
	}
	lock, err = lockDataDir(dir)
	if err != nil {
		t.Fatalf("New kept the lock after failing: %v", err)
	}
	lock.Close()
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }, "no data dir"},
		{"no leases", func(c *Config) { c.MaxLeases = 0 }, "nothing to sell"},
		{"no cpus", func(c *Config) { c.CPUs = 0 }, "nothing to sell"},
		{"little disk", func(c *Config) { c.Disk = MinDisk - 1 }, "too little to sell"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.DataDir, cfg.Memory, cfg.Disk = t.TempDir(), 1<<30, 1<<30
			tc.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestWriteInfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), InfoFile)
	info := Info{Address: "127.0.0.1:2222", HostKey: "ssh-ed25519 AAAA", Fingerprint: "SHA256:x", DataDir: "/d",
		MaxLeases: 2, MemoryBytes: 1 << 30, CPUs: 1.5, Pid: 42}
	if err := writeInfo(path, info); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The --json envelope, as scripts ('waitprovider') and the dashboard
	// read it.
	want := `{
  "schema_version": 1,
  "kind": "provider",
  "data": {
    "address": "127.0.0.1:2222",
    "host_key": "ssh-ed25519 AAAA",
    "fingerprint": "SHA256:x",
    "data_dir": "/d",
    "max_leases": 2,
    "memory_bytes": 1073741824,
    "cpus": 1.5,
    "pid": 42
  }
}
`
	if string(b) != want {
		t.Errorf("info file:\n%s\nwant:\n%s", b, want)
	}
	var doc infoDoc
	if err := json.Unmarshal(b, &doc); err != nil || !reflect.DeepEqual(doc.Data, info) {
		t.Errorf("read back: %+v, %v", doc.Data, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("info file mode: %v, %v; want 0600", fi, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
}

func TestHostMemory(t *testing.T) {
	for _, tc := range []struct {
		name, meminfo string
		want          int64
		err           bool
	}{
		{"total", "MemTotal:       16303840 kB\nMemFree:  1 kB\n", 16303840 << 10, false},
		{"not first", "Foo: 1 kB\nMemTotal: 2048 kB\n", 2 << 20, false},
		{"none", "MemFree: 1 kB\n", 0, true},
		{"garbage", "MemTotal: lots kB\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "meminfo")
			if err := os.WriteFile(path, []byte(tc.meminfo), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := hostMemory(path)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("hostMemory = %d, %v; want %d, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	if m, err := DefaultMemory(); err != nil || m <= 0 {
		t.Errorf("DefaultMemory = %d, %v", m, err)
	}
	// A data dir not created yet: its nearest existing parent's space.
	if d := DefaultDisk(filepath.Join(t.TempDir(), "not", "yet")); d <= 0 {
		t.Errorf("DefaultDisk of a dir to be = %d", d)
	}
	cfg := DefaultConfig()
	for c, v := range DefaultRates {
		if got := cfg.Rates.String(c); got != v {
			t.Errorf("DefaultConfig's rate of %s = %s, want %s", c.Name(), got, v)
		}
	}
}

// The announced address is denied to sandboxes: as given, or what its
// name resolves to; nothing when it does not resolve.
func TestAnnouncedAddrs(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		announce string
		want     string
	}{
		{"203.0.113.5:2222", "[203.0.113.5/32]"},
		{"[2001:db8::7]:2222", "[2001:db8::7/128]"},
		{"", "[]"},
		{"no-such-host.invalid:2222", "[]"},
	} {
		if got := fmt.Sprint(announcedAddrs(ctx, tc.announce, log)); got != tc.want {
			t.Errorf("announcedAddrs(%q) = %s, want %s", tc.announce, got, tc.want)
		}
	}
	if got := announcedAddrs(ctx, "localhost:2222", log); len(got) == 0 || !got[0].Addr().IsLoopback() {
		t.Errorf("announcedAddrs(localhost) = %v, want its loopback addresses", got)
	}
}

// A data dir others can write, or a lock file that is a symbolic link, is
// refused with the fix, and the link's target is left untouched.
func TestDataDirChecks(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(shared); err == nil || !strings.Contains(err.Error(), "chmod 700 "+shared) {
		t.Fatalf("a world-writable data dir: err = %v", err)
	}
	dir := filepath.Join(t.TempDir(), "prov")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "provider.lock")); err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Fatalf("a symlinked lock file: err = %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Fatalf("the link's target was changed: %q", b)
	}
	if err := os.Remove(filepath.Join(dir, "provider.lock")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "provider.lock"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); err == nil {
		t.Fatal("a lock file that is a directory: no error")
	}
}
