package sshkey

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "host_key")
	s, err := LoadOrCreate(path, "zennet test")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want 0600", fi, err)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil || !bytes.Equal(pub, ssh.MarshalAuthorizedKey(s.PublicKey())) {
		t.Fatalf(".pub = %q, %v; want the key's public half", pub, err)
	}
	again, err := LoadOrCreate(path, "zennet test")
	if err != nil || !bytes.Equal(again.PublicKey().Marshal(), s.PublicKey().Marshal()) {
		t.Fatalf("second load: %v; want the same key", err)
	}
	if s.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key type %s, want ed25519", s.PublicKey().Type())
	}
}

func TestLoadOrCreateBadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(path, "x"); err == nil || !strings.Contains(err.Error(), "parse key "+path) {
		t.Fatalf("LoadOrCreate of garbage: %v, want a parse error naming the file", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "not a key\n" {
		t.Errorf("the bad key was overwritten: %q", b)
	}
}
