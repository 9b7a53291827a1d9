package renter

import (
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
	// short counts the rotations in a row whose median fell short.
	short int
	// held: the rotation's median reached 1-DefaultWorkTolerance.
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

// rotationMedian is the median of a rotation's ratios on the CPU-bound
// workloads (bench.SpotWorkloads; the mean of the middle two of an even
// number), and whether it is already known to reach at least floor: more
// than half of the n CPU-bound replays the whole rotation has (the ones
// not run yet count as below) reached floor, so whatever the rest do, the
// rotation's median reaches it. The median, not the best: the machine's
// load moves each replay's work per CPU-second, and one class of five now
// and then far from the others (memlat: 0.3 to 2.7 of its claim). The
// CPU-bound classes, not all ten: the system-call, file, network and
// process classes move with the load far more (bench.DefaultWorkTolerance
// has the figures), and negotiation already bounds what the others claim
// by these (terms.MaxUnanchored).
//
// judged are the workloads whose replays count (nil: all): a set with no
// CPU-bound step (one offered at flat rates may have any) is judged by all
// its replays.
func rotationMedian(rs []spotRatio, judged []string, n int, floor float64) (median float64, held bool) {
	var xs []float64
	reached := 0
	for _, r := range rs {
		if judged != nil && !slices.Contains(judged, r.step) {
			continue
		}
		xs = append(xs, r.ratio)
		if r.ratio >= floor {
			reached++
		}
	}
	if len(xs) == 0 {
		return 0, false
	}
	slices.Sort(xs)
	median = xs[len(xs)/2]
	if len(xs)%2 == 0 {
		median = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return median, 2*reached > n
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
// at a time, providers in turn: the search starts after the provider of
// the last replay, so that replays of several providers alternate and see
// the same stretch of the machine's load.
func (r *Rental) nextSpot(now time.Time) (spotJob, bool) {
	start := 0
	if i := slices.Index(r.clients, r.spotLast); i >= 0 {
		start = i + 1
	}
	for k := range r.clients {
		c := r.clients[(start+k)%len(r.clients)]
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
		r.spotLast = c
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

// spotResult takes a replay's outcome and says it. A rotation holds as
// soon as more than half of its CPU-bound workload classes
// (bench.SpotWorkloads) did at least 1-bench.DefaultWorkTolerance of their
// claimed work per msat billed (their median does then). When two rotations in a row end (every class
// replayed once) with a median below that, the provider is marked, the
// failure is recorded in the reputation book and its hosts are dropped:
// it returns their names, to replace. One replay alone is not judged: a
// shared machine's load moves some classes' work per CPU-second far more
// than that, and unequally; inflated scores lower them all alike
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
	tol := bench.DefaultWorkTolerance
	judged, cpuBound := bench.SpotWorkloads(), 0
	for _, i := range st.order {
		if slices.Contains(judged, st.set.Steps[i].Workload) {
			cpuBound++
		}
	}
	if cpuBound == 0 {
		judged, cpuBound = nil, len(st.order)
	}
	median, held := rotationMedian(st.ratios, judged, cpuBound, 1-tol)
	switch {
	case st.held:
		st.due = time.Now().Add(spotPeriod)
		return nil, nil
	case held:
		// More than half the rotation's CPU-bound classes reached the
		// claim, less the tolerance: their median does, whatever the rest
		// do. The rest at leisure.
		st.held, st.short = true, 0
		st.due = time.Now().Add(spotPeriod)
		r.emit(SpotCheck{Provider: c.Addr, Host: job.host, Held: true, Step: strings.Join(bench.SpotWorkloads(), ", "), WorkRatio: median, Next: spotPeriod})
		return nil, nil
	case st.next < len(st.order):
		return nil, nil // every class is replayed before judging
	}
	// The rotation's median CPU-bound replay did less work per msat
	// billed than claimed, by more than the tolerance. Once may be the
	// load (an honest rotation's median moved by up to 20% from one
	// rotation to the next): a second rotation follows at once, and a set
	// short in both claims more than the machine does.
	st.short++
	problem := fmt.Sprintf("over %d workload classes, the median of the %d CPU-bound ones did %.2f of the work per msat billed its calibration claims (at most %.0f%% less)",
		len(st.order), cpuBound, median, 100*tol)
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
	// Held: more than half of this rotation's CPU-bound replays (Step
	// names the workloads and how many the rotation has) did within the
	// tolerance of the claimed work per msat billed, so their median does
	// (WorkRatio, of those so far); the next replay is Next later.
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
		return fmt.Sprintf("%s: its calibration holds: the median replay of the CPU-bound classes (%s) did %.2f of its claimed work per msat billed; next replay in %s", at, e.Step, e.WorkRatio, e.Next)
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
