package pricing

import (
	"fmt"
	"io"
	"os"
)

// MaxInput bounds a calibration, model, usage or fairness file that
// ReadInput reads.
const MaxInput = 64 << 20

// ReadInput reads all of r, refusing more than MaxInput bytes; name names
// r in errors.
func ReadInput(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > MaxInput {
		return nil, fmt.Errorf("read %s: larger than %d MiB", name, MaxInput>>20)
	}
	return b, nil
}

// ReadFile reads the file at path with ReadInput.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadInput(f, path)
}

// ReadCalibrationFile reads and decodes a calibration file
// (DecodeCalibration).
func ReadCalibrationFile(path string) (Calibration, error) {
	b, err := ReadFile(path)
	if err != nil {
		return Calibration{}, err
	}
	c, err := DecodeCalibration(b)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ReadModelFile reads and decodes a model file (Decode) and returns the
// model with its hash.
func ReadModelFile(path string) (*Model, string, error) {
	b, err := ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	m, err := Decode(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	h, err := m.Hash()
	return m, h, err
}

// FitFiles reads the calibration files at paths and fits a model to them
// (Fit).
func FitFiles(paths []string, prices Prices, opts Options) (*Model, error) {
	cals := make([]Calibration, 0, len(paths))
	for _, path := range paths {
		c, err := ReadCalibrationFile(path)
		if err != nil {
			return nil, err
		}
		cals = append(cals, c)
	}
	return Fit(cals, prices, opts)
}
