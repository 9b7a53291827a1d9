package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/meter"
)

// testSet is a small valid set, as Calibrate would make it.
func testSet(t testing.TB) *Set {
	t.Helper()
	s := &Set{
		Suite:   Suite{Name: SuiteName, Version: SuiteVersion},
		Created: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC),
		Machine: Machine{CPUModel: "AMD EPYC", Cores: 2, MemoryBytes: 24 << 30, Kernel: "6.18.44", Arch: "amd64", Platform: "systrap", Runsc: "sha256:a2e4fc7cd3188f9b"},
		Sandbox: SandboxInfo{MemoryBytes: 1 << 30},
		Run:     RunInfo{Seconds: 2.5, Seed: 7, Note: "test"},
	}
	s.Machine.Fingerprint = s.Machine.HardwareFingerprint()
	for i, w := range []string{"hash", "int"} {
		var d meter.Vector
		d[meter.CPU] = uint64(1e9 * (i + 1))
		d[meter.CtxSwitchesVoluntary] = 12345
		d[meter.MemoryTime] = 77777
		st := Step{Workload: w, Seed: uint64(100 + i), Params: Params{"block": "1024"}, Workers: 2, Ops: 1e9, Unit: "bytes", Score: 4e8}
		st.setCounters(d, 2.5+float64(i)/7)
		s.Steps = append(s.Steps, st)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustMarshal(t testing.TB, s *Set) []byte {
	t.Helper()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSetRoundTrip(t *testing.T) {
	s := testSet(t)
	if err := s.Sign(testenv.Signer(t)); err != nil {
		t.Fatal(err)
	}
	b := mustMarshal(t, s)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("verify decoded set: %v", err)
	}
	if b2 := mustMarshal(t, got); !bytes.Equal(b, b2) {
		t.Errorf("encode(decode(b)) differs from b:\n%s\n%s", b, b2)
	}
	// Layout is not content: compact, re-indented JSON still verifies.
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatal(err)
	}
	got, err = Decode(compact.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Errorf("verify compacted set: %v", err)
	}
	counters, rows, scores := got.Matrix()
	if len(rows) != 2 || len(scores) != 2 || len(counters) != int(meter.NumCounters) || counters[0] != "cpu_ns" {
		t.Fatalf("matrix: %v, %d rows", counters, len(rows))
	}
	if rows[1][0] != got.Steps[1].Rate(meter.CPU) || scores[0] != 4e8 {
		t.Errorf("matrix rows do not match the steps")
	}
}

func TestVerify(t *testing.T) {
	signed := testSet(t)
	if err := signed.Sign(testenv.Signer(t)); err != nil {
		t.Fatal(err)
	}
	good := string(mustMarshal(t, signed))
	unsigned := string(mustMarshal(t, testSet(t)))
	otherSig := func() string {
		s := testSet(t)
		s.Run.Note = "another"
		s.Sign(testenv.Signer(t))
		d, _ := Decode(mustMarshal(t, s))
		d2, _ := Decode([]byte(good))
		d2.Signature = d.Signature
		return string(mustMarshal(t, d2))
	}()
	tests := []struct {
		name string
		file string
		want error
	}{
		{"signed", good, nil},
		{"unsigned", unsigned, ErrUnsigned},
		{"score changed", strings.Replace(good, `"score": 400000000`, `"score": 400000001`, 1), ErrBadSignature},
		{"note changed", strings.Replace(good, `"note": "test"`, `"note": "tesT"`, 1), ErrBadSignature},
		{"param changed", strings.Replace(good, `"block": "1024"`, `"block": "1025"`, 1), ErrBadSignature},
		{"machine changed", strings.Replace(good, `"cores": 2`, `"cores": 3`, 1), ErrBadSignature},
		{"signature of another set", otherSig, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.file == good && tt.name != "signed" {
				t.Fatal("the edit did not apply")
			}
			s, err := Decode([]byte(tt.file))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := s.Verify(); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	s := testSet(t)
	s.Sign(testenv.Signer(t))
	good := string(mustMarshal(t, s))
	tests := []struct {
		name, file, want string
	}{
		{"empty", "", "empty file"},
		{"truncated", good[:len(good)/2], "truncated"},
		{"truncated at the end", good[:len(good)-3], "truncated"},
		{"not json", "calibration", "not JSON"},
		{"trailing data", good + "{}", "trailing data"},
		{"unknown field", strings.Replace(good, `"version": 1,`, `"version": 1, "extra": 1,`, 1), "unknown field"},
		{"other format", strings.Replace(good, Format, "zennet-report", 1), "format"},
		{"future version", strings.Replace(good, `"version": 1,`, `"version": 2,`, 1), "format version 2"},
		{"rate not delta over seconds", strings.Replace(good, `"cpu_ns": 400000000`, `"cpu_ns": 400000001`, 1), "not its delta"},
		{"negative score", strings.Replace(good, `"score": 400000000`, `"score": -1`, 1), "not negative"},
		{"no steps", func() string {
			w := s.wire(true)
			w.Steps = []Step{}
			b, _ := json.Marshal(w)
			return string(b)
		}(), "0 steps"},
		{"bad fingerprint", strings.Replace(good, s.Machine.Fingerprint, "xyz", 1), "fingerprint"},
		{"signer without signature", strings.Replace(good, `"signature": {`, `"signaturX": {`, 1), "unknown field"},
		{"bad signer key", strings.Replace(good, `"signer": "ssh-ed25519 `, `"signer": "ssh-ed25519 AAAA`, 1), "signer"},
		{"string for number", strings.Replace(good, `"workers": 2`, `"workers": "2"`, 1), "workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.file == good {
				t.Fatal("the edit did not apply")
			}
			_, err := Decode([]byte(tt.file))
			if !errors.Is(err, ErrInvalidSet) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode = %v, want ErrInvalidSet saying %q", err, tt.want)
			}
		})
	}
}

// TestTestdataSets checks the calibration sets produced on the reference
// machine: they decode, verify, share their steps (one seed) and have a
// counter matrix of full column rank over the counters that vary.
func TestTestdataSets(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/calibration/*.json")
	if len(paths) == 0 {
		t.Fatal("no calibration sets in testdata/calibration")
	}
	var first *Set
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			s, err := ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Verify(); err != nil {
				t.Fatal(err)
			}
			if s.Suite.Name != SuiteName || s.Suite.Version != SuiteVersion {
				t.Errorf("suite %v", s.Suite)
			}
			if first == nil {
				first = s
			} else if len(s.Steps) != len(first.Steps) {
				t.Errorf("%d steps, %d in the first set", len(s.Steps), len(first.Steps))
			} else {
				for i := range s.Steps {
					if a, b := s.Steps[i], first.Steps[i]; a.Workload != b.Workload || describeParams(a.Params) != describeParams(b.Params) {
						t.Errorf("step %d: %s %v, the first set has %s %v", i+1, a.Workload, a.Params, b.Workload, b.Params)
					}
				}
			}
			for i, st := range s.Steps {
				if st.Score <= 0 || st.Rate(meter.CPU) <= 0 {
					t.Errorf("step %d (%s): score %v, cpu %v", i+1, st.Workload, st.Score, st.Rate(meter.CPU))
				}
			}
		})
	}
}

func TestTestdataTampered(t *testing.T) {
	b, err := os.ReadFile("../testdata/calibration/systrap.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	// A provider that doubles its scores and rates keeps every rate its
	// delta over its seconds, and still fails.
	s.Steps[0].Score *= 2
	tampered := mustMarshal(t, s)
	d, err := Decode(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify of a doubled score = %v, want ErrBadSignature", err)
	}
	if _, err := Decode(b[:len(b)*2/3]); !errors.Is(err, ErrInvalidSet) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Decode of a truncated file = %v", err)
	}
}

// FuzzDecode feeds the decoder arbitrary bytes. Whatever it accepts must
// encode again, decode to the same canonical bytes, and verify exactly when
// the original did.
func FuzzDecode(f *testing.F) {
	s := testSet(f)
	f.Add(mustMarshal(f, s))
	s.Sign(testenv.Signer(f))
	good := mustMarshal(f, s)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(strings.Replace(string(good), `"score": 400000000`, `"score": 1e400`, 1)))
	f.Add([]byte(`{"format":"zennet-calibration","version":1}`))
	f.Add([]byte(`null`))
	if b, err := os.ReadFile("../testdata/calibration/ptrace.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidSet) {
				t.Fatalf("error does not wrap ErrInvalidSet: %v", err)
			}
			return
		}
		c1, err := s.CanonicalBytes()
		if err != nil {
			t.Fatal(err)
		}
		enc, err := s.Marshal()
		if err != nil {
			t.Fatalf("decoded set does not encode: %v", err)
		}
		s2, err := Decode(enc)
		if err != nil {
			t.Fatalf("encoded set does not decode: %v\n%s", err, enc)
		}
		c2, _ := s2.CanonicalBytes()
		if !bytes.Equal(c1, c2) {
			t.Fatalf("canonical bytes changed over a round trip:\n%s\n%s", c1, c2)
		}
		if v1, v2 := s.Verify(), s2.Verify(); (v1 == nil) != (v2 == nil) {
			t.Fatalf("verify changed over a round trip: %v, %v", v1, v2)
		}
	})
}
