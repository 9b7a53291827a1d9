package bench

import (
	_ "embed"
	"fmt"
	"sync"
)

// referenceJSON is the reference machine's calibration: the canonical
// suite, seed 20261121, 16 steps of 2.5 s, platform systrap, on the machine
// testdata/calibration describes. Prices per unit of benchmark work are
// prices of a second of this machine's work: every provider's scores are
// divided by these, step by step.
//
//go:embed reference/reference.json
var referenceJSON []byte

var reference = sync.OnceValues(func() (*Set, error) {
	s, err := Decode(referenceJSON)
	if err != nil {
		return nil, fmt.Errorf("the embedded reference calibration: %w", err)
	}
	return s, nil
})

// Reference returns the reference machine's calibration set.
func Reference() (*Set, error) { return reference() }

// ReferenceOptions are the suite options of the reference run: a provider
// calibrated with them runs the same steps, so that its scores can be
// taken relative to the reference's.
func ReferenceOptions() (Options, error) {
	ref, err := Reference()
	if err != nil {
		return Options{}, err
	}
	return Options{Seed: ref.Run.Seed, Steps: len(ref.Steps), Seconds: ref.Run.Seconds}, nil
}
