package pay

import (
	"bytes"
	"strings"
	"testing"
)

func requestCases() []struct{ name, in string } {
	good := `{"method":"embedded","lease":"zn-0123456789abcdef0","seq":3,"msat":1000}`
	ln := `{"method":"lightning","lease":"zn-0123456789abcdef0","seq":3,"msat":1000,"invoice":"lnsb10n1p..."}`
	return []struct{ name, in string }{
		{name: "empty", in: ""},
		{name: "null", in: "null"},
		{name: "unknown method", in: strings.Replace(good, "embedded", "cash", 1)},
		{name: "unknown field", in: strings.Replace(good, `"seq":3`, `"seq":3,"x":1`, 1)},
		{name: "amount 0", in: strings.Replace(good, `"msat":1000`, `"msat":0`, 1)},
		{name: "negative amount", in: strings.Replace(good, `"msat":1000`, `"msat":-1000`, 1)},
		{name: "bad lease", in: strings.Replace(good, "zn-0123456789abcdef0", "../x", 1)},
		{name: "embedded with invoice", in: strings.Replace(ln, "lightning", "embedded", 1)},
		{name: "lightning without invoice", in: strings.Replace(good, "embedded", "lightning", 1)},
		{name: "trailing data", in: good + "{}"},
		{name: "too big", in: strings.Replace(ln, "lnsb10n1p...", strings.Repeat("x", MaxMessageSize), 1)},
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	for _, tt := range requestCases() {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := DecodeRequest([]byte(tt.in)); err == nil {
				t.Errorf("decoded %+v", r)
			}
		})
	}
}

// FuzzDecodeRequest: whatever DecodeRequest accepts encodes again and
// decodes to the same request.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"method":"embedded","lease":"zn-0123456789abcdef0","seq":3,"msat":1000}`))
	f.Add([]byte(`{"method":"lightning","lease":"zn-0123456789abcdef0","seq":3,"msat":1000,"invoice":"lnsb1"}`))
	for _, tt := range requestCases() {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		enc, err := EncodeRequest(r)
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		r2, err := DecodeRequest(enc)
		if err != nil || r2 != r {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
	})
}

func proofCases(t testing.TB) []struct{ name, in string } {
	v, err := EncodeVoucher(testVoucher(t, 3, 3000))
	if err != nil {
		t.Fatal(err)
	}
	voucher := strings.TrimSpace(string(v))
	hash := strings.Repeat("ab", 32)
	good := `{"method":"embedded","lease":"zn-0123456789abcdef0","msat":3000,"voucher":` + voucher + `}`
	ln := `{"method":"lightning","lease":"zn-0123456789abcdef0","msat":3000,"payment_hash":"` + hash + `","preimage":"` + hash + `"}`
	return []struct{ name, in string }{
		{name: "empty", in: ""},
		{name: "embedded without voucher", in: `{"method":"embedded","lease":"zn-0123456789abcdef0","msat":3000}`},
		{name: "voucher for another lease", in: strings.Replace(good, `"lease":"zn-0123456789abcdef0"`, `"lease":"zn-fffffffffffffffff"`, 1)},
		{name: "embedded with a hash", in: strings.Replace(good, `"msat":3000`, `"msat":3000,"payment_hash":"`+hash+`"`, 1)},
		{name: "lightning with a voucher", in: strings.Replace(good, "embedded", "lightning", 1)},
		{name: "short hash", in: strings.Replace(ln, `"payment_hash":"`+hash, `"payment_hash":"abab`, 1)},
		{name: "uppercase hash", in: strings.Replace(ln, `"payment_hash":"`+hash, `"payment_hash":"`+strings.ToUpper(hash), 1)},
		{name: "bad preimage", in: strings.Replace(ln, `"preimage":"`+hash, `"preimage":"zz`, 1)},
		{name: "bad voucher", in: strings.Replace(good, `"v":1`, `"v":9`, 1)},
		{name: "unknown field", in: strings.Replace(ln, `"msat":3000`, `"msat":3000,"tip":1`, 1)},
	}
}

func TestDecodeProofErrors(t *testing.T) {
	for _, tt := range proofCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := DecodeProof([]byte(tt.in)); err == nil {
				t.Errorf("decoded %+v", p)
			}
		})
	}
}

// FuzzDecodeProof: whatever DecodeProof accepts encodes again, stably.
func FuzzDecodeProof(f *testing.F) {
	v, err := EncodeVoucher(testVoucher(f, 3, 3000))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"method":"embedded","lease":"zn-0123456789abcdef0","msat":3000,"voucher":` + strings.TrimSpace(string(v)) + `}`))
	f.Add([]byte(`{"method":"lightning","lease":"zn-0123456789abcdef0","msat":3000,"payment_hash":"` + strings.Repeat("ab", 32) + `"}`))
	for _, tt := range proofCases(f) {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeProof(b)
		if err != nil {
			return
		}
		enc, err := EncodeProof(p)
		if err != nil {
			t.Fatalf("decoded proof does not encode: %v", err)
		}
		p2, err := DecodeProof(enc)
		if err != nil {
			t.Fatalf("encoded proof does not decode: %v", err)
		}
		enc2, err := EncodeProof(p2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzLedgerRecords: the ledger's record decoders refuse or accept any
// bytes without panicking, and what they accept has a state, kind and
// number.
func FuzzLedgerRecords(f *testing.F) {
	f.Add([]byte(`{"id":"voucher-1","lease":"zn-1","method":"embedded","seq":1,"msat":5,"request":{"method":"embedded","lease":"zn-1","seq":1,"msat":5},"state":"pending","created":"2026-11-21T10:00:00Z"}`))
	f.Add([]byte(`{"lease":"zn-1","n":3,"time":"2026-11-21T10:00:00Z","kind":"bill","msat":5,"billed_msat":5,"paid_msat":0}`))
	f.Add([]byte(`{"state":"lost"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if in, err := decodeIntent(b); err == nil && (in.ID == "" || in.State == "") {
			t.Fatalf("accepted intent %+v", in)
		}
		if e, err := decodeEntry(b); err == nil && (e.N == 0 || e.Kind == "") {
			t.Fatalf("accepted entry %+v", e)
		}
	})
}
