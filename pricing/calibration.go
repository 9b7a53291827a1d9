package pricing

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"github.com/zennet/zennet/meter"
)

// Row is one benchmark step of a calibration run on one provider.
type Row struct {
	// Step names the benchmark step, for residuals and messages.
	Step string `json:"step"`
	// Rates are the step's counter deltas divided by its seconds, keyed by
	// counter name (meter.Counter.Name): counter units per second. Every
	// row of a fit must name the same counters.
	Rates map[string]float64 `json:"rates"`
	// Seconds is how long the step ran. It is informational (0 means not
	// known); rates are already per second.
	Seconds float64 `json:"seconds,omitempty"`
	// Score is the step's speed: work done per second, in the workload's
	// own unit (bench's Step.Score). Prices.PerScore prices it, divided by
	// the score of the same step on the reference machine when
	// Options.Reference is given (so that it counts reference-seconds of
	// work whatever unit the workload counts in).
	Score float64 `json:"score,omitempty"`
	// Value is what a second of this step is worth, in msat per second,
	// when the parties agree a value per step (Prices zero).
	Value float64 `json:"value,omitempty"`
}

// Calibration is one calibration run: the steps of the benchmark suite run
// on one provider.
type Calibration struct {
	// Hash identifies the run (bench's content hash). Empty means ID
	// computes one from the rows.
	Hash string `json:"hash,omitempty"`
	// Units optionally gives the unit of counters that meter does not
	// know; meter's own units win for meter counters.
	Units map[string]string `json:"units,omitempty"`
	Rows  []Row             `json:"rows"`
}

// ID is c.Hash, or when that is empty "sha256:" and the hex SHA-256 of the
// JSON encoding of c.Rows (map keys sorted, so the same rows give the same
// ID).
func (c Calibration) ID() string {
	if c.Hash != "" {
		return c.Hash
	}
	b, _ := json.Marshal(c.Rows) // rows hold only strings and numbers.
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// RowFromVector builds a Row from a meter counter delta over seconds, for
// adapting bench's calibration steps. Every meter counter is included.
func RowFromVector(step string, delta meter.Vector, seconds, score float64) Row {
	r := Row{Step: step, Rates: make(map[string]float64, meter.NumCounters), Seconds: seconds, Score: score}
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		r.Rates[c.Name()] = float64(delta[c]) / seconds
	}
	return r
}

// DecodeCalibration reads a calibration set in the JSON form of
// Calibration, rejecting unknown fields and trailing data.
func DecodeCalibration(b []byte) (Calibration, error) {
	var c Calibration
	if err := decodeStrict(b, &c); err != nil {
		return Calibration{}, fmt.Errorf("%w: %v", ErrCalibration, err)
	}
	return c, nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON document")
	}
	return nil
}

// Prices says what each calibration step is worth. Set at most one of
// PerSecond and PerScore; with neither, every row's Value is used.
type Prices struct {
	// PerSecond is one full-load price in msat per second for every step.
	PerSecond float64 `json:"per_second,omitempty"`
	// PerScore prices a step at PerScore × Row.Score msat per second: a
	// price per unit of benchmark work, the same on every provider. With
	// Options.Reference the score is relative, and PerScore is the price
	// of a second of work on the reference machine.
	PerScore float64 `json:"per_score,omitempty"`
}

// Mode names the way p sets step values: "per_second", "per_score" or
// "per_step".
func (p Prices) Mode() string {
	switch {
	case p.PerSecond != 0:
		return "per_second"
	case p.PerScore != 0:
		return "per_score"
	}
	return "per_step"
}

func (p Prices) validate() error {
	if p.PerSecond != 0 && p.PerScore != 0 {
		return fmt.Errorf("%w: give a price per second or a price per score, not both", ErrCalibration)
	}
	for _, x := range []struct {
		name string
		v    float64
	}{{"price per second", p.PerSecond}, {"price per score", p.PerScore}} {
		if math.IsNaN(x.v) || math.IsInf(x.v, 0) || x.v < 0 {
			return fmt.Errorf("%w: %s %v: must be a positive number of msat", ErrCalibration, x.name, x.v)
		}
	}
	return nil
}

// value is what a second of row r is worth under p.
func (p Prices) value(r Row) (float64, error) {
	switch p.Mode() {
	case "per_second":
		return p.PerSecond, nil
	case "per_score":
		if !(r.Score > 0) || math.IsInf(r.Score, 0) {
			return 0, fmt.Errorf("score %v: pricing per score needs a positive score on every step", r.Score)
		}
		return p.PerScore * r.Score, nil
	}
	if !(r.Value > 0) || math.IsInf(r.Value, 0) {
		return 0, fmt.Errorf("value %v: with no price per second or per score every step needs a positive value (msat per second)", r.Value)
	}
	return r.Value, nil
}

// relativeScores returns c with each step's score divided by the score of
// the reference step of the same name.
func relativeScores(c Calibration, ref *Calibration) (Calibration, error) {
	refScore := map[string]float64{}
	for _, r := range ref.Rows {
		if _, dup := refScore[r.Step]; dup || r.Step == "" {
			return c, fmt.Errorf("%w: reference %s: step name %q is empty or repeated", ErrCalibration, ref.ID(), r.Step)
		}
		if !(r.Score > 0) || math.IsInf(r.Score, 0) {
			return c, fmt.Errorf("%w: reference %s step %q: score %v is not a positive number", ErrCalibration, ref.ID(), r.Step, r.Score)
		}
		refScore[r.Step] = r.Score
	}
	out := Calibration{Hash: c.ID(), Units: c.Units, Rows: make([]Row, len(c.Rows))}
	for i, r := range c.Rows {
		rs, ok := refScore[r.Step]
		if !ok {
			return c, fmt.Errorf("%w: calibration %s step %q: the reference %s has no such step", ErrCalibration, c.ID(), r.Step, ref.ID())
		}
		r.Score /= rs
		out.Rows[i] = r
	}
	return out, nil
}
