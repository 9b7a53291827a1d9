package sshgate

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
)

// progressEvery is the least time between two TypeStarting messages.
const progressEvery = 200 * time.Millisecond

// negotiation is one renter's negotiation channel: the demands, offers,
// grants, releases and payments on it, and the leases granted through it,
// which end when it goes away.
type negotiation struct {
	g      *Gateway
	ctx    context.Context
	owner  gossh.PublicKey
	holder string
	log    *slog.Logger
	w      *outbox // every message to the renter

	// offer is the live offer, if any: an accept takes it.
	offer *proto.Offer

	// mine is every lease granted on this channel: their accounts stay
	// open, for late payments, until it goes away.
	mineMu sync.Mutex
	mine   []string

	// reportMu orders a lease's reports: one taken by the interval loop
	// just before the lease ends must not reach the renter after the
	// final one (it would read as a sequence going backwards).
	reportMu    sync.Mutex
	reporting   sync.Once
	stopReports chan struct{}
}

// negotiate serves a negotiation channel (zennet-negotiate-v1@zennet) of
// a connection authenticated with a public key.
func (g *Gateway) negotiate(_ *ssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx ssh.Context) {
	owner := VerifiedKey(conn)
	if owner == nil {
		nc.Reject(gossh.Prohibited, "not authenticated with a public key")
		return
	}
	g.track(conn)
	g.handlers.Add(1)
	defer g.handlers.Done()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go gossh.DiscardRequests(reqs)
	holder := newHolder()
	log := g.log.With("key", gossh.FingerprintSHA256(owner), "holder", holder)
	n := &negotiation{g: g, ctx: ctx, owner: owner, holder: holder, stopReports: make(chan struct{}), log: log,
		w: newOutbox(proto.NewWriter(ch), func() { conn.Close() }, log, g.stallTimeout)}
	n.start()
	defer n.end()
	n.serve(proto.NewReader(ch))
}

// start registers the renter's writer and hears of its leases' ends.
func (n *negotiation) start() {
	g := n.g
	g.mu.Lock()
	g.writers[n.holder] = n.w
	g.mu.Unlock()
	g.leases.Notify(n.holder, func(e proto.Ended, final *meter.Report) {
		n.reportMu.Lock()
		g.sendFinal(n.ctx, n.w, final, n.log)
		n.reportMu.Unlock()
		n.w.Send(proto.Message{Type: proto.TypeEnded, Ended: &e})
	})
}

// end stops the reports, ends every lease the renter still holds (cause
// renter_gone), bills their final reports and closes their accounts.
func (n *negotiation) end() {
	g := n.g
	close(n.stopReports)
	g.leases.Notify(n.holder, nil)
	ctx := context.WithoutCancel(n.ctx)
	for _, le := range g.leases.Holding(n.holder) {
		if final, err := g.leases.End(ctx, le.ID, n.owner, proto.EndRenterGone); err != nil {
			n.log.Error("end lease", "lease", le.ID, "err", err)
		} else if final != nil {
			if err := g.billing.Record(ctx, *final); err != nil {
				n.log.Error("bill final report", "lease", le.ID, "err", err)
			}
		}
	}
	n.mineMu.Lock()
	for _, id := range n.mine {
		if rc, err := g.billing.Close(id); err != nil {
			n.log.Error("close lease account", "lease", id, "err", err)
		} else {
			n.log.Info("lease account closed", "lease", id, "billed_msat", rc.Status.Billed, "paid_msat", rc.Status.Paid,
				"unpaid_msat", rc.Status.Unpaid)
		}
	}
	n.mineMu.Unlock()
	g.mu.Lock()
	delete(g.writers, n.holder)
	g.mu.Unlock()
	n.w.close()
}

// serve answers the renter's messages until it goes away.
func (n *negotiation) serve(r *proto.Reader) {
	for {
		m, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				n.log.Warn("negotiation read", "err", err)
				n.w.Send(proto.ErrorMessage(fmt.Errorf("%w: %v", proto.ErrBadRequest, err)))
			}
			return
		}
		var reply []proto.Message
		switch m.Type {
		case proto.TypeDemand:
			reply = n.demand(*m.Demand)
		case proto.TypeAccept:
			reply = n.accept(*m.Accept)
			n.offer = nil // an offer is taken once, granted or not
		case proto.TypeRelease:
			reply = n.release(m.Release.IDs)
		case proto.TypePayment:
			reply = n.payment(m.Payment)
		case proto.TypeMembership:
			reply = n.membership(m.Membership)
		default:
			reply = []proto.Message{proto.ErrorMessage(fmt.Errorf("%w: unexpected %s message", proto.ErrBadRequest, m.Type))}
		}
		for _, rm := range reply {
			if err := n.w.Send(rm); err != nil {
				return
			}
		}
	}
}

// demand answers a demand with an offer for as many hosts as fit.
func (n *negotiation) demand(d proto.Demand) []proto.Message {
	if err := n.g.billing.Admit(n.owner); err != nil {
		n.log.Warn("renter refused", "err", err)
		return []proto.Message{proto.ErrorMessage(err)}
	}
	o, err := n.g.leases.Offer(n.owner, d)
	if err != nil {
		return []proto.Message{proto.ErrorMessage(err)}
	}
	if o.Payment, err = n.g.billing.Terms(n.owner, o.Limits, o.IntervalSeconds, d.BidPerWorkMsat); err != nil {
		n.log.Error("payment terms", "err", err)
		return []proto.Message{proto.ErrorMessage(err)}
	}
	n.offer = &o
	return []proto.Message{{Type: proto.TypeOffer, Offer: &o}}
}

// accept grants the live offer's hosts, a lease message each, and starts
// the usage reports.
func (n *negotiation) accept(a proto.Accept) []proto.Message {
	method := cmp.Or(a.Method, pay.DefaultMethod)
	offer := n.offer
	if offer == nil || a.Count > offer.Count || time.Now().After(offer.Expiry) {
		return []proto.Message{proto.ErrorMessage(fmt.Errorf("%w: accept without a live offer for that many hosts", proto.ErrBadRequest))}
	}
	if !slices.Contains(offer.Payment.Methods, method) {
		return []proto.Message{proto.ErrorMessage(fmt.Errorf("%w: payment method %q is not offered (offered: %s)",
			proto.ErrBadRequest, method, strings.Join(offer.Payment.Methods, ", ")))}
	}
	if err := n.g.billing.Admit(n.owner); err != nil { // a lease of its ended unpaid since the offer
		return []proto.Message{proto.ErrorMessage(err)}
	}
	var started func(int)
	if a.Progress {
		// At most five a second (and the last): a large accept's count
		// must not fill the renter's queue.
		var last time.Time
		started = func(k int) {
			if k < a.Count && time.Since(last) < progressEvery {
				return
			}
			last = time.Now()
			n.w.Send(proto.Message{Type: proto.TypeStarting, Starting: &proto.Starting{Started: k, Count: a.Count}})
		}
	}
	granted, prepay, err := n.g.grant(n.ctx, n.owner, n.holder, a.Count, *offer, method, a.Cluster, started)
	if err != nil {
		n.log.Warn("grant", "err", err)
		return []proto.Message{proto.ErrorMessage(err)}
	}
	var reply []proto.Message
	n.mineMu.Lock()
	for _, le := range granted {
		n.mine = append(n.mine, le.ID)
		pl := le.Proto()
		if req := prepay[le.ID]; req != nil {
			b, err := pay.EncodeRequest(*req)
			if err != nil {
				n.log.Error("encode a prepayment request", "lease", le.ID, "err", err)
			}
			pl.Prepay = bytes.TrimSpace(b)
		}
		reply = append(reply, proto.Message{Type: proto.TypeLease, Lease: &pl})
	}
	n.mineMu.Unlock()
	// Usage reports go out every agreed interval, from the first grant on.
	every := time.Duration(offer.IntervalSeconds) * time.Second
	n.reporting.Do(func() { go n.g.report(n.ctx, n.holder, every, n.w, n.stopReports, &n.reportMu, n.log) })
	return reply
}

// release ends the leases ids, each with its final report.
func (n *negotiation) release(ids []string) []proto.Message {
	var done []string
	var errs []error
	for _, id := range ids {
		// A release completes even if the renter hangs up meanwhile.
		n.reportMu.Lock()
		final, err := n.g.leases.End(context.WithoutCancel(n.ctx), id, n.owner, proto.EndReleased)
		if err == nil {
			n.g.sendFinal(n.ctx, n.w, final, n.log)
		}
		n.reportMu.Unlock()
		if err != nil {
			// A lease of this channel's that has ended meanwhile (the
			// provider ended it, its final report is on its way) is
			// released: releasing is idempotent.
			n.mineMu.Lock()
			ours := slices.Contains(n.mine, id)
			n.mineMu.Unlock()
			if errors.Is(err, proto.ErrNotFound) && ours {
				done = append(done, id)
				continue
			}
			errs = append(errs, err)
			continue
		}
		done = append(done, id)
	}
	if err := errors.Join(errs...); err != nil && len(done) == 0 {
		return []proto.Message{proto.ErrorMessage(err)}
	}
	return []proto.Message{{Type: proto.TypeReleased, Released: &proto.Released{IDs: done}}}
}

// payment counts a proof of payment and answers with the credit (and the
// resumption of a host it unpaused).
func (n *negotiation) payment(raw []byte) []proto.Message {
	proof, err := pay.DecodeProof(raw)
	if err != nil {
		n.log.Warn("malformed payment", "err", err)
		return []proto.Message{proto.ErrorMessage(fmt.Errorf("%w: %v", proto.ErrBadRequest, err))}
	}
	cctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	credit, resumed := n.g.billing.Confirm(cctx, n.owner, proof)
	cancel()
	reply := []proto.Message{{Type: proto.TypeCredit, Credit: &credit}}
	if resumed != nil {
		reply = append(reply, proto.Message{Type: proto.TypeState, State: resumed})
	}
	return reply
}

// membership hands a session's membership to the cluster node and answers
// with what it holds, or why it refused it (changing nothing).
func (n *negotiation) membership(raw []byte) []proto.Message {
	if n.g.cluster == nil {
		return []proto.Message{proto.ErrorMessage(fmt.Errorf("%w: this provider does not put hosts on session networks", proto.ErrBadRequest))}
	}
	st, err := n.g.cluster.Update(n.owner, raw)
	if err != nil {
		n.log.Warn("cluster membership refused", "err", err)
		return []proto.Message{proto.ErrorMessage(fmt.Errorf("%w: %v", proto.ErrBadRequest, err))}
	}
	return []proto.Message{{Type: proto.TypeCluster, Cluster: &st}}
}
