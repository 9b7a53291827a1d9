package renter

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
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

// spotPeriod is how long a provider's spot checks rest once its claim
// held over the current rotation: the rest of the rotation goes on, one
// workload class every spotPeriod, so that a long session covers every
// class and a provider cannot tell a quiet moment to stop cheating.
const spotPeriod = 10 * time.Minute

// spotState is the spot checks of one provider's calibration over a
// session: the rotation of steps (one of each workload class, in an order
// the provider cannot predict, bench.SpotRotation), where it stands, and
// the work per msat billed of its replays, relative to the claim.
type spotState struct {
	set   *bench.Set
	rates pay.Rates
	order []int
	next  int
	// ratios are the rotation's replays so far: work per msat billed
	// relative to the claim's, by workload.
	ratios []spotRatio
	// short counts the rotations in a row whose best two fell short.
	short int
	// held: the rotation's best two reached 1-DefaultWorkTolerance.
	held bool
	// dropped: the provider failed and its hosts left.
	dropped bool
	due     time.Time
}

// spotRotationsShort is how many rotations in a row must fall short for
// a provider to be dropped.
const spotRotationsShort = 2

// spotRatio is one replay's work per msat billed relative to the claim.
type spotRatio struct {
	step  string
	ratio float64
}

// bestTwo is the mean of the two highest ratios (the one, when there is
// one) and their workloads. Two, not the best alone: the class least
// slowed by the machine's load varies, and one replay of it ran 1.25
// times its claim on an honest provider, which with scores ×1.3 would
// have passed (bench.DefaultWorkTolerance).
func bestTwo(rs []spotRatio) (float64, string) {
	s := slices.Clone(rs)
	slices.SortStableFunc(s, func(a, b spotRatio) int { return cmp.Compare(b.ratio, a.ratio) })
	s = s[:min(2, len(s))]
	var sum float64
	var steps []string
	for _, r := range s {
		sum += r.ratio
		steps = append(steps, r.step)
	}
	if len(s) == 0 {
		return 0, ""
	}
	return sum / float64(len(s)), strings.Join(steps, ", ")
}

// spotJob is one replay to run: a provider's step on one of its hosts.
type spotJob struct {
	c    *sshgate.Client
	st   *spotState
	host string
	id   string
	cpus float64
	step int
}

// spotDone is a replay's outcome.
type spotDone struct {
	job spotJob
	res bench.SpotResult
	err error
}

// nextSpot returns the next replay due at now, or ok false. Checks run one
// at a time, providers in turn.
func (r *Rental) nextSpot(now time.Time) (spotJob, bool) {
	for _, c := range r.clients {
		st := r.spots[c]
		if st == nil || st.dropped || now.Before(st.due) {
			continue
		}
		var job spotJob
		for _, h := range r.hosts {
			if h.Provider == c.Addr && h.LeaseID == firstLease(r.leases[c]) {
				job = spotJob{c: c, st: st, host: h.Name, id: h.LeaseID, cpus: h.Limits.CPUs}
			}
		}
		if job.host == "" {
			continue
		}
		if st.next >= len(st.order) {
			// A new rotation, in a new order.
			st.order, st.next, st.held, st.ratios = bench.SpotRotation(st.set, nil), 0, false, nil
		}
		job.step = st.order[st.next]
		return job, true
	}
	return spotJob{}, false
}

// runSpot replays job's step on its host (bench.SpotCheck), metered by
// the provider's own signed reports and billed at the lease's rates.
func (r *Rental) runSpot(ctx context.Context, job spotJob) spotDone {
	rates := job.st.rates
	res, err := bench.SpotCheck(ctx, bench.SpotConfig{
		Env: bench.Env{
			Command: Commander(r.files.SSHConfig, job.host),
			// The provider's own signed reports meter the replay: the
			// first one read after each call, so the window is the step
			// plus up to one report interval of idle.
			Counters:       func() (meter.Sample, error) { return r.book.reportAfter(ctx, job.id, time.Now()) },
			SampleInterval: time.Hour,
		},
		Bill: func(v meter.Vector) float64 {
			f, _ := rates.Cost(v).Float64()
			return f
		},
		Calibration: job.st.set, Step: job.step, CPUs: job.cpus,
	})
	return spotDone{job: job, res: res, err: err}
}

// spotResult takes a replay's outcome and says it. When two rotations in
// a row end (every workload class replayed once) and in each even its best
// two replays did less
// work per msat billed than claimed, by more than
// bench.DefaultWorkTolerance, the provider is marked, the failure is
// recorded in the reputation book and its hosts are dropped: it returns
// their names, to replace. One replay alone is not judged: a shared
// machine's load lowers some classes' work per CPU-second far more than
// that, and unequally; inflated scores lower them all alike
// (bench.DefaultWorkTolerance).
func (r *Rental) spotResult(d spotDone) (dropped []string, err error) {
	c, st, job := d.job.c, d.job.st, d.job
	if st.dropped || !slices.Contains(r.clients, c) {
		return nil, nil
	}
	if d.err != nil {
		// The same step, later.
		r.emit(SpotCheck{Provider: c.Addr, Host: job.host, Err: d.err})
		st.due = time.Now().Add(spotPeriod)
		return nil, nil
	}
	st.next++
	res := d.res
	step := res.Claimed.Workload
	r.emit(SpotCheck{Provider: c.Addr, Host: job.host, Step: step, ScoreRatio: res.ScoreRatio, ScoreChecked: res.ScoreChecked,
		WorkRatio: res.WorkRatio, Problems: res.Problems})
	st.ratios = append(st.ratios, spotRatio{step, res.WorkRatio})
	best, steps := bestTwo(st.ratios)
	tol := bench.DefaultWorkTolerance
	switch {
	case st.held:
		st.due = time.Now().Add(spotPeriod)
		return nil, nil
	case len(st.ratios) >= 2 && best >= 1-tol:
		// The claim held in this rotation: the rest of it at leisure.
		st.held, st.short = true, 0
		st.due = time.Now().Add(spotPeriod)
		r.emit(SpotCheck{Provider: c.Addr, Host: job.host, Held: true, Step: steps, WorkRatio: best, Next: spotPeriod})
		return nil, nil
	case st.next < len(st.order):
		return nil, nil // every class is replayed before judging
	}
	// Even the classes least slowed down by the machine's load did less
	// work per msat billed than claimed, by more than the tolerance. Once
	// may be the load (an honest rotation's best two measured 0.82): a
	// second rotation follows at once, and a set short in both claims
	// more than the machine does.
	st.short++
	problem := fmt.Sprintf("over %d workload classes, the best two did %.2f of the work per msat billed its calibration claims (%s; at most %.0f%% less)",
		len(st.order), best, steps, 100*tol)
	if st.short < spotRotationsShort {
		r.emit(SpotCheck{Provider: c.Addr, Host: job.host, Problems: []string{problem}, Short: true})
		return nil, nil
	}
	problem = fmt.Sprintf("%d rotations in a row short: %s", st.short, problem)
	r.emit(SpotCheck{Provider: c.Addr, Host: job.host, Problems: []string{problem}, Failed: true, Marks: MarksPath(r.cfg.ConfigDir)})
	r.note(c, market.FailedCheck("spot check: "+problem))
	if err := addMark(r.cfg.ConfigDir, spotMark{Time: time.Now().UTC(), Provider: fingerprint(c), Address: c.Addr, Step: "rotation", Problems: []string{problem}}); err != nil {
		return nil, err
	}
	st.dropped = true
	reason := "its calibration claims more work per msat than its hosts do: " + problem
	ids := slices.Clone(r.leases[c])
	for _, id := range ids {
		name := r.drop(c, id)
		dropped = append(dropped, name)
		r.note(c, market.Dropped(reason))
		r.emit(Dropped{Host: name, Lease: id, Provider: c.Addr, Reason: reason})
	}
	go func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(r.bookCtx), 30*time.Second)
		defer cancel()
		if err := c.Release(rctx, ids); err != nil {
			r.report(fmt.Errorf("release the hosts of provider %s: %w", c.Addr, err))
		}
	}()
	r.excluded[fingerprint(c)] = true
	return dropped, nil
}

// SpotCheck is a spot check of a provider's calibration on one of its
// hosts: one replay (Step; ScoreRatio is its score over the claim's,
// compared when ScoreChecked, WorkRatio its work per msat billed over the
// claim's, Problems what the score and counters showed), or Failed: a
// rotation's verdict, the provider marked in the Marks file, recorded and
// its hosts dropped; or Err (it could not run).
type SpotCheck struct {
	Provider, Host, Step  string
	ScoreRatio, WorkRatio float64
	ScoreChecked          bool
	Problems              []string
	Failed                bool
	Marks                 string
	Err                   error
	// Short: a rotation fell short (Problems says how); another follows
	// before the provider is judged.
	Short bool
	// Held: the best two replays of this rotation (Step names them,
	// WorkRatio their mean) did within the tolerance of the claimed work
	// per msat billed; the next replay is Next later.
	Held bool
	Next time.Duration
}

func (e SpotCheck) String() string {
	at := fmt.Sprintf("spot check of provider %s on %s", e.Provider, e.Host)
	switch {
	case e.Err != nil:
		return fmt.Sprintf("%s could not run: %v", at, e.Err)
	case e.Failed:
		return fmt.Sprintf("%s FAILED: %s; provider marked in %s and its hosts dropped", at, strings.Join(e.Problems, "; "), e.Marks)
	case e.Short:
		return fmt.Sprintf("%s: %s; one more rotation before judging", at, strings.Join(e.Problems, "; "))
	case e.Held:
		return fmt.Sprintf("%s: its calibration holds: the best two steps (%s) did %.2f of their claimed work per msat billed; next replay in %s", at, e.Step, e.WorkRatio, e.Next)
	}
	var score, notes string
	if e.ScoreChecked {
		score = fmt.Sprintf("scored %.2f of its claim, ", e.ScoreRatio)
	}
	if len(e.Problems) > 0 {
		notes = " (" + strings.Join(e.Problems, "; ") + ")"
	}
	return fmt.Sprintf("%s: %s step %sdid %.2f of its claimed work per msat billed%s", at, e.Step, score, e.WorkRatio, notes)
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
