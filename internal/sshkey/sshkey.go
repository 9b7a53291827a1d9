// Package sshkey reads OpenSSH private keys, creating an ed25519 key on
// first use: the provider's host key, the renter's and the benchmarker's
// keys.
package sshkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// LoadOrCreate reads an OpenSSH private key from path, creating an
// ed25519 key there (mode 0600) if none exists.
func LoadOrCreate(path, comment string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, comment)
		if err != nil {
			return nil, err
		}
		b = pem.EncodeToMemory(block)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create key %s: %w", path, err)
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		pub := ssh.MarshalAuthorizedKey(ssh.PublicKey(mustPub(priv)))
		os.WriteFile(path+".pub", pub, 0o644)
	} else if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var pe *ssh.PassphraseMissingError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("key %s is passphrase-protected; pass --identity with an unprotected key", path)
	}
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", path, err)
	}
	return s, nil
}

func mustPub(priv ed25519.PrivateKey) ssh.PublicKey {
	k, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		panic(err)
	}
	return k
}
