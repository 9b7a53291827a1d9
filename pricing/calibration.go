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
// PerSecond, PerScore and PerReferenceCPUSecond; with none, every row's
// Value is used.
type Prices struct {
	// PerSecond is one full-load price in msat per second for every step.
	PerSecond float64 `json:"per_second,omitempty"`
	// PerScore prices a step at PerScore × Row.Score msat per second: a
	// price per unit of benchmark work, the same on every provider. With
	// Options.Reference the score is relative, and PerScore is the price
	// of a second of work on the reference machine.
	PerScore float64 `json:"per_score,omitempty"`
	// PerReferenceCPUSecond prices the work of a step by the CPU time the
	// reference machine (Options.Reference, required) spends on it: a
	// second of step k is worth PerReferenceCPUSecond × (Row.Score ÷ the
	// reference step's score) × the reference step's CPUs (its cpu_ns rate
	// in seconds per second). On the reference itself this is CPU-second
	// billing; elsewhere a CPU-second is worth what it gets done. Unlike
	// PerScore it does not value the CPUs a step leaves idle on the
	// reference (waiting for a process to start, a file to sync), which
	// only counters that are by-products of that wait could pay for, and
	// which a job that moves those counters far more would then pay many
	// times over (docs/pricing.md, "Measured fairness").
	PerReferenceCPUSecond float64 `json:"per_reference_cpu_second,omitempty"`
}

// ReferenceCPUCounter is the reference row's counter whose rate, in
// nanoseconds per second, gives its CPUs under PerReferenceCPUSecond.
const ReferenceCPUCounter = "cpu_ns"

// Mode names the way p sets step values: "per_second", "per_score",
// "per_reference_cpu_second" or "per_step".
func (p Prices) Mode() string {
	switch {
	case p.PerSecond != 0:
		return "per_second"
	case p.PerScore != 0:
		return "per_score"
	case p.PerReferenceCPUSecond != 0:
		return "per_reference_cpu_second"
	}
	return "per_step"
}

// relative reports whether the mode takes scores relative to a reference.
func (p Prices) relative() bool {
	m := p.Mode()
	return m == "per_score" || m == "per_reference_cpu_second"
}

func (p Prices) validate() error {
	set := 0
	for _, x := range []float64{p.PerSecond, p.PerScore, p.PerReferenceCPUSecond} {
		if x != 0 {
			set++
		}
	}
	if set > 1 {
		return fmt.Errorf("%w: give a price per second, per score or per reference CPU-second: one, not both", ErrCalibration)
	}
	for _, x := range []struct {
		name string
		v    float64
	}{{"price per second", p.PerSecond}, {"price per score", p.PerScore}, {"price per reference CPU-second", p.PerReferenceCPUSecond}} {
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
	case "per_reference_cpu_second":
		// Fit has made the score reference CPU-seconds per second.
		if !(r.Score > 0) || math.IsInf(r.Score, 0) {
			return 0, fmt.Errorf("score %v: pricing per reference CPU-second needs a positive score on every step", r.Score)
		}
		return p.PerReferenceCPUSecond * r.Score, nil
	}
	if !(r.Value > 0) || math.IsInf(r.Value, 0) {
		return 0, fmt.Errorf("value %v: with no price per second or per score every step needs a positive value (msat per second)", r.Value)
	}
	return r.Value, nil
}

// relativeScores returns c with each step's score divided by the score of
// the reference step of the same name, and with cpu multiplied by that
// step's CPUs on the reference (ReferenceCPUCounter).
func relativeScores(c Calibration, ref *Calibration, cpu bool) (Calibration, error) {
	refScore := map[string]float64{}
	for _, r := range ref.Rows {
		if _, dup := refScore[r.Step]; dup || r.Step == "" {
			return c, fmt.Errorf("%w: reference %s: step name %q is empty or repeated", ErrCalibration, ref.ID(), r.Step)
		}
		if !(r.Score > 0) || math.IsInf(r.Score, 0) {
			return c, fmt.Errorf("%w: reference %s step %q: score %v is not a positive number", ErrCalibration, ref.ID(), r.Step, r.Score)
		}
		refScore[r.Step] = r.Score
		if cpu {
			cpus := r.Rates[ReferenceCPUCounter] / 1e9
			if !(cpus > 0) || math.IsInf(cpus, 0) {
				return c, fmt.Errorf("%w: reference %s step %q: %s rate %v is not a positive number; pricing per reference CPU-second needs it", ErrCalibration, ref.ID(), r.Step, ReferenceCPUCounter, r.Rates[ReferenceCPUCounter])
			}
			refScore[r.Step] = r.Score / cpus
		}
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
