package pay

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/signedjson"
	"github.com/zennet/zennet/internal/sshsig"
)

// testKey is a fixed ed25519 key per seed byte: 1 the renter, 2 the
// provider, 3 a stranger.
func testKey(t testing.TB, seed byte) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const testLease = "zn-0123456789abcdef0"

func testVoucher(t testing.TB, seq, total uint64) Voucher {
	t.Helper()
	v := Voucher{Lease: testLease, Payee: ssh.FingerprintSHA256(testKey(t, 2).PublicKey()), Seq: seq, Total: total}
	if err := v.Sign(testKey(t, 1)); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCheckVoucher(t *testing.T) {
	renter, provider, stranger := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	terms := VoucherTerms{Lease: testLease, Payee: ssh.FingerprintSHA256(provider.PublicKey()), Renter: renter.PublicKey()}
	claim := testVoucher(t, 5, 5000)
	signed := func(v Voucher, s ssh.Signer) Voucher {
		if err := v.Sign(s); err != nil {
			t.Fatal(err)
		}
		return v
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner, err := ssh.NewSignerFromKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	sha1Voucher := Voucher{Lease: testLease, Payee: terms.Payee, Seq: 6, Total: 6000}
	sig, err := rsaSigner.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, sshsig.SignedData(VoucherNamespace, sha1Voucher.CanonicalBytes()), ssh.KeyAlgoRSA)
	if err != nil {
		t.Fatal(err)
	}
	sha1Voucher.Signature = sig
	tampered := testVoucher(t, 6, 6000)
	tampered.Total = 60000

	tests := []struct {
		name   string
		terms  VoucherTerms
		claim  *Voucher
		v      Voucher
		reason error // nil: accepted
	}{
		{name: "first", v: testVoucher(t, 1, 1000)},
		{name: "first with total 0", v: testVoucher(t, 1, 0)},
		{name: "next", claim: &claim, v: testVoucher(t, 6, 6000)},
		{name: "same total, next seq", claim: &claim, v: testVoucher(t, 6, 5000)},
		{name: "skips seqs", claim: &claim, v: testVoucher(t, 100, 9000)},
		{name: "replay of the claim", claim: &claim, v: claim, reason: ErrVoucherReplay},
		{name: "older seq", claim: &claim, v: testVoucher(t, 4, 9000), reason: ErrVoucherReplay},
		{name: "lower total", claim: &claim, v: testVoucher(t, 6, 4999), reason: ErrVoucherTotal},
		{name: "stranger's signature", v: signed(Voucher{Lease: testLease, Payee: terms.Payee, Seq: 1, Total: 1}, stranger), reason: ErrBadVoucherSignature},
		{name: "tampered total", claim: &claim, v: tampered, reason: ErrBadVoucherSignature},
		{name: "unsigned", v: Voucher{Lease: testLease, Payee: terms.Payee, Seq: 1, Total: 1}, reason: ErrBadVoucherSignature},
		{name: "ssh-rsa SHA-1", terms: VoucherTerms{Lease: testLease, Payee: terms.Payee, Renter: rsaSigner.PublicKey()}, v: sha1Voucher, reason: ErrBadVoucherSignature},
		{name: "rsa-sha2-512 accepted", terms: VoucherTerms{Lease: testLease, Payee: terms.Payee, Renter: rsaSigner.PublicKey()},
			v: signed(Voucher{Lease: testLease, Payee: terms.Payee, Seq: 1, Total: 1}, rsaSigner)},
		{name: "another lease", v: signed(Voucher{Lease: "zn-fffffffffffffffff", Payee: terms.Payee, Seq: 1, Total: 1}, renter), reason: ErrVoucherLease},
		{name: "another payee", v: signed(Voucher{Lease: testLease, Payee: ssh.FingerprintSHA256(stranger.PublicKey()), Seq: 1, Total: 1}, renter), reason: ErrVoucherLease},
		{name: "no renter key", terms: VoucherTerms{Lease: testLease, Payee: terms.Payee}, v: testVoucher(t, 1, 1), reason: ErrBadVoucherSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vt := terms
			if tt.terms.Lease != "" {
				vt = tt.terms
			}
			err := CheckVoucher(vt, tt.claim, tt.v)
			if tt.reason == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrVoucherRejected) || !errors.Is(err, tt.reason) {
				t.Fatalf("CheckVoucher: %v, want %v", err, tt.reason)
			}
		})
	}
}

// TestVoucherSignatureIsSSHSIG: voucher signatures are OpenSSH signatures
// in the voucher namespace, and only there: ssh-keygen -Y verify accepts
// one with -n payment-voucher-v1@zennet and refuses it with the usage
// report's namespace.
func TestVoucherSignatureIsSSHSIG(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("no ssh-keygen")
	}
	v := testVoucher(t, 3, 3000)
	pub := testKey(t, 1).PublicKey()
	b := []byte("SSHSIG")
	b = binary.BigEndian.AppendUint32(b, 1)
	for _, s := range []string{string(pub.Marshal()), VoucherNamespace, "", "sha512", string(ssh.Marshal(v.Signature))} {
		b = signedjson.AppendString(b, s)
	}
	dir := t.TempDir()
	sig := filepath.Join(dir, "sig")
	armored := "-----BEGIN SSH SIGNATURE-----\n" + base64.StdEncoding.EncodeToString(b) + "\n-----END SSH SIGNATURE-----\n"
	if err := os.WriteFile(sig, []byte(armored), 0o600); err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(allowed, append([]byte("renter "), ssh.MarshalAuthorizedKey(pub)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, namespace string
		ok              bool
	}{
		{name: "voucher namespace", namespace: VoucherNamespace, ok: true},
		{name: "report namespace", namespace: "usage-report-v1@zennet", ok: false},
		{name: "file namespace", namespace: "file", ok: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "renter", "-n", tt.namespace, "-s", sig)
			cmd.Stdin = bytes.NewReader(v.CanonicalBytes())
			out, err := cmd.CombinedOutput()
			if (err == nil) != tt.ok {
				t.Fatalf("ssh-keygen -Y verify -n %s: %v: %s", tt.namespace, err, out)
			}
		})
	}
}

func voucherDecodeCases(t testing.TB) []struct{ name, in string } {
	enc, err := EncodeVoucher(testVoucher(t, 3, 3000))
	if err != nil {
		t.Fatal(err)
	}
	good := string(enc)
	return []struct{ name, in string }{
		{name: "empty", in: ""},
		{name: "not json", in: "voucher"},
		{name: "array", in: "[]"},
		{name: "null", in: "null"},
		{name: "unknown field", in: strings.Replace(good, `"v":1`, `"v":1,"x":2`, 1)},
		{name: "version 2", in: strings.Replace(good, `"v":1`, `"v":2`, 1)},
		{name: "seq 0", in: strings.Replace(good, `"seq":3`, `"seq":0`, 1)},
		{name: "negative total", in: strings.Replace(good, `"total_msat":3000`, `"total_msat":-3000`, 1)},
		{name: "total overflow", in: strings.Replace(good, `"total_msat":3000`, `"total_msat":18446744073709551616`, 1)},
		{name: "fractional total", in: strings.Replace(good, `"total_msat":3000`, `"total_msat":3000.5`, 1)},
		{name: "lease with slash", in: strings.Replace(good, testLease, "zn/../x", 1)},
		{name: "empty payee", in: `{"v":1,"lease":"zn-1","payee":"","seq":1,"total_msat":1}`},
		{name: "payee with space", in: strings.Replace(good, `"payee":"SHA256:`, `"payee":"SHA 256:`, 1)},
		{name: "empty signature format", in: strings.Replace(good, `"format":"ssh-ed25519"`, `"format":""`, 1)},
		{name: "trailing data", in: good + "{}"},
		{name: "too big", in: good[:len(good)-2] + `,"pad":"` + strings.Repeat("x", MaxVoucherSize) + `"}`},
	}
}

func TestDecodeVoucher(t *testing.T) {
	v := testVoucher(t, 3, 3000)
	enc, err := EncodeVoucher(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeVoucher(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.CanonicalBytes(), v.CanonicalBytes()) || !bytes.Equal(got.Signature.Blob, v.Signature.Blob) {
		t.Errorf("round trip changed the voucher: %+v", got)
	}
	if err := CheckVoucher(VoucherTerms{Lease: testLease, Payee: v.Payee, Renter: testKey(t, 1).PublicKey()}, nil, got); err != nil {
		t.Errorf("decoded voucher does not check: %v", err)
	}
	for _, tt := range voucherDecodeCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := DecodeVoucher([]byte(tt.in)); err == nil {
				t.Errorf("decoded %+v", v)
			}
		})
	}
}

// FuzzDecodeVoucher: whatever DecodeVoucher accepts encodes again, to the
// same canonical bytes and signature, stably.
func FuzzDecodeVoucher(f *testing.F) {
	enc, err := EncodeVoucher(testVoucher(f, 3, 3000))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	for _, tt := range voucherDecodeCases(f) {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVoucher(b)
		if err != nil {
			return
		}
		enc, err := EncodeVoucher(v)
		if err != nil {
			t.Fatalf("decoded voucher does not encode: %v", err)
		}
		v2, err := DecodeVoucher(enc)
		if err != nil {
			t.Fatalf("encoded voucher does not decode: %v\n%s", err, enc)
		}
		if !bytes.Equal(v.CanonicalBytes(), v2.CanonicalBytes()) {
			t.Fatalf("canonical bytes changed in a round trip")
		}
		if (v.Signature == nil) != (v2.Signature == nil) ||
			v.Signature != nil && (v.Signature.Format != v2.Signature.Format || !bytes.Equal(v.Signature.Blob, v2.Signature.Blob)) {
			t.Fatalf("signature changed in a round trip")
		}
		enc2, err := EncodeVoucher(v2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}
