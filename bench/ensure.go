package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/atomicfile"
)

// EnsureConfig is a provider's first-start calibration.
type EnsureConfig struct {
	// Dir caches calibrations, one file per hardware fingerprint
	// (e.g. the provider's DATA_DIR/calibration).
	Dir string
	// Calibrate says how to run the suite if there is no calibration of
	// this machine yet; its Runsc and Platform also give the fingerprint.
	Calibrate CalibrateConfig
	// Signer, if not nil, signs a new calibration (the provider's host
	// key), so that renters can check who measured it.
	Signer ssh.Signer
}

// DefaultSteps and DefaultSeconds are a calibration's steps unless told
// otherwise: two rounds of the suite, in well under two minutes.
const (
	DefaultSteps   = 20
	DefaultSeconds = 3
)

// CachePath is the file EnsureCalibration keeps the calibration of a
// machine with fingerprint fp in.
func CachePath(dir, fp string) string { return filepath.Join(dir, "calibration-"+fp+".json") }

// EnsureCalibration returns this machine's calibration from dir, running
// the suite first if there is none for its hardware fingerprint (the CPU,
// memory, kernel, runsc build and platform, suite version): on a
// provider's first start, and again whenever any of those change. ran
// says whether it ran the suite. A cached file that does not decode, is
// of another machine, or whose signature does not verify is replaced.
func EnsureCalibration(ctx context.Context, cfg EnsureConfig) (set *Set, ran bool, err error) {
	c := cfg.Calibrate
	m, err := DescribeMachine(ctx, c.Runsc, c.Platform)
	if err != nil {
		return nil, false, fmt.Errorf("describe machine: %w", err)
	}
	path := CachePath(cfg.Dir, m.Fingerprint)
	if s, err := loadCached(path, m); err == nil {
		// A new signing key (the provider's host key changed) re-signs
		// the measurements; it does not invalidate them.
		if cfg.Signer != nil && (s.Signer == nil || !bytes.Equal(s.Signer.Marshal(), cfg.Signer.PublicKey().Marshal())) {
			if err := s.Sign(cfg.Signer); err != nil {
				return nil, false, err
			}
			if err := s.WriteFile(path); err != nil {
				return nil, false, fmt.Errorf("save calibration: %w", err)
			}
		}
		return s, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) && c.Log != nil {
		c.Log.Warn("calibration cache unusable; running the suite again", "subsystem", "bench", "path", path, "err", err)
	}
	if c.Options.Steps == 0 {
		c.Options.Steps = DefaultSteps
	}
	if c.Options.Seconds == 0 {
		c.Options.Seconds = DefaultSeconds
	}
	if c.Options.Seed == 0 {
		c.Options.Seed = randomSeed()
	}
	if c.Note == "" {
		c.Note = "provider first start"
	}
	set, err = Calibrate(ctx, c)
	if err != nil {
		return nil, false, err
	}
	if set.Machine.Fingerprint != m.Fingerprint {
		return nil, true, errors.New("the machine changed while it was calibrated; start again")
	}
	if cfg.Signer != nil {
		if err := set.Sign(cfg.Signer); err != nil {
			return nil, true, err
		}
	}
	b, err := set.Marshal()
	if err != nil {
		return nil, true, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, true, fmt.Errorf("create calibration dir: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return nil, true, fmt.Errorf("save calibration: %w", err)
	}
	return set, true, nil
}

func loadCached(path string, m Machine) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if s.Machine != m {
		return nil, fmt.Errorf("calibration of another machine (%s)", s.Machine.Fingerprint)
	}
	if s.Suite.Name != SuiteName || s.Suite.Version != SuiteVersion {
		return nil, fmt.Errorf("calibration of suite %s %s", s.Suite.Name, s.Suite.Version)
	}
	if s.Signer != nil {
		if err := s.Verify(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// WriteFile writes the set to path atomically (a temporary file renamed
// over it), mode 0644: calibration sets are meant to be published.
func (s *Set) WriteFile(path string) error {
	b, err := s.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// ReadFile reads and decodes a calibration set file; it does not verify
// the signature.
func ReadFile(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSetSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxSetSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrInvalidSet, MaxSetSize)
	}
	s, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// StoreDir is where imported calibration sets live below the config dir.
const StoreDir = "calibrations"

// Store saves a verified set in dir under its digest and returns the path.
// Storing the same set twice keeps one file.
func Store(dir string, s *Set) (string, error) {
	d, err := s.Digest()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, d[:16]+".json")
	if err := s.WriteFile(path); err != nil {
		return "", fmt.Errorf("store calibration set: %w", err)
	}
	return path, nil
}

// LoadStore reads every calibration set in dir, verifying signed ones; a
// file that fails is reported in errs and left out.
func LoadStore(dir string) (sets []*Set, errs []error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, []error{err}
	}
	for _, p := range paths {
		s, err := ReadFile(p)
		if err == nil && s.Signer != nil {
			err = s.Verify()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		sets = append(sets, s)
	}
	return sets, errs
}
