package sshgate

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/zennet/zennet/proto"
)

// A renter that only stops reading (no flood: its queue never fills) is
// disconnected once one message has waited the stall timeout, and later
// sends say it is gone; a renter that reads is never disconnected.
func TestOutboxStallTimer(t *testing.T) {
	const stall = 300 * time.Millisecond
	msg := proto.Message{Type: proto.TypeReleased, Released: &proto.Released{IDs: []string{}}}

	stalled, unread := net.Pipe() // nobody reads unread: the first write blocks
	defer unread.Close()
	disconnected := make(chan time.Time, 1)
	o := newOutbox(proto.NewWriter(stalled), func() { disconnected <- time.Now(); stalled.Close() }, slog.New(slog.DiscardHandler), stall)
	start := time.Now()
	if err := o.Send(msg); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-disconnected:
		if took := at.Sub(start); took < stall || took > stall+2*time.Second {
			t.Fatalf("disconnected after %s, want about %s", took, stall)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a renter that stopped reading was never disconnected")
	}
	if err := o.Send(msg); err == nil {
		t.Fatal("a send to a disconnected renter succeeded")
	}

	// One that reads, slowly but within the timeout each time.
	provider, renter := net.Pipe()
	defer renter.Close()
	reading := newOutbox(proto.NewWriter(provider), func() { t.Error("a reading renter was disconnected") }, slog.New(slog.DiscardHandler), stall)
	defer reading.close()
	r := proto.NewReader(renter)
	for range 3 {
		if err := reading.Send(msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(stall / 2)
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
}
