package pricing

import (
	"errors"
	"math"
	"testing"
)

func tariffCal(values, cpus []float64) Calibration {
	var c Calibration
	for i := range values {
		c.Rows = append(c.Rows, Row{Step: string(rune('a' + i)), Seconds: 2.5,
			Rates: map[string]float64{"cpu_ns": cpus[i] * 1e9, "cpu_user_ns": 0, "io_read_bytes": 1e9 * float64(i)}, Value: values[i]})
	}
	return c
}

// The rate is the steps' value over their CPU time, and each held-out error
// is that of the tariff refitted without the step.
func TestFitTariff(t *testing.T) {
	values := []float64{200, 150, 100, 310}
	cpus := []float64{2, 1.5, 1.25, 3}
	cal := tariffCal(values, cpus)
	tr, err := FitTariff(cal, Prices{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 760 / 7.75e9; math.Abs(tr.Rate-want) > 1e-12*want {
		t.Fatalf("rate %v, want %v", tr.Rate, want)
	}
	for i, r := range tr.Residuals {
		var others Calibration
		others.Rows = append(append(others.Rows, cal.Rows[:i]...), cal.Rows[i+1:]...)
		o, err := FitTariff(others, Prices{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := (o.Rate*cpus[i]*1e9 - values[i]) / values[i]; math.Abs(*r.HeldOut-want) > 1e-12 {
			t.Errorf("step %s held out %v, want %v", r.Step, *r.HeldOut, want)
		}
	}
	if err := tr.Trusted(); err != nil {
		t.Fatalf("a fit within 20%%: %v", err)
	}
	// One step worth twice its CPU time: refused, naming it.
	values[2] = 250
	tr, err = FitTariff(tariffCal(values, cpus), Prices{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Trusted(); !errors.Is(err, ErrUntrusted) || tr.RMSHeldOut <= MaxTariffHeldOut {
		t.Fatalf("held out %.3f: Trusted = %v, want %v", tr.RMSHeldOut, err, ErrUntrusted)
	}
	if _, err := FitTariff(tariffCal([]float64{1, 1}, []float64{0, 0}), Prices{}, nil); !errors.Is(err, ErrNoSignal) {
		t.Fatalf("no CPU time: %v, want %v", err, ErrNoSignal)
	}
}
