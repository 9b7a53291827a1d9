package bench

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/signedjson"
	"github.com/zennet/zennet/internal/sshsig"
	"github.com/zennet/zennet/meter"
)

// Format and Version identify calibration set files. Bump Version when the
// meaning of a field changes; a decoder rejects versions it does not know.
const (
	Format  = "zennet-calibration"
	Version = 1
)

// MaxSetSize bounds an encoded calibration set.
const MaxSetSize = 8 << 20

// MaxSteps bounds the steps of one set.
const MaxSteps = 4096

// SignatureNamespace is the namespace of calibration set signatures, made
// as OpenSSH's PROTOCOL.sshsig describes (package internal/sshsig, as usage
// reports are, with their own namespace): a signature over a set can pass
// for nothing else the key signs.
const SignatureNamespace = "calibration-set-v1@zennet"

// Errors of decoding and verifying sets; the messages say what is wrong.
var (
	// ErrInvalidSet means the file is not a well-formed calibration set:
	// truncated, not JSON, a field missing or out of range.
	ErrInvalidSet = errors.New("invalid calibration set")
	// ErrUnsigned means the set carries no signature.
	ErrUnsigned = errors.New("calibration set is not signed")
	// ErrBadSignature means the signature does not verify: the set was
	// changed after it was signed, or the signature is not the signer's.
	ErrBadSignature = errors.New("calibration set signature does not verify")
)

// Set is a calibration set: the counter rates and scores of the steps of
// one benchmark run, with what it ran on, optionally signed by the
// benchmarker.
type Set struct {
	Suite   Suite
	Created time.Time
	Machine Machine
	Sandbox SandboxInfo
	Run     RunInfo
	Steps   []Step
	// Signer is the benchmarker's SSH public key, Signature its signature
	// over CanonicalBytes; both nil on an unsigned set.
	Signer    ssh.PublicKey
	Signature *ssh.Signature
}

// Suite names the benchmark suite of a set.
type Suite struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// SandboxInfo says what the benchmark sandbox was given.
type SandboxInfo struct {
	// CPUs is its CPU quota in cores; 0 means none.
	CPUs float64 `json:"cpus"`
	// MemoryBytes is its memory limit.
	MemoryBytes int64 `json:"memory_bytes"`
}

// RunInfo says how the steps were chosen and under which conditions.
type RunInfo struct {
	// Seconds is the length of each step as asked.
	Seconds float64 `json:"seconds"`
	// Seed chose the steps' workloads and seeds.
	Seed uint64 `json:"seed"`
	// Note describes the conditions, e.g. "neighbour: 2 CPU burners".
	Note string `json:"note,omitempty"`
}

// Step is one step of a run: one workload at full load for a few seconds.
type Step struct {
	// Workload names the suite's workload, or "pts" for a Phoronix Test
	// Suite result.
	Workload string `json:"workload"`
	// Seed drew the parameters: replaying Workload with Seed repeats the
	// step exactly.
	Seed   uint64 `json:"seed"`
	Params Params `json:"params"`
	// Workers is how many ran at once.
	Workers int `json:"workers"`
	// Seconds is the wall time between the meter's samples that bracket
	// the step, as the host measured it.
	Seconds float64 `json:"seconds"`
	// Ops is the work done, counted in Unit; Score is Ops per second as
	// the workload measured it inside the sandbox.
	Ops   float64 `json:"ops"`
	Unit  string  `json:"unit"`
	Score float64 `json:"score"`
	// Delta holds the meter's counter deltas over the step and Rates the
	// same divided by Seconds (the step's row of the calibration matrix),
	// both keyed by meter counter name.
	Delta map[string]uint64  `json:"delta"`
	Rates map[string]float64 `json:"rates"`
	// PTS holds the Phoronix Test Suite results of a "pts" step: every
	// result of the batch run, the first of which is the step's score.
	PTS []PTSResult `json:"pts,omitempty"`
}

// Rate returns the step's rate of counter c, 0 if the step lacks it.
func (s *Step) Rate(c meter.Counter) float64 { return s.Rates[c.Name()] }

// setStep fills Delta and Rates from a counter delta over seconds.
func (s *Step) setCounters(d meter.Vector, seconds float64) {
	s.Seconds = seconds
	s.Delta = make(map[string]uint64, meter.NumCounters)
	s.Rates = make(map[string]float64, meter.NumCounters)
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		s.Delta[c.Name()] = d[c]
		s.Rates[c.Name()] = float64(d[c]) / seconds
	}
}

// Counters returns the names of the set's counters: the meter's, in its
// order, then any the meter of this build does not know, sorted.
func (s *Set) Counters() []string {
	if len(s.Steps) == 0 {
		return nil
	}
	var names, extra []string
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		if _, ok := s.Steps[0].Rates[c.Name()]; ok {
			names = append(names, c.Name())
		}
	}
	for name := range s.Steps[0].Rates {
		if _, ok := meter.CounterByName(name); !ok {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	return append(names, extra...)
}

// Matrix returns the calibration matrix V, one row of counter rates per
// step in the order of Counters, and the scores s.
func (s *Set) Matrix() (counters []string, rows [][]float64, scores []float64) {
	counters = s.Counters()
	for _, st := range s.Steps {
		row := make([]float64, len(counters))
		for j, name := range counters {
			row[j] = st.Rates[name]
		}
		rows = append(rows, row)
		scores = append(scores, st.Score)
	}
	return counters, rows, scores
}

// setJSON is the file form of a Set. Its field order is the canonical
// order: CanonicalBytes is this struct, compact, without signature.
type setJSON struct {
	Format    string          `json:"format"`
	Version   int             `json:"version"`
	Suite     Suite           `json:"suite"`
	Created   time.Time       `json:"created"`
	Machine   Machine         `json:"machine"`
	Sandbox   SandboxInfo     `json:"sandbox"`
	Run       RunInfo         `json:"run"`
	Steps     []Step          `json:"steps"`
	Signer    string          `json:"signer,omitempty"`
	Signature *signedjson.Sig `json:"signature,omitempty"`
}

func (s *Set) wire(withSig bool) setJSON {
	w := setJSON{
		Format: Format, Version: Version, Suite: s.Suite, Created: s.Created.UTC(),
		Machine: s.Machine, Sandbox: s.Sandbox, Run: s.Run, Steps: s.Steps,
	}
	if s.Signer != nil {
		w.Signer = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.Signer)))
	}
	if withSig {
		w.Signature = signedjson.FromSignature(s.Signature)
	}
	return w
}

// CanonicalBytes is what a signature covers: the set as compact JSON in
// the file's field order, map keys sorted, numbers in the shortest form
// that reads back exactly, times in UTC, without the signature but with
// the signer's key. Re-encoding a decoded set gives the same bytes, so
// layout (indentation, key order, number spelling) may change without
// breaking the signature, and any change of a value breaks it.
func (s *Set) CanonicalBytes() ([]byte, error) {
	return json.Marshal(s.wire(false))
}

// Encode writes the set as indented JSON, after checking it.
func (s *Set) Encode(w io.Writer) error {
	if err := s.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s.wire(true), "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Marshal returns the set as Encode writes it.
func (s *Set) Marshal() ([]byte, error) {
	var b bytes.Buffer
	err := s.Encode(&b)
	return b.Bytes(), err
}

// Decode reads and checks one calibration set from b; it does not verify
// the signature (Verify does). Errors wrap ErrInvalidSet and say what is
// wrong: truncated, not JSON, an unknown or missing field, a value out of
// range.
func Decode(b []byte) (*Set, error) {
	s, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSet, err)
	}
	return s, nil
}

func decode(b []byte) (*Set, error) {
	if len(b) > MaxSetSize {
		return nil, fmt.Errorf("%d bytes, more than the %d a set may have", len(b), MaxSetSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty file")
	}
	var w setJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return nil, fmt.Errorf("truncated: the JSON ends after %d bytes", len(b))
		case errors.As(err, &se):
			return nil, fmt.Errorf("not JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return nil, fmt.Errorf("field %s: %v", te.Field, err)
		}
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the set")
	}
	if w.Format != Format {
		return nil, fmt.Errorf("format %q, want %q", w.Format, Format)
	}
	if w.Version != Version {
		return nil, fmt.Errorf("format version %d; this build reads version %d", w.Version, Version)
	}
	s := &Set{Suite: w.Suite, Created: w.Created, Machine: w.Machine, Sandbox: w.Sandbox, Run: w.Run, Steps: w.Steps}
	if w.Signer != "" {
		if len(w.Signer) > 16<<10 {
			return nil, errors.New("signer key too long")
		}
		key, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(w.Signer))
		if err != nil {
			return nil, fmt.Errorf("signer: %v", err)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("signer: more than one key")
		}
		s.Signer = key
	}
	sig, err := w.Signature.Signature()
	if err != nil {
		return nil, err
	}
	s.Signature = sig
	if (s.Signer == nil) != (s.Signature == nil) {
		if s.Signer == nil {
			return nil, errors.New("a signature without a signer key")
		}
		return nil, errors.New("a signer key without a signature")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks that every field of the set is present and in range and
// that each step's rates are its deltas over its seconds.
func (s *Set) Validate() error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSet, err)
	}
	return nil
}

func validName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func (s *Set) validate() error {
	if !validName(s.Suite.Name, 64) || !validName(s.Suite.Version, 64) {
		return errors.New("suite: name and version must be 1 to 64 printable characters")
	}
	if s.Created.IsZero() || s.Created.Year() < 2000 || s.Created.Year() > 9999 {
		return errors.New("created: missing or out of range")
	}
	m := s.Machine
	switch {
	case !validName(m.CPUModel, 256):
		return errors.New("machine: cpu_model missing or too long")
	case m.Cores < 1 || m.Cores > 1<<16:
		return fmt.Errorf("machine: %d cores", m.Cores)
	case m.MemoryBytes < 1<<20:
		return fmt.Errorf("machine: memory of %d bytes", m.MemoryBytes)
	case !validName(m.Kernel, 256) || !validName(m.Arch, 32) || !validName(m.Runsc, 256):
		return errors.New("machine: kernel, arch and runsc must be printable and not empty")
	case !validName(m.Platform, 32):
		return errors.New("machine: platform missing")
	case len(m.Fingerprint) != 16:
		return errors.New("machine: fingerprint must be 16 hex digits")
	}
	if _, err := hex.DecodeString(m.Fingerprint); err != nil {
		return errors.New("machine: fingerprint must be 16 hex digits")
	}
	if !(s.Sandbox.CPUs >= 0 && s.Sandbox.CPUs <= 1<<16) || s.Sandbox.MemoryBytes < 0 {
		return errors.New("sandbox: cpus or memory out of range")
	}
	// Phoronix Test Suite runs have no fixed step length: 0.
	if !(s.Run.Seconds >= 0 && s.Run.Seconds <= MaxSeconds) {
		return fmt.Errorf("run: %v seconds per step", s.Run.Seconds)
	}
	if len(s.Run.Note) > 1024 {
		return errors.New("run: note longer than 1024 bytes")
	}
	if len(s.Steps) == 0 || len(s.Steps) > MaxSteps {
		return fmt.Errorf("%d steps; a set has 1 to %d", len(s.Steps), MaxSteps)
	}
	var names []string
	for i := range s.Steps {
		st := &s.Steps[i]
		if err := st.validate(); err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
		if i == 0 {
			for name := range st.Rates {
				names = append(names, name)
			}
			slices.Sort(names)
			if _, ok := st.Rates[meter.CPU.Name()]; !ok {
				return fmt.Errorf("step 1: no %s counter", meter.CPU.Name())
			}
		} else if len(st.Rates) != len(names) {
			return fmt.Errorf("step %d: %d counters, step 1 has %d", i+1, len(st.Rates), len(names))
		} else {
			for _, name := range names {
				if _, ok := st.Rates[name]; !ok {
					return fmt.Errorf("step %d: no %s counter, which step 1 has", i+1, name)
				}
			}
		}
	}
	return nil
}

func (st *Step) validate() error {
	if !validName(st.Workload, 64) {
		return errors.New("workload name missing or too long")
	}
	if !validName(st.Unit, 64) {
		return errors.New("unit missing or too long")
	}
	if len(st.Params) > 32 {
		return errors.New("more than 32 parameters")
	}
	for k, v := range st.Params {
		if !validName(k, 64) || len(v) > 1024 {
			return fmt.Errorf("parameter %.64q: bad name or value", k)
		}
	}
	if st.Workers < 1 || st.Workers > 1<<16 {
		return fmt.Errorf("%d workers", st.Workers)
	}
	if !(st.Seconds > 0 && st.Seconds <= 1e6) {
		return fmt.Errorf("%v seconds", st.Seconds)
	}
	if !(st.Ops >= 0 && finite(st.Ops)) || !(st.Score >= 0 && finite(st.Score)) {
		return errors.New("ops and score must be finite and not negative")
	}
	if len(st.Delta) == 0 || len(st.Delta) > 256 || len(st.Rates) != len(st.Delta) {
		return fmt.Errorf("%d deltas and %d rates; want the same counters in both", len(st.Delta), len(st.Rates))
	}
	for name, d := range st.Delta {
		if !validName(name, 64) {
			return errors.New("bad counter name")
		}
		r, ok := st.Rates[name]
		if !ok {
			return fmt.Errorf("counter %s has a delta but no rate", name)
		}
		// The rate is the delta over the seconds, to rounding.
		want := float64(d) / st.Seconds
		if !finite(r) || r < 0 || math.Abs(r-want) > 1e-9*math.Max(1, want) {
			return fmt.Errorf("counter %s: rate %v is not its delta %d over %v s", name, r, d, st.Seconds)
		}
	}
	if len(st.PTS) > 256 {
		return errors.New("more than 256 pts results")
	}
	for i := range st.PTS {
		if err := st.PTS[i].validate(); err != nil {
			return fmt.Errorf("pts result %d: %w", i+1, err)
		}
	}
	return nil
}

// Sign sets the signer to signer's key and signs the set. RSA keys sign
// with SHA-512, never SHA-1.
func (s *Set) Sign(signer ssh.Signer) error {
	if err := s.Validate(); err != nil {
		return err
	}
	s.Signer, s.Signature = signer.PublicKey(), nil
	c, err := s.CanonicalBytes()
	if err == nil {
		s.Signature, err = sshsig.Sign(signer, SignatureNamespace, c)
	}
	if err != nil {
		s.Signer = nil
		return fmt.Errorf("sign calibration set: %w", err)
	}
	return nil
}

// Verify checks the set's signature against its signer's key. It returns
// ErrUnsigned for a set without one. Whether the signer is someone to
// trust is the caller's decision.
func (s *Set) Verify() error {
	if s.Signer == nil || s.Signature == nil {
		return ErrUnsigned
	}
	c, err := s.CanonicalBytes()
	if err != nil {
		return err
	}
	if err := sshsig.Verify(s.Signer, SignatureNamespace, c, s.Signature); err != nil {
		if s.Signature.Format == ssh.KeyAlgoRSA {
			return fmt.Errorf("%w: ssh-rsa (SHA-1) signatures are not accepted", ErrBadSignature)
		}
		return fmt.Errorf("%w: the set was changed after it was signed, or the signature is not %s's", ErrBadSignature, ssh.FingerprintSHA256(s.Signer))
	}
	return nil
}

// Digest is the SHA-256 of CanonicalBytes in hex: the set's identity,
// which layout does not change.
func (s *Set) Digest() (string, error) {
	c, err := s.CanonicalBytes()
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(c)
	return hex.EncodeToString(h[:]), nil
}
