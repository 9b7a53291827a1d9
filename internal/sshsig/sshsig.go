// Package sshsig signs and verifies messages with SSH keys the way OpenSSH's
// PROTOCOL.sshsig does ('ssh-keygen -Y sign'): over the SHA-512 of the
// message, under a namespace, so that a signature made for one use (a usage
// report, a payment voucher, a calibration set) can pass for nothing else
// the key signs. RSA keys sign with SHA-512; SHA-1 signatures are refused.
package sshsig

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// ErrBadSignature is wrapped by every verification failure.
var ErrBadSignature = errors.New("bad signature")

// SignedData is the blob a key signs for message under namespace.
func SignedData(namespace string, message []byte) []byte {
	h := sha512.Sum512(message)
	b := []byte("SSHSIG")
	b = appendString(b, namespace)
	b = appendString(b, "") // reserved
	b = appendString(b, "sha512")
	return appendString(b, string(h[:]))
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Sign signs message under namespace.
func Sign(signer ssh.Signer, namespace string, message []byte) (*ssh.Signature, error) {
	data := SignedData(namespace, message)
	if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		return as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	}
	return signer.Sign(rand.Reader, data)
}

// Verify checks sig over message under namespace against key. Its errors
// wrap ErrBadSignature.
func Verify(key ssh.PublicKey, namespace string, message []byte, sig *ssh.Signature) error {
	if sig == nil {
		return fmt.Errorf("%w: not signed", ErrBadSignature)
	}
	if sig.Format == ssh.KeyAlgoRSA {
		return fmt.Errorf("%w: ssh-rsa (SHA-1) signatures are not accepted", ErrBadSignature)
	}
	if err := key.Verify(SignedData(namespace, message), sig); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}
