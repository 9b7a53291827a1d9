package sshgate

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestTickets: a ticket is redeemed once; an unknown one never; one not
// redeemed in time expires, and its value with it (once); a closed table
// expires what it holds and issues no more; it holds at most maxTickets.
func TestTickets(t *testing.T) {
	var expired atomic.Int64
	s := newTickets(func(int) { expired.Add(1) })
	tk, err := s.issue(7)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.redeem(tk); !ok || v != 7 {
		t.Fatalf("redeem = %d, %v; want 7, true", v, ok)
	}
	if _, ok := s.redeem(tk); ok {
		t.Fatal("a ticket was redeemed twice")
	}
	if _, ok := s.redeem(ticket{1}); ok {
		t.Fatal("a ticket nobody was given was redeemed")
	}

	s.ttl = 20 * time.Millisecond
	late, _ := s.issue(8)
	waitFor(t, "the ticket expired", func() bool { return expired.Load() == 1 })
	if _, ok := s.redeem(late); ok {
		t.Fatal("an expired ticket was redeemed")
	}

	s.ttl = time.Hour
	for i := range maxTickets {
		if _, err := s.issue(i); err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
	}
	if _, err := s.issue(0); !errors.Is(err, errTooManyTickets) {
		t.Fatalf("ticket %d: %v, want %v", maxTickets+1, err, errTooManyTickets)
	}
	s.close()
	if n := expired.Load(); n != 1+maxTickets {
		t.Fatalf("%d values expired, want %d", n, 1+maxTickets)
	}
	if _, err := s.issue(0); !errors.Is(err, errTicketsClosed) {
		t.Fatalf("after close: %v, want %v", err, errTicketsClosed)
	}
	time.Sleep(50 * time.Millisecond)
	if n := expired.Load(); n != 1+maxTickets {
		t.Fatalf("%d values expired after close, want %d (each once)", n, 1+maxTickets)
	}
}
