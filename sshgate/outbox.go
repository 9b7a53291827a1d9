package sshgate

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/zennet/zennet/proto"
)

// Bounds of an outbox: a renter that falls this far behind, or whose
// channel takes one message no faster, is stalled.
const (
	outboxSize   = 1024
	stallTimeout = 30 * time.Second // WithStallTimeout
)

// errStalled: the renter stopped reading and was disconnected; errGone:
// its channel is gone.
var (
	errStalled = errors.New("the renter stopped reading its channel and was disconnected")
	errGone    = errors.New("the renter's channel is closed")
)

// outbox carries every message to one renter: a bounded queue with a
// writer of its own, so that nothing the provider does waits on the
// renter's reading (the report loop with its lease's lock, enforcement,
// an operator's pause or end, the provider's shutdown). A renter whose
// queue fills, or whose channel takes a message no faster than
// stallTimeout, is disconnected: its negotiation ends and its leases with
// it, billed to their last report as the leases of a renter that left.
type outbox struct {
	q     chan proto.Message
	w     *proto.Writer
	stop  func() // disconnects the renter
	log   *slog.Logger
	stall time.Duration

	done     chan struct{}
	doneOnce sync.Once
}

func newOutbox(w *proto.Writer, disconnect func(), log *slog.Logger, stall time.Duration) *outbox {
	o := &outbox{q: make(chan proto.Message, outboxSize), w: w, stop: disconnect, log: log, stall: stall, done: make(chan struct{})}
	go o.run()
	return o
}

// Send queues m for the renter; it never waits.
func (o *outbox) Send(m proto.Message) error {
	select {
	case <-o.done:
		return errGone
	default:
	}
	select {
	case o.q <- m:
		return nil
	default:
		o.stalled("its queue of " + strconv.Itoa(outboxSize) + " messages is full")
		return errStalled
	}
}

func (o *outbox) run() {
	for {
		select {
		case <-o.done:
			return
		case m := <-o.q:
			t := time.AfterFunc(o.stall, func() { o.stalled("a message waited " + o.stall.String() + " to be read") })
			err := o.w.Send(m)
			t.Stop()
			if err != nil {
				o.close()
				return
			}
		}
	}
}

// stalled disconnects the renter, once.
func (o *outbox) stalled(why string) {
	o.doneOnce.Do(func() {
		o.log.Warn("renter stalled: disconnecting it; its leases end unpaid", "why", why)
		close(o.done)
		o.stop()
	})
}

// close stops the writer (the channel is gone); what is queued is dropped.
func (o *outbox) close() {
	o.doneOnce.Do(func() { close(o.done) })
}

// WithStallTimeout sets how long one message to a renter may wait to be
// read before the renter is disconnected as stalled (default 30 s).
func WithStallTimeout(d time.Duration) GatewayOption {
	return func(g *Gateway) { g.stallTimeout = d }
}
