package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/zennet/zennet/meter"
)

// PTSSuiteName names Phoronix Test Suite runs in calibration sets; the
// suite version is the PTS client's.
const PTSSuiteName = "phoronix-test-suite"

// ErrNoPTS means phoronix-test-suite is not installed where it must run.
var ErrNoPTS = errors.New("phoronix-test-suite is not installed")

// PTSInstallHint says how to get the Phoronix Test Suite into the sandbox
// image. The sandboxes have no network, so the tests must be installed in
// the image too.
const PTSInstallHint = `install it into the sandbox image (it needs PHP), with the tests you want, e.g.:
  chroot IMAGE apt-get install -y php-cli php-xml
  curl -LO https://phoronix-test-suite.com/releases/repo/pts.debian/files/phoronix-test-suite_10.8.4_all.deb
  cp phoronix-test-suite_10.8.4_all.deb IMAGE/tmp/ && chroot IMAGE apt-get install -y /tmp/phoronix-test-suite_10.8.4_all.deb
  chroot IMAGE phoronix-test-suite batch-install pts/compress-gzip
(IMAGE is the sandbox root filesystem, ~/.cache/zennet/images/bookworm by default; the sandboxes have no
network, so tests must be installed in the image beforehand)`

// PTSFile is a parsed Phoronix Test Suite result file (composite.xml).
type PTSFile struct {
	Title        string
	TestClient   string // e.g. "Phoronix Test Suite v10.8.4"
	LastModified string
	Systems      []PTSSystem
	Results      []PTSResult
	// Skipped lists results whose value is not one number (line graphs,
	// pass/fail), which a calibration cannot use.
	Skipped []string
}

// PTSSystem is one system (run identifier) of a result file.
type PTSSystem struct {
	Identifier string
	Hardware   string
	Software   string
	TimeStamp  string
	Version    string // TestClientVersion
}

// PTSResult is one result of a test on one system.
type PTSResult struct {
	// Identifier is the test profile, e.g. "pts/compress-gzip-1.2.0".
	Identifier  string `json:"identifier"`
	Title       string `json:"title"`
	AppVersion  string `json:"app_version,omitempty"`
	Arguments   string `json:"arguments,omitempty"`
	Description string `json:"description,omitempty"`
	// Scale is the result's unit, e.g. "MB/s" or "Seconds"; Proportion
	// says whether higher (HIB) or lower (LIB) is better.
	Scale      string `json:"scale"`
	Proportion string `json:"proportion"`
	// System is the Entry's identifier: which run of the file.
	System string  `json:"system"`
	Value  float64 `json:"value"`
	// Runs are the values of the individual trials (RawString).
	Runs []float64 `json:"runs,omitempty"`
	// RunSeconds are the trials' durations ("test-run-times" of the
	// entry's JSON), when the client recorded them.
	RunSeconds []float64 `json:"run_seconds,omitempty"`
}

// Score is the result as work per unit: the value if higher is better, its
// inverse if lower is better (a time becomes a rate).
func (r PTSResult) Score() (score float64, unit string) {
	if strings.EqualFold(r.Proportion, "LIB") && r.Value > 0 {
		return 1 / r.Value, "1/" + r.Scale
	}
	return r.Value, r.Scale
}

func (r *PTSResult) validate() error {
	if !validName(r.Identifier, 256) || len(r.Title) > 256 || len(r.Scale) > 64 || len(r.Description) > 1024 ||
		len(r.Arguments) > 1024 || len(r.AppVersion) > 64 || len(r.System) > 256 {
		return errors.New("identifier missing or a field too long")
	}
	switch strings.ToUpper(r.Proportion) {
	case "HIB", "LIB", "":
	default:
		return fmt.Errorf("proportion %.16q", r.Proportion)
	}
	if !finite(r.Value) || len(r.Runs) > 10000 || len(r.RunSeconds) > 10000 {
		return errors.New("value not finite, or too many runs")
	}
	for _, x := range append(append([]float64(nil), r.Runs...), r.RunSeconds...) {
		if !finite(x) {
			return errors.New("a run value is not finite")
		}
	}
	return nil
}

// The XML of composite.xml as pts_result_file::get_xml writes it.
type ptsXML struct {
	XMLName   xml.Name `xml:"PhoronixTestSuite"`
	Generated struct {
		Title        string `xml:"Title"`
		LastModified string `xml:"LastModified"`
		TestClient   string `xml:"TestClient"`
	} `xml:"Generated"`
	Systems []struct {
		Identifier        string `xml:"Identifier"`
		Hardware          string `xml:"Hardware"`
		Software          string `xml:"Software"`
		TimeStamp         string `xml:"TimeStamp"`
		TestClientVersion string `xml:"TestClientVersion"`
	} `xml:"System"`
	Results []struct {
		Identifier    string `xml:"Identifier"`
		Title         string `xml:"Title"`
		AppVersion    string `xml:"AppVersion"`
		Arguments     string `xml:"Arguments"`
		Description   string `xml:"Description"`
		Scale         string `xml:"Scale"`
		Proportion    string `xml:"Proportion"`
		DisplayFormat string `xml:"DisplayFormat"`
		Entries       []struct {
			Identifier string `xml:"Identifier"`
			Value      string `xml:"Value"`
			RawString  string `xml:"RawString"`
			JSON       string `xml:"JSON"`
		} `xml:"Data>Entry"`
	} `xml:"Result"`
}

// MaxPTSFileSize bounds a result file.
const MaxPTSFileSize = 16 << 20

// ParsePTSComposite parses a Phoronix Test Suite result file: one
// PTSResult per result and system with a numeric value.
func ParsePTSComposite(r io.Reader) (*PTSFile, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxPTSFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read pts result file: %w", err)
	}
	if len(b) > MaxPTSFileSize {
		return nil, fmt.Errorf("pts result file larger than %d bytes", MaxPTSFileSize)
	}
	var x ptsXML
	dec := xml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&x); err != nil {
		var se *xml.SyntaxError
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &se) && strings.Contains(se.Msg, "unexpected EOF") {
			return nil, fmt.Errorf("pts result file: truncated (%v)", err)
		}
		return nil, fmt.Errorf("pts result file: %w", err)
	}
	f := &PTSFile{Title: x.Generated.Title, TestClient: x.Generated.TestClient, LastModified: x.Generated.LastModified}
	for _, s := range x.Systems {
		f.Systems = append(f.Systems, PTSSystem{Identifier: s.Identifier, Hardware: s.Hardware, Software: s.Software, TimeStamp: s.TimeStamp, Version: s.TestClientVersion})
	}
	for _, res := range x.Results {
		if strings.TrimSpace(res.Identifier) == "" {
			continue
		}
		for _, e := range res.Entries {
			name := res.Identifier
			if res.Description != "" {
				name += " (" + res.Description + ")"
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(e.Value), 64)
			if err != nil || !finite(v) {
				f.Skipped = append(f.Skipped, name)
				continue
			}
			pr := PTSResult{
				Identifier: strings.TrimSpace(res.Identifier), Title: res.Title, AppVersion: res.AppVersion,
				Arguments: res.Arguments, Description: res.Description, Scale: res.Scale,
				Proportion: strings.ToUpper(strings.TrimSpace(res.Proportion)), System: e.Identifier, Value: v,
				Runs: parseRuns(e.RawString),
			}
			if e.JSON != "" {
				var j struct {
					RunTimes string `json:"test-run-times"`
				}
				if json.Unmarshal([]byte(e.JSON), &j) == nil {
					pr.RunSeconds = parseRuns(j.RunTimes)
				}
			}
			if err := pr.validate(); err != nil {
				return nil, fmt.Errorf("pts result %s: %w", name, err)
			}
			f.Results = append(f.Results, pr)
		}
	}
	if len(f.Results) == 0 {
		if len(f.Skipped) > 0 {
			return f, fmt.Errorf("pts result file: no numeric result (%d skipped)", len(f.Skipped))
		}
		return f, errors.New("pts result file: no results")
	}
	return f, nil
}

// parseRuns reads colon-separated trial values ("12.3:12.5:12.1"); an
// empty string or any non-number gives nil.
func parseRuns(s string) []float64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	var out []float64
	for _, p := range strings.Split(s, ":") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !finite(v) {
			return nil
		}
		out = append(out, v)
	}
	return out
}

// ptsVersionRE finds the client version in "Phoronix Test Suite v10.8.4".
var ptsVersionRE = regexp.MustCompile(`v?(\d+\.\d+(\.\d+)?)`)

// Version is the PTS client version that wrote the file, "unknown" if it
// does not say.
func (f *PTSFile) Version() string {
	for _, s := range append([]string{f.TestClient}, func() (vs []string) {
		for _, s := range f.Systems {
			vs = append(vs, s.Version)
		}
		return vs
	}()...) {
		if m := ptsVersionRE.FindStringSubmatch(s); m != nil {
			return m[1]
		}
	}
	return "unknown"
}

// ptsTestRE is what a test argument may look like: pts/compress-gzip,
// pts/stream-1.3.4, local/mytest, or a bare name.
var ptsTestRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)?$`)

// ptsResultDirs are where the client saves results: the system-wide
// directory when installed from the Debian package and run as root, and
// the user's.
const ptsResultDirs = "/var/lib/phoronix-test-suite/test-results ~/.phoronix-test-suite/test-results"

// PTSInImage reports whether the root filesystem image has
// phoronix-test-suite on the sandboxes' PATH, without starting one.
func PTSInImage(image string) bool {
	for _, d := range []string{"usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"} {
		if fi, err := os.Lstat(filepath.Join(image, d, "phoronix-test-suite")); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

// CheckPTS reports whether phoronix-test-suite can run in env, with
// ErrNoPTS and how to install it if not.
func CheckPTS(ctx context.Context, env Env) error {
	out, err := env.Command(ctx, "/bin/sh", "-c", "command -v phoronix-test-suite").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return fmt.Errorf("%w in the sandbox image; %s", ErrNoPTS, PTSInstallHint)
	}
	return nil
}

// RunPTS runs each Phoronix Test Suite test in env in batch mode, metering
// each run, and returns the client's version and one step per test: the
// counters of the whole batch run, the first result as its score, and
// every result of the run in its PTS field. Tests must be installed in the
// image (the sandbox has no network).
func RunPTS(ctx context.Context, env Env, tests []string, progress func(Progress)) (string, []Step, error) {
	for _, t := range tests {
		if !ptsTestRE.MatchString(t) {
			return "", nil, fmt.Errorf("pts test %q: not a test name like pts/compress-gzip", t)
		}
	}
	if err := CheckPTS(ctx, env); err != nil {
		return "", nil, err
	}
	sh := func(script string) ([]byte, error) {
		var stderr tailBuffer
		cmd := env.Command(ctx, "/bin/sh", "-c", script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	// Batch mode without questions: save results, open and upload
	// nothing, run every option combination.
	if _, err := sh("phoronix-test-suite user-config-set SaveResults=TRUE OpenBrowser=FALSE UploadResults=FALSE " +
		"PromptForTestIdentifier=FALSE PromptForTestDescription=FALSE PromptSaveName=FALSE " +
		"RunAllTestCombinations=TRUE Configured=TRUE >/dev/null"); err != nil {
		return "", nil, fmt.Errorf("configure pts batch mode: %w", err)
	}
	version := "unknown"
	var steps []Step
	for i, test := range tests {
		if progress != nil {
			progress(Progress{Step: i + 1, Steps: len(tests), Workload: test})
		}
		if _, err := sh("phoronix-test-suite batch-install " + test + " >/dev/null"); err != nil {
			return version, steps, fmt.Errorf("pts batch-install %s (the sandbox has no network: install tests in the image): %w", test, err)
		}
		name := fmt.Sprintf("zennet-%d-%d", time.Now().Unix(), i)
		var s0, s1 meter.Sample
		var err error
		if env.Counters != nil {
			if s0, err = env.Counters(); err != nil {
				return version, steps, err
			}
		}
		run := fmt.Sprintf("TEST_RESULTS_NAME=%s TEST_RESULTS_IDENTIFIER=zennet TEST_RESULTS_DESCRIPTION=zennet-bench "+
			"PTS_SILENT_MODE=1 phoronix-test-suite batch-run %s >/dev/null", name, test)
		if _, err := sh(run); err != nil {
			return version, steps, fmt.Errorf("pts batch-run %s: %w", test, err)
		}
		if env.Counters != nil {
			if s1, err = env.Counters(); err != nil {
				return version, steps, err
			}
		}
		xmlOut, err := sh(fmt.Sprintf(`for d in %s; do f="$d/%s/composite.xml"; if [ -f "$f" ]; then cat "$f"; exit 0; fi; done; echo "no composite.xml for %s" >&2; exit 3`, ptsResultDirs, name, name))
		if err != nil {
			return version, steps, fmt.Errorf("pts result of %s: %w", test, err)
		}
		f, err := ParsePTSComposite(bytes.NewReader(xmlOut))
		if err != nil {
			return version, steps, fmt.Errorf("pts result of %s: %w", test, err)
		}
		version = f.Version()
		st := ptsStep(f)
		if env.Counters != nil {
			st.setCounters(s1.Counters.Sub(s0.Counters), s1.Time.Sub(s0.Time).Seconds())
		}
		steps = append(steps, st)
		if progress != nil {
			progress(Progress{Step: i + 1, Steps: len(tests), Workload: test, Done: &steps[len(steps)-1]})
		}
	}
	return version, steps, nil
}

// ptsStep is the step of one batch run, without counters: its score is the
// first result's (Score), its ops the number of that result's trials.
func ptsStep(f *PTSFile) Step {
	first := f.Results[0]
	score, unit := first.Score()
	unit = clip(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, unit), 64)
	if unit == "" || unit == "1/" {
		unit = "result"
	}
	ops := float64(max(1, len(first.Runs)))
	return Step{
		Workload: "pts",
		Params:   Params{"test": first.Identifier, "description": first.Description},
		Workers:  1,
		Ops:      ops,
		Unit:     unit,
		Score:    score,
		PTS:      f.Results,
	}
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
