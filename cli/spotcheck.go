package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/sshgate"
)

// sshCommander runs commands in a rented host over the session's ssh_config.
func sshCommander(sshConfig, host string) bench.Commander {
	return func(ctx context.Context, argv ...string) *exec.Cmd {
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		return exec.CommandContext(ctx, "ssh", "-F", sshConfig, "-o", "BatchMode=yes", host, strings.Join(quoted, " "))
	}
}

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
func (r *rental) spotCheck(ctx context.Context, o *rentOptions) error {
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
			progress(o, "spot-checking provider %s's calibration on %s ...", c.Addr, host)
			res, err = bench.SpotCheck(ctx, bench.SpotConfig{
				Env: bench.Env{
					Command: sshCommander(r.files.SSHConfig, host),
					// The provider's own signed reports meter the replay: the
					// first one read after each call, so the window is the
					// step plus up to one report interval of idle.
					Counters:       func() (meter.Sample, error) { return r.book.reportAfter(ctx, id, time.Now()) },
					SampleInterval: time.Hour,
				},
				Calibration: set, Step: step, CPUs: cpus,
			})
			progress(o, "")
			if err != nil || res.OK {
				break
			}
			if attempt == 0 {
				first, step = res.Problems, res.Step
				fmt.Fprintf(o.IO.ErrOut, "zennet: spot check of provider %s on %s: %s; replaying it once more\n", c.Addr, host, strings.Join(res.Problems, "; "))
			}
		}
		if err != nil {
			fmt.Fprintf(o.IO.ErrOut, "zennet: spot check of provider %s on %s could not run: %v\n", c.Addr, host, err)
			continue
		}
		if res.OK && first != nil {
			fmt.Fprintf(o.IO.ErrOut, "zennet: spot check of provider %s on %s: %s step scored %.2f of its claim on the second try: ok\n", c.Addr, host, res.Claimed.Workload, res.ScoreRatio)
			continue
		}
		step := res.Claimed.Workload
		if res.OK {
			fmt.Fprintf(o.IO.ErrOut, "zennet: spot check of provider %s on %s: %s step scored %.2f of its claim: ok\n", c.Addr, host, step, res.ScoreRatio)
			continue
		}
		fmt.Fprintf(o.IO.ErrOut, "zennet: spot check of provider %s on %s FAILED (%s step): %s; provider marked in %s\n",
			c.Addr, host, step, strings.Join(res.Problems, "; "), marksPath(o.G.ConfigDir))
		r.note(o, c, market.FailedCheck())
		if err := addMark(o.G.ConfigDir, spotMark{Time: time.Now().UTC(), Provider: fingerprint(c), Address: c.Addr, Step: step, Problems: res.Problems}); err != nil {
			return err
		}
	}
	return nil
}

func firstLease(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

func fingerprint(c *sshgate.Client) string { return gossh.FingerprintSHA256(c.HostKey) }

func marksPath(configDir string) string { return filepath.Join(configDir, "marks.jsonl") }

func addMark(configDir string, m spotMark) error {
	f, err := os.OpenFile(marksPath(configDir), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return json.NewEncoder(f).Encode(m)
}

// readMarks returns the failed spot checks recorded so far.
func readMarks(configDir string) []spotMark {
	b, err := os.ReadFile(marksPath(configDir))
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
