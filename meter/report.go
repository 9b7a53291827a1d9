package meter

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/signedjson"
	"github.com/zennet/zennet/internal/sshsig"
)

// ReportVersion is the version of the report format, JSON and signed bytes
// alike.
const ReportVersion = 1

// MaxReportSize bounds an encoded report.
const MaxReportSize = 16 << 10

// SignatureNamespace is the namespace of report signatures. Signed data
// follows OpenSSH's PROTOCOL.sshsig, so a signature by a host key over a
// report can never pass for one over anything else that key signs (an SSH
// key exchange, a file signed with ssh-keygen -Y sign).
const SignatureNamespace = "usage-report-v1@zennet"

// ErrBadSignature means a report's signature does not verify with the key.
var ErrBadSignature = errors.New("bad usage report signature")

// Report is one signed reading of a lease's counters.
type Report struct {
	Lease string
	// Seq numbers the lease's reports from 1, one more each time.
	Seq uint64
	// Start is when the lease began: the origin of the counters.
	Start time.Time
	// Time is when the counters were read.
	Time     time.Time
	Counters Vector
	// Signature is by the provider's SSH host key over CanonicalBytes,
	// wrapped as PROTOCOL.sshsig describes; nil until Sign.
	Signature *ssh.Signature
}

// CanonicalBytes is the report's content in one deterministic encoding, in
// SSH wire format: the string "zennet-usage-report", uint32 version,
// string lease, uint64 seq, int64 start and time in Unix ns, uint32 number
// of counters, then each counter as string name and uint64 value.
func (r *Report) CanonicalBytes() []byte {
	b := make([]byte, 0, 128+32*int(NumCounters))
	b = signedjson.AppendString(b, "zennet-usage-report")
	b = binary.BigEndian.AppendUint32(b, ReportVersion)
	b = signedjson.AppendString(b, r.Lease)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Start.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, uint32(NumCounters))
	for c := Counter(0); c < NumCounters; c++ {
		b = signedjson.AppendString(b, c.Name())
		b = binary.BigEndian.AppendUint64(b, r.Counters[c])
	}
	return b
}

// Sign signs the report with the provider's host key.
func (r *Report) Sign(signer ssh.Signer) error {
	sig, err := sshsig.Sign(signer, SignatureNamespace, r.CanonicalBytes())
	if err != nil {
		return fmt.Errorf("sign usage report: %w", err)
	}
	r.Signature = sig
	return nil
}

// Verify checks the report's signature against the provider's host key.
func (r *Report) Verify(key ssh.PublicKey) error {
	if err := sshsig.Verify(key, SignatureNamespace, r.CanonicalBytes(), r.Signature); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// reportJSON is the wire form of a Report.
type reportJSON struct {
	V        int             `json:"v"`
	Lease    string          `json:"lease"`
	Seq      uint64          `json:"seq"`
	Start    time.Time       `json:"start"`
	Time     time.Time       `json:"time"`
	Counters *Vector         `json:"counters"`
	Sig      *signedjson.Sig `json:"sig,omitempty"`
}

// MarshalJSON writes the report's wire form.
func (r Report) MarshalJSON() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(reportJSON{V: ReportVersion, Lease: r.Lease, Seq: r.Seq, Start: r.Start.UTC(), Time: r.Time.UTC(),
		Counters: &r.Counters, Sig: signedjson.FromSignature(r.Signature)})
}

// UnmarshalJSON reads and validates the wire form; unknown fields are an
// error. It does not verify the signature.
func (r *Report) UnmarshalJSON(b []byte) error {
	var w reportJSON
	if err := signedjson.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.V != ReportVersion {
		return fmt.Errorf("report version %d, this build reads %d", w.V, ReportVersion)
	}
	if w.Counters == nil {
		return errors.New("no counters")
	}
	sig, err := w.Sig.Signature()
	if err != nil {
		return err
	}
	out := Report{Lease: w.Lease, Seq: w.Seq, Start: w.Start, Time: w.Time, Counters: *w.Counters, Signature: sig}
	if err := out.validate(); err != nil {
		return err
	}
	*r = out
	return nil
}

// Times a report can carry: those whose Unix ns fit in an int64.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, 1<<63-1)
)

func (r *Report) validate() error {
	if len(r.Lease) == 0 || len(r.Lease) > 64 {
		return fmt.Errorf("lease id of %d bytes", len(r.Lease))
	}
	for _, c := range []byte(r.Lease) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("lease id %q: bad character", r.Lease)
		}
	}
	if r.Seq == 0 {
		return errors.New("sequence number 0")
	}
	for _, t := range []time.Time{r.Start, r.Time} {
		if t.Before(minTime) || t.After(maxTime) {
			return fmt.Errorf("time %s out of range", t.Format(time.RFC3339))
		}
	}
	return nil
}

// Encode returns the report as one line of JSON, newline included.
func Encode(r Report) ([]byte, error) {
	b, err := signedjson.EncodeLine(r, MaxReportSize)
	if err != nil {
		return nil, fmt.Errorf("encode usage report: %w", err)
	}
	return b, nil
}

// Decode parses and validates one encoded report. It does not verify the
// signature: Check does.
func Decode(b []byte) (Report, error) {
	var r Report
	if err := signedjson.DecodeLine(b, MaxReportSize, &r); err != nil {
		return Report{}, fmt.Errorf("decode usage report: %w", err)
	}
	return r, nil
}

// Reporter turns one lease's samples into signed reports numbered from 1.
// Its methods are safe for concurrent use.
type Reporter struct {
	lease   string
	start   time.Time
	sampler *Sampler
	signer  ssh.Signer

	mu   sync.Mutex
	seq  uint64
	last time.Time
}

// NewReporter returns a Reporter for lease, which began at start (the
// lease's Started), reading sampler and signing with the provider's host
// key.
func NewReporter(lease string, start time.Time, sampler *Sampler, signer ssh.Signer) *Reporter {
	return &Reporter{lease: lease, start: start.Round(0).UTC(), sampler: sampler, signer: signer}
}

// Next samples and returns the next signed report. Report times strictly
// increase even if the wall clock steps back.
func (p *Reporter) Next() (Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.sampler.Sample()
	if err != nil {
		return Report{}, err
	}
	t := s.Time.Round(0).UTC()
	if t.Before(p.start) {
		t = p.start
	}
	if !t.After(p.last) && p.seq > 0 {
		t = p.last.Add(time.Microsecond)
	}
	r := Report{Lease: p.lease, Seq: p.seq + 1, Start: p.start, Time: t, Counters: s.Counters}
	if err := r.Sign(p.signer); err != nil {
		return Report{}, err
	}
	p.seq++
	p.last = t
	return r, nil
}
