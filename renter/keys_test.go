package renter

import (
	"net"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testenv"
)

func TestProviderHostKeys(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
	a, b := testenv.Signer(t).PublicKey(), testenv.Signer(t).PublicKey()

	// Trust on first use: said, pinned, and a changed key refused.
	dir := t.TempDir()
	var said []string
	cb, err := providerHostKeys(dir, nil, func(host, fp string) { said = append(said, host+" "+fp) })
	if err != nil {
		t.Fatal(err)
	}
	if err := cb("127.0.0.1:2222", addr, a); err != nil {
		t.Fatal(err)
	}
	if len(said) != 1 || !strings.Contains(said[0], gossh.FingerprintSHA256(a)) {
		t.Fatalf("first use said %q, want the key's fingerprint once", said)
	}
	if err := cb("127.0.0.1:2222", addr, a); err != nil || len(said) != 1 {
		t.Fatalf("second use: %v, said %q (want nothing more)", err, said)
	}
	if err := cb("127.0.0.1:2222", addr, b); err == nil || !strings.Contains(err.Error(), "different host key") {
		t.Fatalf("a changed key: %v", err)
	}

	// --provider-key: only the given keys, first use or not, by
	// fingerprint or public key.
	for _, want := range []string{gossh.FingerprintSHA256(a), strings.TrimSpace(string(gossh.MarshalAuthorizedKey(a)))} {
		cb, err := providerHostKeys(t.TempDir(), []string{want}, func(string, string) { t.Error("first use said with a pinned key") })
		if err != nil {
			t.Fatal(err)
		}
		if err := cb("127.0.0.1:2222", addr, b); err == nil || !strings.Contains(err.Error(), "not the one given with --provider-key") {
			t.Fatalf("--provider-key %s, another key presented: %v", want, err)
		}
		if err := cb("127.0.0.1:2222", addr, a); err != nil {
			t.Fatalf("--provider-key %s, that key presented: %v", want, err)
		}
	}
	for _, bad := range []string{"SHA256:short", "sha256:x", "ssh-ed25519 AAAA", "hello"} {
		if _, err := providerHostKeys(t.TempDir(), []string{bad}, nil); err == nil || !strings.Contains(err.Error(), "--provider-key") {
			t.Errorf("--provider-key %q: %v, want an error naming the flag", bad, err)
		}
	}
}
