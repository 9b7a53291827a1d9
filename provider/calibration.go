package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/pricing"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
)

// calibrationDir is where this machine's calibrations are cached, by
// hardware fingerprint: shared by every provider on the machine (the
// fingerprint covers the CPU, memory, kernel, runsc build and platform).
func calibrationDir(cacheDir string) string { return filepath.Join(cacheDir, "calibration") }

// calibration returns the calibration the provider offers: "off" none;
// "auto" this machine's, running the canonical suite on first start (and
// after a hardware change) with the reference run's steps; otherwise the
// set in that file, e.g. one a benchmarker published.
func (p *Provider) calibration(ctx context.Context, rt *sandbox.Runtime, hostKey gossh.Signer) (*bench.Set, error) {
	o, runsc, agent, log := p.cfg, p.runsc, p.agent, p.log
	switch o.Calibration {
	case "off":
		return nil, nil
	case "auto":
	default:
		set, err := bench.ReadFile(o.Calibration)
		if err != nil {
			return nil, fmt.Errorf("--calibration: %w", err)
		}
		if err := set.Verify(); err != nil {
			return nil, fmt.Errorf("--calibration %s: %w (sign it with 'zennet bench publish')", o.Calibration, err)
		}
		if m, err := bench.DescribeMachine(ctx, runsc, o.Platform); err == nil && m.Fingerprint != set.Machine.Fingerprint {
			log.Warn("the calibration set describes another machine; renters' spot checks will tell", "file", o.Calibration,
				"set", set.Machine.Fingerprint, "this", m.Fingerprint)
		}
		return set, nil
	}
	dir := calibrationDir(o.CacheDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// One calibration at a time on a machine: providers starting together
	// wait for the first, then use its result.
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		p.emit(CalibrationWaiting{})
		if err := flockCtx(ctx, lock); err != nil {
			return nil, err
		}
	}
	opts, err := bench.ReferenceOptions()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	opts.Progress = func(pr bench.Progress) {
		if pr.Done == nil && pr.Step == 1 {
			p.emit(Calibrating{Steps: pr.Steps})
		}
	}
	set, ran, err := bench.EnsureCalibration(ctx, bench.EnsureConfig{
		Dir: dir,
		Calibrate: bench.CalibrateConfig{Runtime: rt, Runsc: runsc, Platform: o.Platform,
			Sandbox: bench.SandboxConfig{AgentBinary: agent}, Options: opts, Log: log},
		Signer: hostKey,
	})
	if err != nil {
		return nil, fmt.Errorf("calibrate this machine: %w (or start with --calibration off, or --calibration FILE)", err)
	}
	if ran {
		p.emit(Calibrated{Took: time.Since(start)})
	}
	return set, nil
}

// flockCtx takes an exclusive lock on f, giving up when ctx ends.
func flockCtx(ctx context.Context, f *os.File) error {
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// modelRates fits the price model of a calibration set at price msat per
// reference CPU-second of work (pricing.Prices.PerReferenceCPUSecond: the
// work a step does is worth what the reference machine spends on it in
// CPU time), and returns its rates as agreed
// rates. Provider and renter compute the same: the renter checks the
// provider's offered rates with it.
func modelRates(set *bench.Set, price float64) (pay.Rates, *pricing.Model, error) {
	var rates pay.Rates
	cal, err := bench.CalibrationOf(set)
	if err != nil {
		return rates, nil, err
	}
	ref, err := bench.Reference()
	if err != nil {
		return rates, nil, err
	}
	refCal, err := bench.CalibrationOf(ref)
	if err != nil {
		return rates, nil, err
	}
	m, err := pricing.Fit([]pricing.Calibration{cal}, pricing.Prices{PerReferenceCPUSecond: price},
		pricing.Options{Reference: &refCal, Exclude: pricing.NegotiationExclude()})
	if err != nil {
		return rates, nil, err
	}
	for _, cr := range m.Counters {
		c, ok := meter.CounterByName(cr.Name)
		if !ok || cr.Rate == 0 {
			continue
		}
		if err := rates.SetFloat(c, cr.Rate); err != nil {
			return rates, nil, fmt.Errorf("rate of %s: %w", cr.Name, err)
		}
	}
	return rates, m, nil
}

// calibrationJSON encodes a set for an offer.
func calibrationJSON(set *bench.Set) (json.RawMessage, error) {
	if set == nil {
		return nil, nil
	}
	b, err := set.Marshal()
	if err != nil {
		return nil, err
	}
	if len(b) > proto.MaxMessageSize/2 {
		return nil, errors.New("the calibration set is too large to offer")
	}
	return json.RawMessage(b), nil
}

// relativeScore is a calibration's work relative to the reference
// machine's: the geometric mean, over the steps both ran, of the ratio of
// their scores (market.RelativeScore). 0 when there is nothing to compare.
func relativeScore(set *bench.Set) float64 {
	if set == nil {
		return 0
	}
	ref, err := bench.Reference()
	if err != nil {
		return 0
	}
	refScore := map[string]float64{}
	for _, st := range ref.Steps {
		refScore[fmt.Sprintf("%s/%d", st.Workload, st.Seed)] = st.Score
	}
	var s, r []float64
	for _, st := range set.Steps {
		if rs, ok := refScore[fmt.Sprintf("%s/%d", st.Workload, st.Seed)]; ok {
			s, r = append(s, st.Score), append(r, rs)
		}
	}
	if len(s) == 0 {
		return 0
	}
	score, err := market.RelativeScore(s, r)
	if err != nil {
		return 0
	}
	return score
}
