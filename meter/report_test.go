package meter

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/signedjson"
	"github.com/zennet/zennet/internal/sshsig"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testSigner is a fixed ed25519 key, so that signatures (deterministic for
// ed25519) and the golden files are stable.
func testSigner(t testing.TB) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testReport() Report {
	var v Vector
	for i := range v {
		v[i] = uint64(i+1) * 1000
	}
	return Report{
		Lease:    "zn-0123456789abcdef0",
		Seq:      3,
		Start:    time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC),
		Time:     time.Date(2026, 11, 21, 10, 0, 15, 987654321, time.UTC),
		Counters: v,
	}
}

func signedTestReport(t testing.TB) Report {
	r := testReport()
	if err := r.Sign(testSigner(t)); err != nil {
		t.Fatal(err)
	}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(testdata, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update if intended):\ngot  %s\nwant %s", name, got, want)
	}
}

func TestReportGolden(t *testing.T) {
	r := signedTestReport(t)
	enc, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", enc)
	golden(t, "report.canonical.hex", []byte(hex.Dump(r.CanonicalBytes())))
}

func TestReportRoundTrip(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  any
	}{
		{name: "ed25519", key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))},
		{name: "ecdsa", key: ecKey},
		{name: "rsa", key: rsaKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, err := ssh.NewSignerFromKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			r := testReport()
			if err := r.Sign(signer); err != nil {
				t.Fatal(err)
			}
			if tt.name == "rsa" && r.Signature.Format != ssh.KeyAlgoRSASHA512 {
				t.Errorf("rsa signature format %s, want %s", r.Signature.Format, ssh.KeyAlgoRSASHA512)
			}
			enc, err := Encode(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.CanonicalBytes(), r.CanonicalBytes()) || got.Counters != r.Counters {
				t.Errorf("round trip changed the report:\n%+v\n%+v", r, got)
			}
			if err := got.Verify(signer.PublicKey()); err != nil {
				t.Errorf("verify: %v", err)
			}
		})
	}
}

func TestReportVerify(t *testing.T) {
	key := testSigner(t).PublicKey()
	other, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(r *Report)
		key    ssh.PublicKey
		ok     bool
	}{
		{name: "untouched", change: func(r *Report) {}, key: key, ok: true},
		{name: "lease", change: func(r *Report) { r.Lease = "zn-0123456789abcdef1" }, key: key},
		{name: "seq", change: func(r *Report) { r.Seq++ }, key: key},
		{name: "start", change: func(r *Report) { r.Start = r.Start.Add(time.Nanosecond) }, key: key},
		{name: "time", change: func(r *Report) { r.Time = r.Time.Add(-time.Nanosecond) }, key: key},
		{name: "cpu", change: func(r *Report) { r.Counters[CPU]++ }, key: key},
		{name: "last counter", change: func(r *Report) { r.Counters[NumCounters-1]-- }, key: key},
		{name: "unsigned", change: func(r *Report) { r.Signature = nil }, key: key},
		{name: "other key", change: func(r *Report) {}, key: other.PublicKey()},
		{name: "signed by other key", change: func(r *Report) { r.Sign(other) }, key: key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signedTestReport(t)
			tt.change(&r)
			err := r.Verify(tt.key)
			if tt.ok != (err == nil) {
				t.Fatalf("verify: %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadSignature) {
				t.Errorf("err %v is not ErrBadSignature", err)
			}
		})
	}
}

// TestReportRejectsSHA1 refuses RSA signatures made with SHA-1 even when
// the key made them.
func TestReportRejectsSHA1(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	r := testReport()
	r.Signature, err = signer.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, sshsig.SignedData(SignatureNamespace, r.CanonicalBytes()), ssh.KeyAlgoRSA)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(signer.PublicKey()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("verify: %v, want ErrBadSignature", err)
	}
}

func decodeCases(t testing.TB) []struct {
	name string
	in   string
} {
	enc, err := Encode(signedTestReport(t))
	if err != nil {
		t.Fatal(err)
	}
	good := string(enc)
	return []struct {
		name string
		in   string
	}{
		{name: "empty", in: ""},
		{name: "not json", in: "usage"},
		{name: "array", in: "[]"},
		{name: "unknown field", in: strings.Replace(good, `"v":1`, `"v":1,"x":2`, 1)},
		{name: "version 2", in: strings.Replace(good, `"v":1`, `"v":2`, 1)},
		{name: "no counters", in: strings.Replace(good, `"counters"`, `"counterz"`, 1)},
		{name: "null counters", in: `{"v":1,"lease":"zn-1","seq":1,"start":"2026-01-01T00:00:00Z","time":"2026-01-01T00:00:00Z","counters":null}`},
		{name: "unknown counter", in: strings.Replace(good, `"cpu_ns"`, `"gpu_ns"`, 1)},
		{name: "duplicate counter", in: strings.Replace(good, `"cpu_user_ns"`, `"cpu_ns"`, 1)},
		{name: "negative counter", in: strings.Replace(good, `"cpu_ns":1000`, `"cpu_ns":-1000`, 1)},
		{name: "fractional counter", in: strings.Replace(good, `"cpu_ns":1000`, `"cpu_ns":1000.5`, 1)},
		{name: "counter overflow", in: strings.Replace(good, `"cpu_ns":1000`, `"cpu_ns":18446744073709551616`, 1)},
		{name: "seq 0", in: strings.Replace(good, `"seq":3`, `"seq":0`, 1)},
		{name: "lease with slash", in: strings.Replace(good, `"zn-0123456789abcdef0"`, `"zn/../x"`, 1)},
		{name: "empty lease", in: strings.Replace(good, `"zn-0123456789abcdef0"`, `""`, 1)},
		{name: "time before 1970", in: strings.Replace(good, `"2026-11-21T10:00:15.987654321Z"`, `"1960-01-01T00:00:00Z"`, 1)},
		{name: "time after 2262", in: strings.Replace(good, `"2026-11-21T10:00:15.987654321Z"`, `"2300-01-01T00:00:00Z"`, 1)},
		{name: "trailing data", in: good + "{}"},
		{name: "empty signature", in: strings.Replace(good, `"format":"ssh-ed25519"`, `"format":""`, 1)},
		{name: "too big", in: good[:len(good)-2] + `,"pad":"` + strings.Repeat("x", MaxReportSize) + `"}`},
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tt := range decodeCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := Decode([]byte(tt.in)); err == nil {
				t.Errorf("decoded %+v", r)
			}
		})
	}
}

// FuzzDecode: whatever Decode accepts encodes again, and decodes to the
// same canonical bytes and signature.
func FuzzDecode(f *testing.F) {
	enc, err := Encode(signedTestReport(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add(readTestdata(f, "report.json"))
	for _, tt := range decodeCases(f) {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Encode(r)
		if err != nil {
			t.Fatalf("decoded report does not encode: %v", err)
		}
		r2, err := Decode(enc)
		if err != nil {
			t.Fatalf("encoded report does not decode: %v\n%s", err, enc)
		}
		if !bytes.Equal(r.CanonicalBytes(), r2.CanonicalBytes()) {
			t.Fatalf("canonical bytes changed in a round trip")
		}
		if (r.Signature == nil) != (r2.Signature == nil) ||
			r.Signature != nil && (r.Signature.Format != r2.Signature.Format || !bytes.Equal(r.Signature.Blob, r2.Signature.Blob)) {
			t.Fatalf("signature changed in a round trip")
		}
		enc2, err := Encode(r2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// TestSignatureIsSSHSIG checks the claim that report signatures are
// OpenSSH signatures (PROTOCOL.sshsig) over CanonicalBytes: ssh-keygen -Y
// verify accepts one, armored.
func TestSignatureIsSSHSIG(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("no ssh-keygen")
	}
	r := signedTestReport(t)
	pub := testSigner(t).PublicKey()
	b := []byte("SSHSIG")
	b = binary.BigEndian.AppendUint32(b, 1)
	for _, s := range []string{string(pub.Marshal()), SignatureNamespace, "", "sha512", string(ssh.Marshal(r.Signature))} {
		b = signedjson.AppendString(b, s)
	}
	dir := t.TempDir()
	sig := filepath.Join(dir, "sig")
	armored := "-----BEGIN SSH SIGNATURE-----\n" + base64.StdEncoding.EncodeToString(b) + "\n-----END SSH SIGNATURE-----\n"
	if err := os.WriteFile(sig, []byte(armored), 0o600); err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(allowed, append([]byte("provider "), ssh.MarshalAuthorizedKey(pub)...), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "provider", "-n", SignatureNamespace, "-s", sig)
	cmd.Stdin = bytes.NewReader(r.CanonicalBytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v: %s", err, out)
	}
}
