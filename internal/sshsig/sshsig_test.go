package sshsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestSignVerify(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tt := range []struct {
		name string
		key  any
	}{{"ed25519", edPriv}, {"rsa", rsaPriv}} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ssh.NewSignerFromKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := Sign(s, "test@zennet", []byte("message"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "rsa" && sig.Format != ssh.KeyAlgoRSASHA512 {
				t.Fatalf("RSA signed with %s, want rsa-sha2-512", sig.Format)
			}
			if err := Verify(s.PublicKey(), "test@zennet", []byte("message"), sig); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			for _, bad := range []struct {
				ns, msg string
			}{{"other@zennet", "message"}, {"test@zennet", "messagE"}} {
				if err := Verify(s.PublicKey(), bad.ns, []byte(bad.msg), sig); !errors.Is(err, ErrBadSignature) {
					t.Errorf("Verify(%q, %q) err = %v, want ErrBadSignature", bad.ns, bad.msg, err)
				}
			}
			if err := Verify(s.PublicKey(), "test@zennet", []byte("message"), nil); !errors.Is(err, ErrBadSignature) {
				t.Errorf("unsigned: err = %v", err)
			}
		})
	}
}

func TestRefusesSHA1(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	s, _ := ssh.NewSignerFromKey(k)
	sig, err := s.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, SignedData("n", []byte("m")), ssh.KeyAlgoRSA)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(s.PublicKey(), "n", []byte("m"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("SHA-1 signature accepted: %v", err)
	}
}
