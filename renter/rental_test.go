package renter

import (
	"testing"

	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
)

func TestProvidersFault(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ended proto.Ended
		want  bool
	}{
		{"memory overrun", proto.Ended{Cause: proto.EndMemoryExceeded, Reason: "memory limit exceeded: 128 MiB"}, false},
		{"unpaid", proto.Ended{Cause: proto.EndUnpaid, Reason: "unpaid: 5 msat due"}, false},
		{"released", proto.Ended{Cause: proto.EndReleased}, false},
		{"renter gone", proto.Ended{Cause: proto.EndRenterGone}, false},
		{"sandbox crashed", proto.Ended{Cause: proto.EndSandboxExited, Reason: "the sandbox stopped"}, true},
		{"operator", proto.Ended{Cause: proto.EndOperator, Reason: "ended by the provider's operator"}, true},
		{"shutdown", proto.Ended{Cause: proto.EndProviderShutdown, Reason: "the provider is shutting down"}, true},
		{"payment setup", proto.Ended{Cause: proto.EndPaymentSetup}, true},
		// The cause decides, never the text.
		{"crash said like an overrun", proto.Ended{Cause: proto.EndSandboxExited, Reason: "memory limit exceeded"}, true},
		{"no cause, text of an overrun", proto.Ended{Reason: "memory limit exceeded: from an older provider"}, true},
		{"no cause, text of unpaid", proto.Ended{Reason: "unpaid: from an older provider"}, true},
		{"unknown cause", proto.Ended{Cause: "meteor_strike", Reason: "unpaid"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := providersFault(tt.ended); got != tt.want {
				t.Errorf("providersFault(%+v) = %v, want %v", tt.ended, got, tt.want)
			}
		})
	}
}

// TestSpentNote: a failed rent says what the hosts granted before it
// failed cost, per provider; with none granted it says nothing.
func TestSpentNote(t *testing.T) {
	rc := func(provider string, billed, paid uint64) Receipt {
		return Receipt{Provider: provider, Receipt: pay.Receipt{Status: pay.Status{Billed: billed, Paid: paid}}}
	}
	for _, tt := range []struct {
		name string
		rs   []Receipt
		want string
	}{
		{"none granted", nil, ""},
		{"two providers", []Receipt{rc("a:1", 1000, 1000), rc("b:2", 2500, 2000), rc("a:1", 300, 300)},
			"released the 3 hosts granted before it failed, which cost 3,300 msat paid (3,800 billed): provider a:1: 2 hosts, 1,300 msat paid of 1,300 billed; provider b:2: 1 host, 2,000 msat paid of 2,500 billed; receipts: zennet ledger"},
		{"granted, nothing used", []Receipt{rc("a:1", 0, 0)},
			"released the 1 host granted before it failed, which cost 0 msat paid (0 billed): provider a:1: 1 host, 0 msat paid of 0 billed; receipts: zennet ledger"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := spentNote(tt.rs); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
