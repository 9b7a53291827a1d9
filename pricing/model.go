package pricing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
)

// ModelVersion is the version of the model's JSON form. Bump it on any
// change a version-1 reader would misread.
const ModelVersion = 1

// MaxModelSize bounds an encoded model that Decode accepts.
const MaxModelSize = 1 << 20

// Model is a fitted price model: a non-negative rate per counter, with the
// record of how it was fitted. Its JSON form (Encode) is what the parties
// agree on; Hash names it.
type Model struct {
	Version int `json:"version"`
	// Counters are the priced counters in fit order, with their rates.
	Counters []CounterRate `json:"counters"`
	// Excluded are counters the calibration carried that the model
	// deliberately does not price (NonAdditive and Options.Exclude). Quote
	// ignores them.
	Excluded []string `json:"excluded,omitempty"`
	// Prices is how the step values were set.
	Prices Prices `json:"prices"`
	// Calibrations are the IDs of the calibration sets fitted from.
	Calibrations []string `json:"calibrations"`
	// Reference is the ID of the reference calibration that scores were
	// divided by (Options.Reference), if any.
	Reference string `json:"reference,omitempty"`
	// SingularValues are all singular values of the scaled calibration
	// matrix, largest first.
	SingularValues []float64 `json:"singular_values"`
	// Components are the principal components kept.
	Components []Component `json:"components"`
	// VarianceKept is the fraction of the scaled matrix's variance (sum of
	// squared singular values) that Components carry.
	VarianceKept float64 `json:"variance_kept"`
	// Ridge is the ridge parameter relative to the smallest kept squared
	// singular value (Options.Ridge).
	Ridge float64 `json:"ridge"`
	// Residuals compare, step by step, the agreed value with what the model
	// charges for the step.
	Residuals []Residual `json:"residuals"`
	// RMSResidual is the root mean square of Residuals' Relative.
	RMSResidual float64 `json:"rms_residual"`
	// RMSHeldOut is the root mean square of Residuals' HeldOut, present
	// when there are two steps or more.
	RMSHeldOut *float64 `json:"rms_held_out,omitempty"`
	// Warnings say where the fit is weaker than it looks.
	Warnings []string `json:"warnings,omitempty"`
}

// CounterRate is one priced counter.
type CounterRate struct {
	Name string `json:"name"`
	Unit string `json:"unit,omitempty"`
	// Scale is the root mean square of the counter's rate over the
	// calibration steps (unit per second), the column scaling of the fit. 0
	// means no step exercised the counter; its rate is then 0.
	Scale float64 `json:"scale"`
	// Rate is the price in msat per unit of the counter.
	Rate float64 `json:"rate"`
}

// Component is one principal component kept.
type Component struct {
	SingularValue float64 `json:"singular_value"`
	// Variance is the fraction of the total variance it carries.
	Variance float64 `json:"variance"`
	// Loadings is the unit right singular vector over the scaled counters,
	// in Counters order (0 for counters of zero scale), its largest entry
	// positive.
	Loadings []float64 `json:"loadings"`
}

// Residual compares one step's agreed value with the model's charge.
type Residual struct {
	Calibration string `json:"calibration"`
	Step        string `json:"step"`
	// Value is the agreed value of a second of the step, in msat.
	Value float64 `json:"value"`
	// Fitted is what the model charges for a second of the step, in msat.
	Fitted float64 `json:"fitted"`
	// Relative is (Fitted − Value) / Value.
	Relative float64 `json:"relative"`
	// HeldOut is Relative for a model fitted without this step (leave one
	// out; beyond 100 steps, 100-fold cross-validation): an estimate of the
	// error on work the calibration did not include. Absent for a single
	// step.
	HeldOut *float64 `json:"held_out,omitempty"`
}

// Encode returns the model's JSON form. It is deterministic: the same
// model gives the same bytes, and Decode(Encode(m)) prices exactly as m.
func Encode(m *Model) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode model: %w", err)
	}
	return append(b, '\n'), nil
}

// Decode reads a model's JSON form, rejecting unknown fields, other
// versions and models that could not have been fitted (negative or
// non-finite rates, mismatched components).
func Decode(b []byte) (*Model, error) {
	if len(b) > MaxModelSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrModel, len(b), MaxModelSize)
	}
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModel, err)
	}
	if probe.Version == nil {
		return nil, fmt.Errorf("%w: no version", ErrModel)
	}
	if *probe.Version != ModelVersion {
		return nil, fmt.Errorf("%w: version %d, this zennet reads version %d", ErrModel, *probe.Version, ModelVersion)
	}
	m := new(Model)
	if err := decodeStrict(b, m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModel, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Hash is "sha256:" and the hex SHA-256 of Encode(m): the name both
// parties sign when they agree on a model.
func (m *Model) Hash() (string, error) {
	b, err := Encode(m)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func (m *Model) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrModel, fmt.Sprintf(format, a...))
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if m == nil {
		return bad("nil model")
	}
	if m.Version != ModelVersion {
		return bad("version %d, want %d", m.Version, ModelVersion)
	}
	if len(m.Counters) == 0 {
		return bad("no counters")
	}
	names := map[string]bool{}
	for _, c := range m.Counters {
		if c.Name == "" {
			return bad("a counter has no name")
		}
		if names[c.Name] {
			return bad("counter %s twice", c.Name)
		}
		names[c.Name] = true
		if !finite(c.Rate) || c.Rate < 0 {
			return bad("counter %s: rate %v is not a non-negative number", c.Name, c.Rate)
		}
		if !finite(c.Scale) || c.Scale < 0 {
			return bad("counter %s: scale %v is not a non-negative number", c.Name, c.Scale)
		}
	}
	for _, name := range m.Excluded {
		if names[name] || name == "" {
			return bad("excluded counter %q is empty, repeated or priced", name)
		}
		names[name] = true
	}
	if err := m.Prices.validate(); err != nil {
		return bad("prices: %v", err)
	}
	if len(m.Calibrations) == 0 {
		return bad("no calibration recorded")
	}
	if len(m.Components) == 0 || len(m.Components) > len(m.SingularValues) {
		return bad("%d components of %d singular values", len(m.Components), len(m.SingularValues))
	}
	for i, s := range m.SingularValues {
		if !finite(s) || s < 0 || (i > 0 && s > m.SingularValues[i-1]) {
			return bad("singular values are not non-negative and decreasing")
		}
	}
	for i, c := range m.Components {
		if len(c.Loadings) != len(m.Counters) {
			return bad("component %d has %d loadings for %d counters", i+1, len(c.Loadings), len(m.Counters))
		}
		if !finite(c.SingularValue) || !finite(c.Variance) || c.Variance < 0 || c.Variance > 1 {
			return bad("component %d: singular value or variance out of range", i+1)
		}
		for _, x := range c.Loadings {
			if !finite(x) || math.Abs(x) > 1 {
				return bad("component %d: loading %v out of range", i+1, x)
			}
		}
	}
	if !finite(m.VarianceKept) || m.VarianceKept < 0 || m.VarianceKept > 1 {
		return bad("variance kept %v is not a fraction", m.VarianceKept)
	}
	if !finite(m.Ridge) || m.Ridge < 0 {
		return bad("ridge %v is not a non-negative number", m.Ridge)
	}
	if !finite(m.RMSResidual) || (m.RMSHeldOut != nil && !finite(*m.RMSHeldOut)) {
		return bad("residual summary is not finite")
	}
	for _, r := range m.Residuals {
		if !finite(r.Value) || !finite(r.Fitted) || !finite(r.Relative) || (r.HeldOut != nil && !finite(*r.HeldOut)) {
			return bad("residual of step %q is not finite", r.Step)
		}
	}
	return nil
}

// FitSummary is a fitted model in brief: where it was written, its hash and
// how well it fits.
type FitSummary struct {
	Model        string   `json:"model"`
	Hash         string   `json:"hash"`
	Calibrations []string `json:"calibrations"`
	Steps        int      `json:"steps"`
	Components   int      `json:"components"`
	Counters     int      `json:"counters"`
	VarianceKept float64  `json:"variance_kept"`
	RMSResidual  float64  `json:"rms_residual"`
	RMSHeldOut   *float64 `json:"rms_held_out,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
}

// Summary is m in brief, file being where it is written.
func (m *Model) Summary(file string) (FitSummary, error) {
	h, err := m.Hash()
	if err != nil {
		return FitSummary{}, err
	}
	return FitSummary{
		Model: file, Hash: h, Calibrations: m.Calibrations, Steps: len(m.Residuals), Components: len(m.Components),
		Counters: len(m.Counters), VarianceKept: m.VarianceKept, RMSResidual: m.RMSResidual, RMSHeldOut: m.RMSHeldOut, Warnings: m.Warnings,
	}, nil
}

// DescribePrices says in words how m's step values were set.
func (m *Model) DescribePrices() string {
	switch m.Prices.Mode() {
	case "per_second":
		return fmt.Sprintf("%g msat per second of any step", m.Prices.PerSecond)
	case "per_score":
		if m.Reference != "" {
			return fmt.Sprintf("%g msat per reference-second (scores relative to %s)", m.Prices.PerScore, m.Reference)
		}
		return fmt.Sprintf("%g msat per unit of score", m.Prices.PerScore)
	case "per_reference_cpu_second":
		return fmt.Sprintf("%g msat per CPU-second of work on the reference %s", m.Prices.PerReferenceCPUSecond, m.Reference)
	}
	return "each step's own value"
}
