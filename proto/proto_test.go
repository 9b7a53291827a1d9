package proto

import (
	"errors"
	"io"
	"strings"
	"testing"
)

var decodeTests = []struct {
	name    string
	in      string
	wantErr string
}{
	{"demand", `{"v":1,"type":"demand","demand":{"count":3,"limits":{"memory_bytes":536870912,"cpus":1}}}`, ""},
	{"accept", `{"v":1,"type":"accept","accept":{"count":2}}`, ""},
	{"offer", `{"v":1,"type":"offer","offer":{"count":2,"limits":{"memory_bytes":67108864,"cpus":1,"disk_bytes":1073741824},"expiry":"2026-01-01T00:00:00Z","interval_s":5,"payment":{"methods":["embedded"],"rates":{"cpu_ns":"1/1000000"},"grace_s":10,"unpaid_timeout_s":60}}}`, ""},
	{"offer without payment", `{"v":1,"type":"offer","offer":{"count":2,"limits":{"memory_bytes":67108864,"cpus":1},"expiry":"2026-01-01T00:00:00Z","interval_s":5}}`, "no method"},
	{"offer without rates", `{"v":1,"type":"offer","offer":{"count":2,"limits":{"memory_bytes":67108864,"cpus":1},"expiry":"2026-01-01T00:00:00Z","interval_s":5,"payment":{"methods":["embedded"],"grace_s":10,"unpaid_timeout_s":60}}}`, "without rates"},
	{"offer timeout below grace", `{"v":1,"type":"offer","offer":{"count":2,"limits":{"memory_bytes":67108864,"cpus":1},"expiry":"2026-01-01T00:00:00Z","interval_s":5,"payment":{"methods":["embedded"],"rates":{},"grace_s":10,"unpaid_timeout_s":5}}}`, "unpaid timeout"},
	{"accept asking progress", `{"v":1,"type":"accept","accept":{"count":2,"progress":true}}`, ""},
	{"starting", `{"v":1,"type":"starting","starting":{"started":1,"count":2}}`, ""},
	{"starting all", `{"v":1,"type":"starting","starting":{"started":2,"count":2}}`, ""},
	{"starting none", `{"v":1,"type":"starting","starting":{"started":0,"count":2}}`, "started must be 1 to count"},
	{"starting more than asked", `{"v":1,"type":"starting","starting":{"started":3,"count":2}}`, "started must be 1 to count"},
	{"starting empty", `{"v":1,"type":"starting"}`, "carries 0 payloads"},
	{"accept method", `{"v":1,"type":"accept","accept":{"count":2,"method":"lightning"}}`, ""},
	{"usage with request", `{"v":1,"type":"usage","usage":{"any":"thing"},"pay_request":{"x":1},"final":true}`, ""},
	{"request without usage", `{"v":1,"type":"accept","accept":{"count":2},"pay_request":{"x":1}}`, "only usage may"},
	{"payment", `{"v":1,"type":"payment","payment":{"method":"embedded"}}`, ""},
	{"credit", `{"v":1,"type":"credit","credit":{"id":"zn-0123456789abcdef0","paid_msat":5,"billed_msat":7}}`, ""},
	{"credit bad id", `{"v":1,"type":"credit","credit":{"id":"x","paid_msat":5,"billed_msat":7}}`, "invalid lease id"},
	{"state", `{"v":1,"type":"state","state":{"id":"zn-0123456789abcdef0","state":"paused","reason":"unpaid"}}`, ""},
	{"state with cause", `{"v":1,"type":"state","state":{"id":"zn-0123456789abcdef0","state":"paused","cause":"owner_busy","reason":"the owner is busy"}}`, ""},
	{"ended", `{"v":1,"type":"ended","ended":{"id":"zn-0123456789abcdef0","cause":"memory_exceeded","reason":"memory limit exceeded"}}`, ""},
	{"ended without cause", `{"v":1,"type":"ended","ended":{"id":"zn-0123456789abcdef0","reason":"from a provider built before causes"}}`, ""},
	{"state unknown", `{"v":1,"type":"state","state":{"id":"zn-0123456789abcdef0","state":"sleeping"}}`, "invalid lease id or state"},
	{"offer without interval", `{"v":1,"type":"offer","offer":{"count":2,"limits":{"memory_bytes":67108864,"cpus":1},"expiry":"2026-01-01T00:00:00Z","payment":{"methods":["embedded"],"rates":{"cpu_ns":"1/1000000"},"grace_s":10,"unpaid_timeout_s":60}}}`, "invalid count, limits or interval"},
	{"usage", `{"v":1,"type":"usage","usage":{"any":"thing"}}`, ""},
	{"usage empty", `{"v":1,"type":"usage"}`, "carries 0 payloads"},
	{"demand interval", `{"v":1,"type":"demand","demand":{"count":1,"limits":{"memory_bytes":536870912,"cpus":1},"interval_s":61}}`, "usage interval 61s"},
	{"lease", `{"v":1,"type":"lease","lease":{"id":"zn-0123456789abcdef0","limits":{"memory_bytes":67108864,"cpus":0.5},"host_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPbnrOL0Q4b4ZrN/CrN7+SlOz4Lv8pEa5lVHQ934ieLW","started":"2026-01-01T00:00:00Z"}}`, ""},
	// A provider's lease whose host key would add its own lines to the
	// renter's known_hosts.
	{"lease key with a second line", `{"v":1,"type":"lease","lease":{"id":"zn-0123456789abcdef0","limits":{"memory_bytes":67108864,"cpus":0.5},"host_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPbnrOL0Q4b4ZrN/CrN7+SlOz4Lv8pEa5lVHQ934ieLW\n* ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPbnrOL0Q4b4ZrN/CrN7+SlOz4Lv8pEa5lVHQ934ieLW"}}`, "not one public key"},
	{"lease key as a CA", `{"v":1,"type":"lease","lease":{"id":"zn-0123456789abcdef0","limits":{"memory_bytes":67108864,"cpus":0.5},"host_key":"@cert-authority * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPbnrOL0Q4b4ZrN/CrN7+SlOz4Lv8pEa5lVHQ934ieLW"}}`, "not one public key"},
	{"lease key with options", `{"v":1,"type":"lease","lease":{"id":"zn-0123456789abcdef0","limits":{"memory_bytes":67108864,"cpus":0.5},"host_key":"command=\"x\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPbnrOL0Q4b4ZrN/CrN7+SlOz4Lv8pEa5lVHQ934ieLW"}}`, "not one public key"},
	{"lease key with a comment", `{"v":1,"type":"lease","lease":{"id":"zn-0123456789abcdef0","limits":{"memory_bytes":67108864,"cpus":0.5},"host_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPbnrOL0Q4b4ZrN/CrN7+SlOz4Lv8pEa5lVHQ934ieLW x"}}`, "not one public key"},
	{"lease key not a key", `{"v":1,"type":"lease","lease":{"id":"zn-0123456789abcdef0","limits":{"memory_bytes":67108864,"cpus":0.5},"host_key":"ssh-ed25519 AAAA"}}`, "not one public key"},
	{"release", `{"v":1,"type":"release","release":{"ids":["zn-0123456789abcdef0"]}}`, ""},
	{"error", `{"v":1,"type":"error","error":{"code":"capacity","message":"full"}}`, ""},
	{"wrong version", `{"v":2,"type":"accept","accept":{"count":2}}`, "version mismatch"},
	{"no version", `{"type":"accept","accept":{"count":2}}`, "version mismatch"},
	{"unknown type", `{"v":1,"type":"hello","accept":{"count":2}}`, "unknown message type"},
	{"payload mismatch", `{"v":1,"type":"demand","accept":{"count":2}}`, "without its payload"},
	{"two payloads", `{"v":1,"type":"accept","accept":{"count":2},"release":{"ids":[]}}`, "carries 2 payloads"},
	{"no payload", `{"v":1,"type":"accept"}`, "carries 0 payloads"},
	{"unknown field", `{"v":1,"type":"accept","accept":{"count":2},"x":1}`, "unknown field"},
	{"trailing", `{"v":1,"type":"accept","accept":{"count":2}} {}`, "trailing data"},
	{"zero hosts", `{"v":1,"type":"demand","demand":{"count":0,"limits":{"memory_bytes":536870912,"cpus":1}}}`, "host count 0"},
	{"too many hosts", `{"v":1,"type":"demand","demand":{"count":10001,"limits":{"memory_bytes":536870912,"cpus":1}}}`, "host count 10001"},
	{"tiny memory", `{"v":1,"type":"demand","demand":{"count":1,"limits":{"memory_bytes":1,"cpus":1}}}`, "memory 1 bytes"},
	{"no cpu", `{"v":1,"type":"demand","demand":{"count":1,"limits":{"memory_bytes":536870912,"cpus":0}}}`, "cpus 0"},
	{"bad lease id", `{"v":1,"type":"lease","lease":{"id":"zn-../../etc","limits":{"memory_bytes":67108864,"cpus":1},"host_key":"k"}}`, "invalid id"},
	{"bad release id", `{"v":1,"type":"release","release":{"ids":["zn-0123"]}}`, "invalid lease id"},
	{"empty error", `{"v":1,"type":"error","error":{"code":"x","message":""}}`, "without its payload"},
	{"not json", `hello`, "decode message"},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				b, err := Encode(m)
				if err != nil {
					t.Fatalf("Encode after Decode: %v", err)
				}
				if _, err := Decode(b); err != nil {
					t.Fatalf("round trip: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Decode error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, tt := range decodeTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to an equal message.
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		if _, err := Decode(enc); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func TestValidLeaseID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"zn-0123456789abcdef0", true},
		{"zn-0123456789ABCDEF0", false},
		{"zn-0123456789abcdef", false},
		{"zn-0123456789abcdef01", false},
		{"xx-0123456789abcdef0", false},
		{"zn-0123456789abcdeg0", false},
		{"", false},
	} {
		if got := ValidLeaseID(tt.id); got != tt.want {
			t.Errorf("ValidLeaseID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestReaderLimits(t *testing.T) {
	long := `{"v":1,"type":"error","error":{"code":"x","message":"` + strings.Repeat("a", MaxMessageSize) + `"}}` + "\n"
	r := NewReader(strings.NewReader(long))
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized message: err = %v", err)
	}
	r = NewReader(strings.NewReader(`{"v":1,"type":"accept","accept":{"count":1}}`))
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("unterminated message: err = %v, want ErrUnexpectedEOF", err)
	}
	r = NewReader(strings.NewReader(""))
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("empty stream: err = %v, want EOF", err)
	}
}

func TestErrorCodesRoundTrip(t *testing.T) {
	for _, sentinel := range []error{ErrCapacity, ErrBadRequest, ErrVersion, ErrNotFound} {
		m := ErrorMessage(sentinel)
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(got.Error, sentinel) {
			t.Errorf("%v did not survive the wire: code %q", sentinel, got.Error.Code)
		}
	}
}

// TestCauseOmittedWhenEmpty: a message without a cause encodes as it did
// before causes existed, so that a peer built before them decodes it
// (unknown fields are rejected).
func TestCauseOmittedWhenEmpty(t *testing.T) {
	for _, m := range []Message{
		{Type: TypeEnded, Ended: &Ended{ID: "zn-0123456789abcdef0", Reason: "gone"}},
		{Type: TypeState, State: &LeaseState{ID: "zn-0123456789abcdef0", State: StateRunning}},
	} {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "cause") {
			t.Errorf("%s without a cause encodes as %s", m.Type, b)
		}
	}
}
