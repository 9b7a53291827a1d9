package signedjson

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestAppendString(t *testing.T) {
	got := AppendString([]byte{9}, "ab")
	if want := []byte{9, 0, 0, 0, 2, 'a', 'b'}; !bytes.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSig(t *testing.T) {
	if FromSignature(nil) != nil {
		t.Fatal("FromSignature(nil) is not nil")
	}
	if sig, err := (*Sig)(nil).Signature(); sig != nil || err != nil {
		t.Fatalf("nil Sig: %v, %v", sig, err)
	}
	good := &ssh.Signature{Format: "ssh-ed25519", Blob: []byte{1, 2}, Rest: []byte{3}}
	back, err := FromSignature(good).Signature()
	if err != nil || back.Format != good.Format || !bytes.Equal(back.Blob, good.Blob) || !bytes.Equal(back.Rest, good.Rest) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	tests := []struct {
		name string
		sig  Sig
	}{
		{name: "no format", sig: Sig{Blob: []byte{1}}},
		{name: "long format", sig: Sig{Format: strings.Repeat("x", maxFormat+1), Blob: []byte{1}}},
		{name: "no blob", sig: Sig{Format: "ssh-ed25519"}},
		{name: "huge blob", sig: Sig{Format: "ssh-ed25519", Blob: make([]byte, maxBlob+1)}},
		{name: "huge rest", sig: Sig{Format: "ssh-ed25519", Blob: []byte{1}, Rest: make([]byte, maxRest+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.sig.Signature(); !errors.Is(err, ErrMalformedSignature) {
				t.Fatalf("err = %v, want ErrMalformedSignature", err)
			}
		})
	}
}

type msg struct {
	A int  `json:"a"`
	S *Sig `json:"sig,omitempty"`
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{name: "good", in: `{"a":1}`, ok: true},
		{name: "with sig", in: `{"a":1,"sig":{"format":"f","blob":"AQ=="}}`, ok: true},
		{name: "unknown field", in: `{"a":1,"b":2}`},
		{name: "trailing data", in: `{"a":1} {"a":2}`},
		{name: "trailing brace", in: `{"a":1}}`},
		{name: "truncated", in: `{"a":1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m msg
			if err := Unmarshal([]byte(tt.in), &m); (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestLine(t *testing.T) {
	b, err := EncodeLine(msg{A: 7}, 100)
	if err != nil || string(b) != "{\"a\":7}\n" {
		t.Fatalf("EncodeLine = %q, %v", b, err)
	}
	if _, err := EncodeLine(msg{A: 7}, len(b)-2); err == nil {
		t.Fatal("EncodeLine over max succeeded")
	}
	if _, err := EncodeLine(msg{A: 7}, len(b)-1); err != nil {
		t.Fatalf("EncodeLine of exactly max bytes: %v", err)
	}
	var m msg
	if err := DecodeLine(b, len(b)-1, &m); err != nil || m.A != 7 {
		t.Fatalf("DecodeLine = %+v, %v", m, err)
	}
	if err := DecodeLine(b, len(b)-2, &m); err == nil {
		t.Fatal("DecodeLine over max succeeded")
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"a":1,"sig":{"format":"f","blob":"AQ=="}}`))
	f.Add([]byte(`{"a":1} x`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m msg
		if Unmarshal(b, &m) != nil {
			return
		}
		out, err := EncodeLine(m, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var again msg
		if err := DecodeLine(out, 1<<20, &again); err != nil {
			t.Fatalf("re-decode of %q: %v", out, err)
		}
	})
}
