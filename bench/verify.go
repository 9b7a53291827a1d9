package bench

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Check is the outcome of reading and verifying one calibration set file
// (CheckFile), in the form printed and sent as JSON.
type Check struct {
	File        string `json:"file"`
	OK          bool   `json:"ok"`
	Signed      bool   `json:"signed"`
	Signer      string `json:"signer,omitempty"`
	Digest      string `json:"digest,omitempty"`
	Suite       string `json:"suite,omitempty"`
	Machine     string `json:"machine,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Steps       int    `json:"steps,omitempty"`
	// Error is Err's message without the file's name.
	Error string `json:"error,omitempty"`
	// StoredAs is where Import stored the set.
	StoredAs string `json:"stored_as,omitempty"`

	// Set is the decoded set, nil if the file did not decode.
	Set *Set `json:"-"`
	// Err is why the check failed: ErrUnsigned (unless unsigned sets are
	// allowed), ErrBadSignature, ErrInvalidSet or the file's read error.
	Err error `json:"-"`
}

// CheckFile reads the set at file and verifies its signature against the
// key it names (Set.Verify). An unsigned set passes if allowUnsigned, as
// not Signed.
func CheckFile(file string, allowUnsigned bool) Check {
	c := Check{File: file}
	set, err := ReadFile(file)
	if err == nil {
		c.Set = set
		c.Suite = set.Suite.Name + " " + set.Suite.Version
		c.Machine = set.Machine.String()
		c.Fingerprint = set.Machine.Fingerprint
		c.Steps = len(set.Steps)
		c.Digest, _ = set.Digest()
		err = set.Verify()
		if set.Signer != nil {
			c.Signer = ssh.FingerprintSHA256(set.Signer)
		}
		c.Signed = err == nil
		if allowUnsigned && errors.Is(err, ErrUnsigned) {
			err = nil
		}
	}
	if err != nil {
		c.Err = err
		// The File field names the file already.
		c.Error = strings.TrimPrefix(err.Error(), file+": ")
	}
	c.OK = err == nil
	return c
}

// CheckFiles checks every file with CheckFile; failed counts the checks
// not OK.
func CheckFiles(files []string, allowUnsigned bool) (checks []Check, failed int) {
	for _, f := range files {
		c := CheckFile(f, allowUnsigned)
		if !c.OK {
			failed++
		}
		checks = append(checks, c)
	}
	return checks, failed
}

// Import stores the sets of checks in dir (Store), recording where in
// StoredAs. It stores none unless every check is OK.
func Import(dir string, checks []Check) error {
	for _, c := range checks {
		if !c.OK || c.Set == nil {
			return fmt.Errorf("import %s: it did not pass its check", c.File)
		}
	}
	for i := range checks {
		path, err := Store(dir, checks[i].Set)
		if err != nil {
			return err
		}
		checks[i].StoredAs = path
	}
	return nil
}

// Summary is a set in brief, in the form printed and sent as JSON.
type Summary struct {
	File        string        `json:"file"`
	Digest      string        `json:"digest"`
	Signed      bool          `json:"signed"`
	Signer      string        `json:"signer,omitempty"`
	Suite       Suite         `json:"suite"`
	Machine     Machine       `json:"machine"`
	Seed        uint64        `json:"seed"`
	StepSeconds float64       `json:"step_seconds"`
	Steps       []StepSummary `json:"steps"`
}

// StepSummary is one step of a Summary.
type StepSummary struct {
	Workload string  `json:"workload"`
	Params   Params  `json:"params"`
	Score    float64 `json:"score"`
	Unit     string  `json:"unit"`
	// CPUs is the CPUs the step kept busy: its cpu_ns rate in seconds per
	// second.
	CPUs float64 `json:"cpus"`
}

// Summary is s in brief, file being where it is (or is written).
func (s *Set) Summary(file string) (Summary, error) {
	digest, err := s.Digest()
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{File: file, Digest: digest, Signed: s.Signature != nil, Suite: s.Suite, Machine: s.Machine,
		Seed: s.Run.Seed, StepSeconds: s.Run.Seconds}
	if s.Signer != nil {
		sum.Signer = ssh.FingerprintSHA256(s.Signer)
	}
	for _, st := range s.Steps {
		sum.Steps = append(sum.Steps, StepSummary{Workload: st.Workload, Params: st.Params, Score: st.Score, Unit: st.Unit, CPUs: st.Rates["cpu_ns"] / 1e9})
	}
	return sum, nil
}
