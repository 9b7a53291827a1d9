package sshkey

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key")
	first, err := LoadOrCreate(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st, err)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil || !bytes.Equal(pub, ssh.MarshalAuthorizedKey(first.PublicKey())) {
		t.Fatalf(".pub = %q, %v; want the key's public half", pub, err)
	}
	again, err := LoadOrCreate(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.PublicKey().Marshal(), first.PublicKey().Marshal()) {
		t.Fatal("the second load made a new key")
	}
}

// TestLoadOrCreateConcurrent: callers that race to create the key all get
// the same one.
func TestLoadOrCreateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			s, err := LoadOrCreate(path, "test")
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = s.PublicKey().Marshal()
		})
	}
	wg.Wait()
	for i := range keys {
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("caller %d got another key", i)
		}
	}
}

func TestLoadOrCreateBadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(path, "test"); err == nil {
		t.Fatal("a file that is no key loaded")
	}
	if b, _ := os.ReadFile(path); string(b) != "not a key" {
		t.Fatal("LoadOrCreate overwrote a file it could not parse")
	}
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name     string
		sshKey   bool   // ~/.ssh/id_ed25519 exists
		named    string // the path passed, relative to the temp dir
		wantPath string // relative to the temp dir
	}{
		{name: "config dir's key when ~/.ssh has none", wantPath: "config/id_ed25519"},
		{name: "~/.ssh/id_ed25519 when it exists", sshKey: true, wantPath: "home/.ssh/id_ed25519"},
		{name: "a named key first", sshKey: true, named: "other", wantPath: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("HOME", filepath.Join(dir, "home"))
			if tt.sshKey {
				if _, err := LoadOrCreate(filepath.Join(dir, "home", ".ssh", KeyName), "user"); err != nil {
					t.Fatal(err)
				}
			}
			named := ""
			if tt.named != "" {
				named = filepath.Join(dir, tt.named)
			}
			s, path, err := Identity(named, filepath.Join(dir, "config"), "zennet renter")
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, tt.wantPath); path != want {
				t.Fatalf("path %s, want %s", path, want)
			}
			onDisk, err := LoadOrCreate(path, "")
			if err != nil || !bytes.Equal(onDisk.PublicKey().Marshal(), s.PublicKey().Marshal()) {
				t.Fatalf("the key returned is not the one at %s (%v)", path, err)
			}
		})
	}
}

func TestHostKey(t *testing.T) {
	dir := t.TempDir()
	a, err := HostKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(filepath.Join(dir, "host_key"), "")
	if err != nil || !bytes.Equal(a.PublicKey().Marshal(), b.PublicKey().Marshal()) {
		t.Fatalf("host key not kept in host_key: %v", err)
	}
}

func TestHostKeyPair(t *testing.T) {
	dir := t.TempDir()
	s, priv, err := HostKeyPair(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub.Marshal(), s.PublicKey().Marshal()) {
		t.Fatal("the private key is not the signer's")
	}
	again, _, err := HostKeyPair(dir)
	if err != nil || !bytes.Equal(again.PublicKey().Marshal(), s.PublicKey().Marshal()) {
		t.Fatalf("a second load gave another key (%v)", err)
	}
}
