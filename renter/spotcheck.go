package renter

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/sshgate"
)

// spotMark is a failed spot check, kept in CONFIG_DIR/marks.jsonl: the
// renter's record of providers whose calibration claims did not hold.
type spotMark struct {
	Time     time.Time `json:"time"`
	Provider string    `json:"provider"`
	Address  string    `json:"address"`
	Step     string    `json:"step"`
	Problems []string  `json:"problems"`
}

// spotCheck replays one random CPU-bound step of each provider's offered
// calibration on one of its hosts and compares the score with the claim
// (scaled to the host's CPUs). A claim off by more than the tolerance
// marks the provider, when a second replay of the same step fails too. The
// check costs the renter a few seconds of work on that host.
func (r *Rental) spotCheck(ctx context.Context) error {
	configDir := r.cfg.ConfigDir
	for c, set := range r.calibrations {
		var host, id string
		var cpus float64
		for _, h := range r.hosts {
			if h.Provider == c.Addr && h.LeaseID == firstLease(r.leases[c]) {
				host, id, cpus = h.Name, h.LeaseID, h.Limits.CPUs
			}
		}
		if host == "" {
			continue
		}
		// A claim is marked only when it fails twice in a row, the same
		// step both times: one slow replay on a busy machine is noise.
		var res bench.SpotResult
		var err error
		var first []string
		for attempt, step := 0, -1; attempt < 2; attempt++ {
			r.progress("spot-checking provider %s's calibration on %s ...", c.Addr, host)
			res, err = bench.SpotCheck(ctx, bench.SpotConfig{
				Env: bench.Env{
					Command: Commander(r.files.SSHConfig, host),
					// The provider's own signed reports meter the replay: the
					// first one read after each call, so the window is the
					// step plus up to one report interval of idle.
					Counters:       func() (meter.Sample, error) { return r.book.reportAfter(ctx, id, time.Now()) },
					SampleInterval: time.Hour,
				},
				Calibration: set, Step: step, CPUs: cpus,
			})
			r.progress("")
			if err != nil || res.OK {
				break
			}
			if attempt == 0 {
				first, step = res.Problems, res.Step
				r.emit(SpotCheck{Provider: c.Addr, Host: host, Problems: res.Problems, Retry: true})
			}
		}
		if err != nil {
			r.emit(SpotCheck{Provider: c.Addr, Host: host, Err: err})
			continue
		}
		if res.OK && first != nil {
			r.emit(SpotCheck{Provider: c.Addr, Host: host, Step: res.Claimed.Workload, ScoreRatio: res.ScoreRatio, SecondTry: true})
			continue
		}
		step := res.Claimed.Workload
		if res.OK {
			r.emit(SpotCheck{Provider: c.Addr, Host: host, Step: step, ScoreRatio: res.ScoreRatio})
			continue
		}
		r.emit(SpotCheck{Provider: c.Addr, Host: host, Step: step, Problems: res.Problems, Failed: true, Marks: MarksPath(configDir)})
		r.note(c, market.FailedCheck())
		if err := addMark(configDir, spotMark{Time: time.Now().UTC(), Provider: fingerprint(c), Address: c.Addr, Step: step, Problems: res.Problems}); err != nil {
			return err
		}
	}
	return nil
}

// SpotCheck is the outcome of a spot check of a provider's calibration on
// one of its hosts: passed (on the first or, SecondTry, the second replay),
// Retry (the first replay failed: once more), Failed (both failed: the
// provider is marked in the Marks file), or Err (it could not run).
type SpotCheck struct {
	Provider, Host, Step string
	ScoreRatio           float64
	Problems             []string
	Retry, SecondTry     bool
	Failed               bool
	Marks                string
	Err                  error
}

func (e SpotCheck) String() string {
	at := fmt.Sprintf("spot check of provider %s on %s", e.Provider, e.Host)
	switch {
	case e.Err != nil:
		return fmt.Sprintf("%s could not run: %v", at, e.Err)
	case e.Retry:
		return fmt.Sprintf("%s: %s; replaying it once more", at, strings.Join(e.Problems, "; "))
	case e.Failed:
		return fmt.Sprintf("%s FAILED (%s step): %s; provider marked in %s", at, e.Step, strings.Join(e.Problems, "; "), e.Marks)
	case e.SecondTry:
		return fmt.Sprintf("%s: %s step scored %.2f of its claim on the second try: ok", at, e.Step, e.ScoreRatio)
	}
	return fmt.Sprintf("%s: %s step scored %.2f of its claim: ok", at, e.Step, e.ScoreRatio)
}

func firstLease(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

func fingerprint(c *sshgate.Client) string { return gossh.FingerprintSHA256(c.HostKey) }

func addMark(configDir string, m spotMark) error {
	f, err := os.OpenFile(MarksPath(configDir), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return json.NewEncoder(f).Encode(m)
}

// readMarks returns the failed spot checks recorded so far.
func readMarks(configDir string) []spotMark {
	b, err := os.ReadFile(MarksPath(configDir))
	if err != nil {
		return nil
	}
	var out []spotMark
	for _, line := range strings.Split(string(b), "\n") {
		var m spotMark
		if json.Unmarshal([]byte(line), &m) == nil && m.Provider != "" {
			out = append(out, m)
		}
	}
	return out
}
