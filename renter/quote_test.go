package renter

import (
	"testing"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
)

// An estimate prices an hour of every CPU busy and the whole memory held,
// at the offer's own rates; counters it does not fill cost nothing.
func TestHourly(t *testing.T) {
	var rates pay.Rates
	for c, r := range map[meter.Counter]string{meter.CPU: "1/1000000", meter.MemoryTime: "1/1000", meter.NetOutBytes: "1"} {
		if err := rates.Set(c, r); err != nil {
			t.Fatal(err)
		}
	}
	l := proto.Limits{CPUs: 1.5, MemoryBytes: 512 << 20}
	// 1.5 CPU-hours at 1 msat per CPU-ms: 5,400,000; 512 MiB for an hour
	// at 1 msat per MiB·s: 1,843,200.
	if got, want := hourly(rates, l), 5_400_000.0+1_843_200; got != want {
		t.Fatalf("hourly: %v msat, want %v", got, want)
	}
	if got := hourly(pay.Rates{}, l); got != 0 {
		t.Fatalf("no rates: %v", got)
	}
}

func TestEstimateAdd(t *testing.T) {
	var e Estimate
	e.add(ProviderQuote{Hosts: 2, HostMsatPerHour: 100})
	e.add(ProviderQuote{Hosts: 0, HostMsatPerHour: 1000, Note: "not needed"})
	e.add(ProviderQuote{Hosts: 1, HostMsatPerHour: 50})
	if e.Hosts != 3 || e.MsatPerHour != 250 || len(e.Providers) != 3 {
		t.Fatalf("got %+v", e)
	}
}
