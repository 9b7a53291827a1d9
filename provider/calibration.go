package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
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
