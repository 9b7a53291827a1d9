package renter

import (
	"errors"
	"slices"
	"testing"

	"github.com/zennet/zennet/session"
)

func TestRankProbes(t *testing.T) {
	p := func(name string, speed, price float64, err error) probed {
		return probed{host: session.Host{Name: name, PricePerWorkMsat: price}, speed: speed, err: err}
	}
	for _, tt := range []struct {
		name string
		in   []probed
		want []string
	}{
		{"same price: faster first", []probed{p("slow", 0.5, 100, nil), p("fast", 0.9, 100, nil)}, []string{"fast", "slow"}},
		{"same speed: cheaper first", []probed{p("dear", 0.8, 300, nil), p("cheap", 0.8, 100, nil)}, []string{"cheap", "dear"}},
		{"speed over price", []probed{p("fast-dear", 0.9, 300, nil), p("slow-cheap", 0.5, 100, nil)}, []string{"slow-cheap", "fast-dear"}},
		{"failed last", []probed{p("failed", 0, 100, errors.New("ssh: timeout")), p("slow", 0.1, 100, nil)}, []string{"slow", "failed"}},
		{"flat rates: speed alone", []probed{p("dear", 0.9, 300, nil), p("flat", 0.5, 0, nil), p("cheap", 0.6, 100, nil)}, []string{"dear", "cheap", "flat"}},
		{"ties keep the rented order", []probed{p("a", 0.5, 100, nil), p("b", 0.5, 100, nil), p("c", 0.5, 100, nil)}, []string{"a", "b", "c"}},
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
