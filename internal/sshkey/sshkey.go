// Package sshkey finds and reads the OpenSSH private keys zennet signs
// with, creating an ed25519 key on first use: the renter's (and the
// benchmarker's) own key, and the provider's host key.
package sshkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/atomicfile"
)

// KeyName is the file name of the user's default key, in ~/.ssh and, when
// there is none there, in zennet's config dir.
const KeyName = "id_ed25519"

// Identity loads the user's own key: path when it is not empty, else
// ~/.ssh/id_ed25519 when that exists, else id_ed25519 in configDir, which
// is created (with comment) the first time. It returns the key and its
// absolute path, for ssh's IdentityFile. A named path that does not exist
// is created like the config dir's key: callers that want it to exist
// check first.
func Identity(path, configDir, comment string) (ssh.Signer, string, error) {
	if path == "" {
		path = DefaultIdentity(configDir)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	s, err := LoadOrCreate(abs, comment)
	return s, abs, err
}

// DefaultIdentity is the key Identity uses when none is named:
// ~/.ssh/id_ed25519 when it exists, else id_ed25519 in configDir.
func DefaultIdentity(configDir string) string {
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".ssh", KeyName)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join(configDir, KeyName)
}

// HostKey loads the provider's host key from dataDir, creating it the
// first time.
func HostKey(dataDir string) (ssh.Signer, error) {
	return LoadOrCreate(filepath.Join(dataDir, "host_key"), "zennet provider")
}

// LoadOrCreate reads an OpenSSH private key from path, creating an
// ed25519 key there (mode 0600, with path.pub beside it) if none exists.
// Of two processes creating the key at once, both end up with the same
// one, and neither reads a partial file.
func LoadOrCreate(path, comment string) (ssh.Signer, error) {
	s, _, err := loadOrCreate(path, comment)
	return s, err
}

// loadOrCreate is LoadOrCreate with the private key itself (an
// *ed25519.PrivateKey, *rsa.PrivateKey, …).
func loadOrCreate(path, comment string) (ssh.Signer, any, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = create(path, comment)
		if errors.Is(err, fs.ErrExist) {
			b, err = os.ReadFile(path) // another process made it first
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read key: %w", err)
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	var pe *ssh.PassphraseMissingError
	if errors.As(err, &pe) {
		return nil, nil, fmt.Errorf("key %s is passphrase-protected; pass --identity with an unprotected key", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("parse key %s: %w", path, err)
	}
	s, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("parse key %s: %w", path, err)
	}
	return s, raw, nil
}

// create writes a new ed25519 key to path, failing with fs.ErrExist when
// there is one already, and returns it in PEM.
func create(path, comment string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	b := pem.EncodeToMemory(block)
	if err := atomicfile.Create(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	// The .pub file is a convenience for the user; the key is what counts.
	atomicfile.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644)
	return b, nil
}

// HostKeyPair is HostKey with the private key itself, for the market's
// peer-to-peer identity, which is the same ed25519 key.
func HostKeyPair(dataDir string) (ssh.Signer, ed25519.PrivateKey, error) {
	path := filepath.Join(dataDir, "host_key")
	s, raw, err := loadOrCreate(path, "zennet provider")
	if err != nil {
		return nil, nil, err
	}
	priv, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("key %s is a %T, not ed25519: the market's identity needs an ed25519 key (move it aside and a new one is made)", path, raw)
	}
	return s, *priv, nil
}
