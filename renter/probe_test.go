package renter

import (
	"errors"
	"slices"
	"testing"

	"github.com/zennet/zennet/session"
)

// TestRankProbes: hosts are ranked by msat billed per unit of work
// measured, whatever their speed or announced price: a fast host with a
// low announced price that bills more for the work it did ranks below a
// slow one that bills less.
func TestRankProbes(t *testing.T) {
	p := func(name string, speed, price, measured float64, err error) probed {
		return probed{host: session.Host{Name: name, PricePerWorkMsat: price}, speed: speed, msatPerWork: measured, err: err}
	}
	for _, tt := range []struct {
		name string
		in   []probed
		want []string
	}{
		{"cheaper per work first", []probed{p("dear", 0.9, 100, 130, nil), p("cheap", 0.5, 100, 101, nil)}, []string{"cheap", "dear"}},
		{"measured, not announced", []probed{p("announced-cheap", 0.9, 100, 300, nil), p("announced-dear", 0.5, 200, 210, nil)}, []string{"announced-dear", "announced-cheap"}},
		{"flat rates compete by their bill", []probed{p("priced", 0.9, 300, 310, nil), p("flat", 0.5, 0, 90, nil)}, []string{"flat", "priced"}},
		{"failed last", []probed{p("failed", 0, 100, 0, errors.New("ssh: timeout")), p("slow", 0.1, 100, 900, nil)}, []string{"slow", "failed"}},
		{"ties keep the rented order", []probed{p("a", 0.5, 100, 100, nil), p("b", 0.5, 100, 100, nil), p("c", 0.5, 100, 100, nil)}, []string{"a", "b", "c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rankProbes(tt.in)
			var got []string
			for _, r := range tt.in {
				got = append(got, r.host.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("order %v, want %v", got, tt.want)
			}
		})
	}
}
