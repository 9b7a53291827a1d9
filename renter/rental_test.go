package renter

import (
	"testing"

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
