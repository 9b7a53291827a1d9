package session

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zennet/zennet/proto"
)

func hosts(names []string, port int) []Host {
	var hs []Host
	for i, n := range names {
		hs = append(hs, Host{Name: n, LocalPort: port + i, Provider: "p:1", LeaseID: "zn-0123456789abcdef" + string(rune('0'+i)),
			Limits: proto.Limits{MemoryBytes: 512 << 20, CPUs: 1.5}, HostKey: "ssh-ed25519 AAAAkey"})
	}
	return hs
}

func TestConcurrentSessionsDoNotClobber(t *testing.T) {
	root := t.TempDir()
	a, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	an, err := a.ReserveNames(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(hosts(an, 40000), "/k/id"); err != nil {
		t.Fatal(err)
	}
	b, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	bn, err := b.ReserveNames(2)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(an, ",") != "zennet-1,zennet-2" || strings.Join(bn, ",") != "zennet-3,zennet-4" {
		t.Fatalf("names: a=%v b=%v", an, bn)
	}
	if _, err := b.Write(hosts(bn, 50000), "/k/id"); err != nil {
		t.Fatal(err)
	}
	acfg, _ := os.ReadFile(a.Files().SessionConfig)
	if !strings.Contains(string(acfg), "Host zennet-1\n  HostName 127.0.0.1\n  Port 40000\n") {
		t.Fatalf("session a's ssh_config changed:\n%s", acfg)
	}
	main, _ := os.ReadFile(a.Files().SSHConfig)
	if !strings.Contains(string(main), "Include "+filepath.Join(root, "sessions", "*", "ssh_config")) {
		t.Fatalf("main ssh_config does not include the sessions:\n%s", main)
	}
	live, err := Live(root)
	if err != nil || len(live) != 2 {
		t.Fatalf("Live = %v, %v; want 2 records", live, err)
	}
	// When a ends, its names are free again and b's files stay.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	c, _ := Open(root)
	cn, _ := c.ReserveNames(1)
	if cn[0] != "zennet-1" {
		t.Fatalf("freed name not reused: %v", cn)
	}
	if _, err := os.Stat(b.Files().SessionConfig); err != nil {
		t.Fatalf("b's files went with a: %v", err)
	}
}

func TestFiles(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	names, _ := s.ReserveNames(2)
	f, err := s.Write(hosts(names, 40000), "/path with space/id")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want []string
	}{
		{f.SessionConfig, []string{"Host zennet-2\n", "Port 40001\n", `IdentityFile "/path with space/id"`, "HostKeyAlias zennet-lease-zn-0123456789abcdef1\n", "StrictHostKeyChecking yes\n", "Ciphers aes128-gcm@openssh.com,"}},
		{f.KnownHosts, []string{"zennet-lease-zn-0123456789abcdef0 ssh-ed25519 AAAAkey\n"}},
		{f.MPIHostfile, []string{"zennet-1 slots=2\nzennet-2 slots=2\n"}},
		{f.SSHLoginFile, []string{"2/ssh -F " + f.SSHConfig + " zennet-1\n"}},
	} {
		b, err := os.ReadFile(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q:\n%s", filepath.Base(tt.path), w, b)
			}
		}
	}
}

func TestLiveRemovesDeadSessions(t *testing.T) {
	root := t.TempDir()
	s, _ := Open(root)
	s.ReserveNames(1)
	// A crashed run: its directory remains, its lock is free.
	s.lock.Close()
	live, err := Live(root)
	if err != nil || len(live) != 0 {
		t.Fatalf("Live = %v, %v; want none", live, err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("dead session dir still there: %v", err)
	}
}

// TestDeadDetachedSession: a detached session whose holder died is kept,
// without its files for ssh, as a dead one until Forget; its names are
// free again at once.
func TestDeadDetachedSession(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := s.ReserveNames(2)
	f, err := s.Write(hosts(names, 40000), "/k/id")
	if err != nil {
		t.Fatal(err)
	}
	log, err := s.Detach()
	if err != nil || log != filepath.Join(s.Dir, LogName) {
		t.Fatalf("Detach = %q, %v", log, err)
	}
	if err := Forget(root, s.ID); !errors.Is(err, ErrNotDead) {
		t.Fatalf("Forget of a live session = %v, want ErrNotDead", err)
	}
	if live, err := Live(root); err != nil || len(live) != 1 || !live[0].Detached || live[0].Log != log {
		t.Fatalf("Live = %+v, %v; want the detached session", live, err)
	}
	// The holder dies: its lock is free, its directory remains.
	s.lock.Close()
	if live, err := Live(root); err != nil || len(live) != 0 {
		t.Fatalf("Live = %v, %v; want none", live, err)
	}
	_, dead, err := Scan(root)
	if err != nil || len(dead) != 1 || dead[0].ID != s.ID || dead[0].Log != log || len(dead[0].Hosts) != 2 {
		t.Fatalf("Scan: dead = %+v, %v; want the session", dead, err)
	}
	for _, p := range []string{f.SessionConfig, f.KnownHosts, f.MPIHostfile, f.SSHLoginFile} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s of a dead session still there (%v)", filepath.Base(p), err)
		}
	}
	if _, err := os.Stat(f.Hosts); err != nil {
		t.Errorf("hosts.json of a dead session: %v", err)
	}
	o, _ := Open(root)
	if n, _ := o.ReserveNames(1); n[0] != "zennet-1" {
		t.Fatalf("a dead session's names not free: %v", n)
	}
	for _, bad := range []string{"", "../x", ".new-x", o.ID, "feedfacefeed"} {
		if err := Forget(root, bad); !errors.Is(err, ErrNotDead) {
			t.Errorf("Forget(%q) = %v, want ErrNotDead", bad, err)
		}
	}
	if err := Forget(root, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, dead, err := Scan(root); err != nil || len(dead) != 0 {
		t.Fatalf("Scan after Forget: dead = %v, %v", dead, err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("forgotten session dir still there: %v", err)
	}
}
