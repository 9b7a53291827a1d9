package renter

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/session"
	"github.com/zennet/zennet/sshgate"
)

// probeSeconds is how long the probe step runs on each host.
const probeSeconds = 2

// probed is one host's probe: how fast it ran the probe step, and what
// that work cost there.
type probed struct {
	host  session.Host
	speed float64 // relative to the reference machine (0: the probe failed)
	// msatPerWork is what the host was billed for the probe, at its
	// lease's rates on the provider's own reports, per reference
	// CPU-second of the work it did: the measured price of a unit of
	// work, which orders the hosts, cheapest first.
	msatPerWork float64
	err         error
}

// probe runs the probe step (bench.Probe) on every host at once, keeps the
// keep most efficient and releases the others: "hire many, drop the least
// efficient". Efficiency is measured, not announced: each host's bill for
// the probe (its lease's rates applied to the counters of the provider's
// own reports over the step) over the work the step did, in reference
// CPU-seconds; of two hosts the one that charged less for a unit of work
// is kept, whatever price or speed it announced or calibrated. A host
// whose probe fails, or whose bill cannot be measured, ranks last. The
// kept hosts take the first names, in their order, and the session's
// files are rewritten.
func (r *Rental) probe(ctx context.Context, keep int) error {
	r.progress("probing %d hosts (%ds of benchmark work each) ...", len(r.hosts), probeSeconds)
	res := make([]probed, len(r.hosts))
	// Every host starts its step at once, when all have set up (or
	// failed), so that hosts sharing a machine are measured under each
	// other's load alike.
	var wg, ready sync.WaitGroup
	allReady := make(chan struct{})
	ready.Add(len(r.hosts))
	go func() { ready.Wait(); close(allReady) }()
	for i, h := range r.hosts {
		res[i].host = h
		rates := r.rates[h.LeaseID]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			arrive := func() { once.Do(ready.Done) }
			defer arrive()
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			env := bench.Env{Command: Commander(r.files.SSHConfig, h.Name),
				// The provider's own reports meter the step: the first one
				// read after each call, so each host's step starts at its
				// next report after all have set up.
				Counters:       func() (meter.Sample, error) { return r.book.reportAfter(pctx, h.LeaseID, time.Now()) },
				SampleInterval: time.Hour,
				Start: func(ctx context.Context) error {
					arrive()
					select {
					case <-allReady:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}}
			p, err := bench.Probe(pctx, env, h.Limits.CPUs, probeSeconds)
			res[i].speed, res[i].err = p.Speed, err
			if err == nil {
				res[i].msatPerWork, res[i].err = probeCost(p, rates)
			}
		}()
	}
	wg.Wait()
	r.progress("")
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rankProbes(res)
	keep = min(keep, len(res))
	dropped := res[keep:]
	for i, p := range res {
		verdict := "kept"
		if i >= keep {
			verdict = "dropped (least efficient)"
		}
		price := "flat rates"
		if p.host.PricePerWorkMsat > 0 {
			price = fmt.Sprintf("%s msat per unit of work", strconv.FormatFloat(p.host.PricePerWorkMsat, 'f', -1, 64))
		}
		if p.err != nil {
			r.emit(ProbeResult{Host: p.host.Name, Provider: p.host.Provider, Err: p.err, Verdict: verdict})
			continue
		}
		r.emit(ProbeResult{Host: p.host.Name, Provider: p.host.Provider, Speed: p.speed, MsatPerWork: p.msatPerWork, Price: price, Verdict: verdict})
	}
	// The dropped hosts leave (their receipts keep a name no kept host
	// takes); the kept ones stay in the order they were rented and take
	// the first names.
	for _, p := range dropped {
		r.book.rename(p.host.LeaseID, p.host.Name+"-dropped")
	}
	r.releaseHosts(ctx, dropped)
	names, err := r.sess.ReserveNames(len(r.hosts))
	if err != nil {
		return err
	}
	for i := range r.hosts {
		r.hosts[i].Name = names[i]
		r.book.rename(r.hosts[i].LeaseID, names[i])
	}
	r.files, err = r.sess.Write(r.hosts, r.cfg.KeyPath)
	return err
}

// probeCost is what a probe cost per reference CPU-second of its work, at
// rates on the counters the provider reported over it.
func probeCost(p bench.ProbeResult, rates pay.Rates) (float64, error) {
	var v meter.Vector
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		v[c] = p.Step.Delta[c.Name()]
	}
	bill, _ := rates.Cost(v).Float64()
	if !(p.Work > 0) || !(bill > 0) {
		return 0, fmt.Errorf("no bill to measure: %.4g msat for %.4g reference CPU-seconds of work", bill, p.Work)
	}
	return bill / p.Work, nil
}

// ProbeResult is one host's probe: its speed relative to the reference
// machine, what its work cost measured (msat billed per reference
// CPU-second of work) against its announced price, or why the probe
// failed, and whether the host is kept.
type ProbeResult struct {
	Host, Provider string
	Speed          float64
	MsatPerWork    float64
	Price          string
	Err            error
	Verdict        string
}

func (e ProbeResult) String() string {
	if e.Err != nil {
		return fmt.Sprintf("probe of %s (provider %s) failed: %v; %s", e.Host, e.Provider, e.Err, e.Verdict)
	}
	return fmt.Sprintf("probe of %s (provider %s): %.2f of the reference's speed, billed %.4g msat per unit of work measured (announced: %s); %s",
		e.Host, e.Provider, e.Speed, e.MsatPerWork, e.Price, e.Verdict)
}

// rankProbes orders probes best first (see probe): the least msat billed
// per unit of work measured; failed probes last. Ties keep the rented
// order.
func rankProbes(res []probed) {
	key := func(p probed) float64 {
		if p.err != nil || !(p.msatPerWork > 0) {
			return math.Inf(1)
		}
		return p.msatPerWork
	}
	slices.SortStableFunc(res, func(a, b probed) int { return cmp.Compare(key(a), key(b)) })
}

// releaseHosts ends the leases of hosts the renter no longer wants, each
// provider's at once; their final bills are paid before the rental's
// release returns. The hosts leave the rental.
func (r *Rental) releaseHosts(ctx context.Context, ps []probed) {
	byClient := map[*sshgate.Client][]string{}
	for _, p := range ps {
		for _, c := range r.clients {
			if slices.Contains(r.leases[c], p.host.LeaseID) {
				byClient[c] = append(byClient[c], p.host.LeaseID)
			}
		}
	}
	var wg sync.WaitGroup
	for c, ids := range byClient {
		for _, id := range ids {
			r.forget(c, id)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := c.Release(rctx, ids); err != nil {
				r.notice("release probed hosts of provider %s: %v", c.Addr, err)
			}
		}()
	}
	wg.Wait()
}
