package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

func TestLoadConfig(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	renter, _ := gossh.NewPublicKey(pub)
	write := func(dir, name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hostKey := string(pem.EncodeToMemory(block))
	for _, tt := range []struct {
		name         string
		key, allowed string
		want         string
	}{
		{"ok", hostKey, string(gossh.MarshalAuthorizedKey(renter)), ""},
		{"no host key", "", string(gossh.MarshalAuthorizedKey(renter)), "read host key"},
		{"bad host key", "junk", string(gossh.MarshalAuthorizedKey(renter)), "parse host key"},
		{"no keys file", hostKey, "", "read authorized keys"},
		{"empty keys", hostKey, "\n\n", "no authorized keys"},
		{"bad keys", hostKey, "ssh-ed25519 !!!\n", "parse authorized keys"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.key != "" {
				write(dir, agentHostKey, tt.key)
			}
			if tt.allowed != "" {
				write(dir, agentAuthorized, tt.allowed)
			}
			cfg, err := LoadConfig(dir)
			if tt.want == "" {
				if err != nil || len(cfg.Authorized) != 1 || !strings.Contains(string(cfg.Authorized[0].Marshal()), string(renter.Marshal())) {
					t.Fatalf("LoadConfig: %+v, %v", cfg, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
