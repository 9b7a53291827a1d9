package sshgate

import (
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/zennet/zennet/proto"
)

// A ticket is what authorizes a connection that does not speak SSH (a
// lease stream, a cluster stream): the party asks for it on its
// authenticated SSH connection, then connects again and sends it first.
type ticket = [proto.TicketSize]byte

// Bounds of a ticket table.
const (
	// ticketTTL is how long a ticket waits for its connection.
	ticketTTL = 30 * time.Second
	// maxTickets bounds the tickets waiting at once in one table.
	maxTickets = 256
)

// Errors of issuing a ticket.
var (
	errTicketsClosed  = errors.New("the gateway is shutting down")
	errTooManyTickets = errors.New("too many streams waiting to start; try again")
)

// tickets is a table of one-use tickets, each holding a value until it is
// redeemed, it expires (after ticketTTL) or the table closes; expire, if
// not nil, is called with the value of each ticket never redeemed.
type tickets[V any] struct {
	expire  func(V)
	ttl     time.Duration
	mu      sync.Mutex
	pending map[ticket]*pendingTicket[V]
	closed  bool
}

type pendingTicket[V any] struct {
	v     V
	timer *time.Timer
}

func newTickets[V any](expire func(V)) *tickets[V] {
	return &tickets[V]{expire: expire, ttl: ticketTTL, pending: map[ticket]*pendingTicket[V]{}}
}

// issue keeps v under a new ticket for ticketTTL.
func (s *tickets[V]) issue(v V) (ticket, error) {
	var t ticket
	if _, err := rand.Read(t[:]); err != nil {
		return t, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return t, errTicketsClosed
	}
	if len(s.pending) >= maxTickets {
		return t, errTooManyTickets
	}
	p := &pendingTicket[V]{v: v}
	p.timer = time.AfterFunc(s.ttl, func() {
		s.mu.Lock()
		mine := s.pending[t] == p
		if mine {
			delete(s.pending, t)
		}
		s.mu.Unlock()
		if mine && s.expire != nil {
			s.expire(v)
		}
	})
	s.pending[t] = p
	return t, nil
}

// redeem takes ticket t's value, once; false if t is unknown, used or
// expired.
func (s *tickets[V]) redeem(t ticket) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[t]
	if p == nil || !p.timer.Stop() {
		var zero V
		return zero, false
	}
	delete(s.pending, t)
	return p.v, true
}

// close drops every ticket (expiring its value) and refuses new ones.
func (s *tickets[V]) close() {
	s.mu.Lock()
	s.closed = true
	var left []V
	for t, p := range s.pending {
		// A timer that fired but has not taken s.mu yet finds its
		// ticket gone and leaves the value to this.
		p.timer.Stop()
		left = append(left, p.v)
		delete(s.pending, t)
	}
	s.mu.Unlock()
	if s.expire != nil {
		for _, v := range left {
			s.expire(v)
		}
	}
}
