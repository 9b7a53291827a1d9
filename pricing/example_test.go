package pricing_test

import (
	"fmt"

	"github.com/zennet/zennet/pricing"
)

// A provider's calibration: two steps, one loading the CPU, one moving
// memory pages, each worth an agreed msat per second.
func Example() {
	cal := pricing.Calibration{Hash: "example", Rows: []pricing.Row{
		{Step: "int", Value: 1001.5, Rates: map[string]float64{"cpu_ns": 1e9, "page_faults_minor": 100}},
		{Step: "membw", Value: 1300, Rates: map[string]float64{"cpu_ns": 1e9, "page_faults_minor": 20000}},
		{Step: "half", Value: 575, Rates: map[string]float64{"cpu_ns": 0.5e9, "page_faults_minor": 5000}},
	}}
	m, err := pricing.Fit([]pricing.Calibration{cal}, pricing.Prices{}, pricing.Options{})
	if err != nil {
		panic(err)
	}
	// Bill an interval: 3 CPU-seconds and 10000 page faults. The steps'
	// values are 1000 msat per CPU-second and 0.015 per fault exactly, so
	// 3150 msat, less the ridge's shrinkage (at most 0.1%).
	q, err := m.Quote(pricing.Usage{"cpu_ns": 3e9, "page_faults_minor": 10000})
	if err != nil {
		panic(err)
	}
	n, _ := pricing.Nanomsat(q)
	fmt.Printf("%d components, %.1f%% of the variance; bill %.0f msat\n", len(m.Components), 100*m.VarianceKept, float64(n)/1e9)
	// Output: 2 components, 100.0% of the variance; bill 3149 msat
}
