// Package renter is the renter's role: it rents hosts from providers (named,
// or chosen from the market), pins their keys, checks and pays every usage
// report, probes and spot-checks hosts, replaces the ones it loses, and
// releases them all, settling the last bills. It says what happens as typed
// events; the command line prints them.
package renter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/internal/peeraddr"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/p2p"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/session"
	"github.com/zennet/zennet/sshgate"
)

// Config is what to rent, from whom, and on which terms. The command line
// fills it from its flags and checks them; Rent takes it as it is.
type Config struct {
	// ConfigDir holds the renter's state: sessions, ledgers, known
	// providers, the market's directory and the reputation book.
	ConfigDir string
	// Signer is the renter's key; KeyPath its file, named in ssh_config.
	Signer  gossh.Signer
	KeyPath string
	// Count hosts are kept; Probe more are rented, probed and dropped.
	// From the market, as few as Min are taken (0: Count or nothing).
	Count, Probe, Min int
	Limits            proto.Limits
	// Providers are asked in order; without them hosts come from the
	// market, learned from Seeds and the providers file.
	Providers []string
	// ProviderKeys, if any, are the only host keys (fingerprints or
	// public keys) a provider may present; else a provider's key is
	// trusted on first use, said, and pinned.
	ProviderKeys []string
	Seeds        []string
	Interval     time.Duration
	// Timeout bounds the whole leasing.
	Timeout time.Duration
	// Pay lists the payment methods, preferred first; DialLND reaches the
	// renter's node when lightning is one of them.
	Pay     []string
	DialLND func(context.Context) (*pay.LND, error)
	// SpotCheck replays the steps of each provider's calibration in turn
	// while the hosts are held, one of each workload class, and drops a
	// provider whose hosts do less work per msat billed than it claims
	// (spotResult).
	SpotCheck bool
	// TrustCalibration, when not nil, are the only signers of a
	// calibration set taken besides the provider's own key: key
	// fingerprints or public keys (TrustSelf alone: none but the
	// provider's). nil takes any signature.
	TrustCalibration []string
	// Explain says why each market provider was chosen or not.
	Explain bool
	// The market's rules of choice (market.Rules) and the renter's
	// counter-offer (Bid, else MaxPrice).
	MaxPrice, Bid, MinScore, MinReputation float64
	PowBits                                uint
	// Subnet is the session network's subnet; the zero value draws one.
	Subnet netip.Prefix
	// Events receives what the rental says; nil discards it.
	Events func(Event)
}

// ErrNoProvider means the renter knows no provider to rent from.
var ErrNoProvider = errors.New("no provider known: pass --seed HOST:PORT (any provider of the market) or --provider HOST:PORT (or try 'zennet demo')")

// bid is the renter's counter-offer to providers that ask more per unit of
// work: Bid, else MaxPrice (0: none).
func (c *Config) bid() float64 { return cmp.Or(c.Bid, c.MaxPrice) }

// asked is how many hosts are rented: Count, plus Probe to drop.
func (c *Config) asked() int { return c.Count + c.Probe }

// demand is what a provider is asked for count hosts.
func (c *Config) demand(count int) proto.Demand {
	return proto.Demand{Count: count, Limits: c.Limits, IntervalSeconds: int(c.Interval / time.Second), Methods: c.Pay,
		BidPerWorkMsat: c.bid()}
}

// Rental is a set of leased hosts with their forwarders and files.
type Rental struct {
	cfg       *Config
	sess      *session.Session
	files     session.Files
	hosts     []session.Host
	clients   []*sshgate.Client
	leases    map[*sshgate.Client][]string
	listeners map[string]net.Listener // by lease id
	// calibrations are the providers' offered calibration sets.
	calibrations map[*sshgate.Client]*bench.Set
	// spots are the spot checks of each provider's calibration.
	spots map[*sshgate.Client]*spotState
	// spotLast is the provider of the last spot check started.
	spotLast *sshgate.Client
	// rates are each lease's agreed rates, by lease id.
	rates map[string]pay.Rates
	// all is every lease granted through a client, ended ones included:
	// their final bills are paid before release returns.
	all      map[*sshgate.Client][]string
	errs     chan error
	book     *usageBook
	bookCtx  context.Context
	stopBook context.CancelFunc
	hostKeys gossh.HostKeyCallback
	ended    chan endedLease
	ledger   *pay.Ledger
	lnd      *pay.LND
	receipts []Receipt
	// market is the directory hosts came from (nil with Providers): lost
	// hosts are replaced from it.
	market *market.Directory
	// excluded are providers (fingerprints) that lost hosts: replacements
	// come from others.
	excluded map[string]bool
	// net is the session's private network.
	net *clusterNet
	// dialer reaches providers at market multiaddrs (behind NATs), started
	// on first use; paths are how each was reached, said once.
	dialMu sync.Mutex
	dialer *p2p.Dialer
	paths  map[string]string
}

// dial connects to a provider's gateway at addr: over libp2p for a
// market multiaddr (a provider behind a NAT, through a relay or a punched
// hole; the renter is told which, once per provider), over TCP otherwise.
func (r *Rental) dial(ctx context.Context, addr string) (net.Conn, error) {
	if !peeraddr.Is(addr) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	r.dialMu.Lock()
	if r.dialer == nil {
		d, err := p2p.NewDialer()
		if err != nil {
			r.dialMu.Unlock()
			return nil, err
		}
		r.dialer, r.paths = d, map[string]string{}
	}
	d := r.dialer
	r.dialMu.Unlock()
	c, err := d.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	if path, ok := d.Path(addr); ok {
		r.dialMu.Lock()
		said := r.paths[addr] == path.String()
		r.paths[addr] = path.String()
		r.dialMu.Unlock()
		if !said {
			r.emit(ProviderPath{Address: addr, Path: path.String(), Relayed: path.Relay != ""})
		}
	}
	return c, nil
}

// endedLease is a lease its provider ended.
type endedLease struct {
	c *sshgate.Client
	e proto.Ended
}

// Hosts are the rented hosts, in order of their names.
func (r *Rental) Hosts() []session.Host { return slices.Clone(r.hosts) }

// Files are the session's ssh_config, known_hosts and hostfiles.
func (r *Rental) Files() session.Files { return r.files }

// SessionID is the id of the rental's session.
func (r *Rental) SessionID() string { return r.sess.ID }

// Detach records that a background holder holds the rental from now on;
// it returns the file the holder is to write its output to (see
// session.Session.Detach).
func (r *Rental) Detach() (string, error) { return r.sess.Detach() }

// Receipts are the hosts' receipts, known once Release returned.
func (r *Rental) Receipts() []Receipt { return r.receipts }

func (r *Rental) emit(e Event) {
	if r.cfg.Events != nil {
		r.cfg.Events(e)
	}
}

func (r *Rental) progress(format string, a ...any) { r.emit(Progress{fmt.Sprintf(format, a...)}) }
func (r *Rental) notice(format string, a ...any)   { r.emit(Notice{fmt.Sprintf(format, a...)}) }

// report hands an error of a background task to Hold, which says it.
func (r *Rental) report(err error) {
	select {
	case r.errs <- err:
	default:
	}
}

// Rent leases cfg.Count hosts (Count+Probe with a probe) from the
// providers in order, or from the market, all or nothing; writes the
// session's files, probes and spot-checks. On error nothing is kept.
func Rent(ctx context.Context, cfg Config) (r *Rental, err error) {
	o := &cfg
	emit := o.Events
	if emit == nil {
		emit = func(Event) {}
	}
	for _, n := range CheckStateFiles(o.ConfigDir) {
		emit(Notice{n})
	}
	hostKeys, err := providerHostKeys(o.ConfigDir, o.ProviderKeys, func(host, fp string) {
		emit(Notice{fmt.Sprintf("provider %s: first use of its host key %s, pinned from now on (check it with its operator, or pass --provider-key)", host, fp)})
	})
	if err != nil {
		return nil, err
	}
	var lnd *pay.LND
	if slices.Contains(o.Pay, pay.MethodLightning) {
		if o.DialLND == nil {
			return nil, errors.New("lightning: no lnd node configured")
		}
		if lnd, err = o.DialLND(ctx); err != nil {
			return nil, err
		}
	}
	sess, err := session.Open(o.ConfigDir)
	if err != nil {
		if lnd != nil {
			lnd.Close()
		}
		return nil, err
	}
	r = &Rental{cfg: o, sess: sess, leases: map[*sshgate.Client][]string{}, all: map[*sshgate.Client][]string{}, calibrations: map[*sshgate.Client]*bench.Set{}, spots: map[*sshgate.Client]*spotState{}, rates: map[string]pay.Rates{}, excluded: map[string]bool{},
		listeners: map[string]net.Listener{}, errs: make(chan error, 16), ended: make(chan endedLease, 64), lnd: lnd, hostKeys: hostKeys}
	r.bookCtx, r.stopBook = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			r.Release(context.WithoutCancel(ctx), 30*time.Second)
			if spent := spentNote(r.receipts); spent != "" {
				err = causeError{msg: err.Error() + "; " + spent, cause: err}
			}
			r = nil
		}
	}()
	if r.ledger, err = openRenterLedger(o.ConfigDir, sess.ID); err != nil {
		return r, err
	}
	// A session of more than one host is a cluster: its hosts get their
	// own network. One host alone has nobody to reach, and is spared the
	// listener and the tunnels.
	if o.asked() > 1 {
		if r.net, err = newClusterNet(o.Subnet); err != nil {
			return r, err
		}
	}
	r.book = newUsageBook(sess, r.ledger, o.Signer, lnd)
	for _, n := range settleOldLedgers(ctx, o.ConfigDir, o.Signer, lnd, sess.ID) {
		r.notice("%s", n)
	}
	names, err := sess.ReserveNames(o.asked())
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if len(o.Providers) == 0 {
		return r, r.rentFromMarket(ctx, names)
	}
	return r, r.rentFromProviders(ctx, hostKeys, names)
}

// offered is one named provider's offer, checked and not yet accepted.
type offered struct {
	addr   string
	c      *sshgate.Client
	offer  proto.Offer
	method string
	rates  pay.Rates
	calib  *bench.Set
	n      int
}

// rentFromProviders rents from the named providers, in order, all or
// nothing: every provider is asked first, and offers are accepted only
// once they cover every host, so that a rent that cannot be had starts,
// and pays for, nothing. (A provider may still fail to grant what it
// offered; the hosts granted by then are released by Rent, which says
// what they cost.)
func (r *Rental) rentFromProviders(ctx context.Context, hostKeys gossh.HostKeyCallback, names []string) error {
	o := r.cfg
	var refusals []string
	var unreachable, capacity, total int
	var offers []offered
	hangUp := func() {
		for _, of := range offers {
			of.c.Close()
		}
	}
	for _, addr := range o.Providers {
		want := o.asked() - total
		if want == 0 {
			break
		}
		r.progress("asking %s for %d hosts ...", addr, want)
		c, err := sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: o.Signer, HostKeyCallback: hostKeys, Dial: r.dial})
		if err != nil {
			unreachable++
			refusals = append(refusals, strings.TrimPrefix(err.Error(), sshgate.ErrUnreachable.Error()+": "))
			continue
		}
		offer, err := c.Offer(ctx, o.demand(want))
		var method string
		var rates pay.Rates
		var calib *bench.Set
		if err == nil {
			method, rates, calib, _, err = o.accept(offer, c.HostKey)
			r.noteRefusal(c, err)
		}
		if err == nil {
			err = o.checkPrice(offer)
		}
		if err != nil {
			c.Close()
			if errors.Is(err, proto.ErrCapacity) || errors.Is(err, ErrOverMaxPrice) {
				capacity++
			}
			refusals = append(refusals, fmt.Sprintf("provider %s: %v", addr, strings.TrimPrefix(err.Error(), proto.ErrCapacity.Error()+": ")))
			continue
		}
		n := min(offer.Count, want)
		if n < want {
			capacity++
			refusals = append(refusals, fmt.Sprintf("provider %s: offered %d of %d hosts", addr, n, want))
		}
		if n == 0 {
			c.Close()
			continue
		}
		offers = append(offers, offered{addr: addr, c: c, offer: offer, method: method, rates: rates, calib: calib, n: n})
		total += n
	}
	r.progress("")
	if total < o.asked() {
		hangUp()
		msg := fmt.Sprintf("got %d of %d hosts: %s", 0, o.asked(), strings.Join(refusals, "; "))
		if total > 0 {
			msg = fmt.Sprintf("offered %d of %d hosts, so none was rented: %s", total, o.asked(), strings.Join(refusals, "; "))
		}
		timedOut := errors.Is(context.Cause(ctx), context.DeadlineExceeded)
		switch {
		case unreachable == len(o.Providers) && timedOut:
			// A provider that does not answer within --timeout is
			// unreachable, however far its connection got.
			return causeError{msg: fmt.Sprintf("no provider reachable within --timeout %s: %s", o.Timeout, msg), cause: sshgate.ErrUnreachable}
		case timedOut:
			return fmt.Errorf("leasing timed out after %s: %s", o.Timeout, msg)
		case capacity > 0:
			return causeError{msg: "not enough capacity: " + msg, cause: proto.ErrCapacity}
		case unreachable == len(o.Providers):
			return causeError{msg: "no provider reachable: " + msg, cause: sshgate.ErrUnreachable}
		}
		return errors.New(msg)
	}
	// Every host is offered: accept, each provider's hosts taken as soon
	// as it grants them.
	for i, of := range offers {
		line := fmt.Sprintf("leasing %d hosts from %s", of.n, of.addr)
		if len(offers) > 1 {
			line += fmt.Sprintf(" (%d of %d granted so far)", len(r.hosts), o.asked())
		}
		r.progress("%s ...", line)
		var j *proto.ClusterJoin
		if join := r.net.join(r.sess.ID); join != nil {
			j = join(of.n)
		}
		leases, err := of.c.AcceptProgress(ctx, of.n, of.method, j, func(k, n int) {
			r.progress("%s: %d of %d started ...", line, k, n)
		})
		if len(leases) > 0 {
			r.addClient(of.c)
		} else {
			of.c.Close()
		}
		if terr := r.take(of.c, of.offer, of.method, of.rates, of.calib, leases, names[len(r.hosts):]); terr != nil {
			offers = offers[i+1:]
			hangUp()
			return terr
		}
		if err == nil && len(leases) < of.n {
			err = fmt.Errorf("%w: granted %d of the %d hosts it offered", proto.ErrCapacity, len(leases), of.n)
		}
		if err != nil {
			offers = offers[i+1:]
			hangUp()
			r.progress("")
			msg := fmt.Sprintf("got %d of %d hosts: provider %s: %v", len(r.hosts), o.asked(), of.addr, err)
			if errors.Is(err, proto.ErrCapacity) {
				return causeError{msg: "not enough capacity: " + msg, cause: proto.ErrCapacity}
			}
			return errors.New(msg)
		}
	}
	r.progress("")
	return r.ready(ctx)
}

// ErrOverMaxPrice: an offer above the renter's --max-price.
var ErrOverMaxPrice = errors.New("over the maximum price")

// checkPrice refuses an offer above MaxPrice (after any counter-offer),
// as the market's choice does: a flat-rate offer has no price per unit of
// work to compare, and is refused when there is a maximum.
func (c *Config) checkPrice(offer proto.Offer) error {
	if c.MaxPrice <= 0 {
		return nil
	}
	p := offer.Payment.PricePerWorkMsat
	if p == 0 {
		return fmt.Errorf("%w: it sells at flat rates, with no price per unit of work to compare with --max-price %s", ErrOverMaxPrice, num(c.MaxPrice))
	}
	if p > c.MaxPrice {
		why := fmt.Sprintf("price %s msat per unit of work > --max-price %s", num(p), num(c.MaxPrice))
		if l := offer.Payment.ListPricePerWorkMsat; l > p {
			why += fmt.Sprintf(" (its least: it came down from %s on a counter-offer of %s)", num(l), num(c.bid()))
		}
		return fmt.Errorf("%w: %s", ErrOverMaxPrice, why)
	}
	return nil
}

// num prints a price as the market's explanations do.
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// spentNote says what the hosts of a failed rent cost: those granted
// before it failed were released, and paid for what they used (and any
// prepayment) as every host is. "" when no host was granted.
func spentNote(rs []Receipt) string {
	if len(rs) == 0 {
		return ""
	}
	type spent struct {
		hosts        int
		billed, paid uint64
	}
	by := map[string]*spent{}
	var order []string
	var all spent
	for _, rc := range rs {
		s := by[rc.Provider]
		if s == nil {
			s = &spent{}
			by[rc.Provider] = s
			order = append(order, rc.Provider)
		}
		st := rc.Receipt.Status
		s.hosts++
		s.billed += st.Billed
		s.paid += st.Paid
		all.hosts++
		all.billed += st.Billed
		all.paid += st.Paid
	}
	parts := make([]string, 0, len(order))
	for _, p := range order {
		s := by[p]
		parts = append(parts, fmt.Sprintf("provider %s: %s, %s msat paid of %s billed", p, plural(s.hosts, "host"), pay.FormatMsat(s.paid), pay.FormatMsat(s.billed)))
	}
	return fmt.Sprintf("released the %s granted before it failed, which cost %s msat paid (%s billed): %s; receipts: zennet ledger",
		plural(all.hosts, "host"), pay.FormatMsat(all.paid), pay.FormatMsat(all.billed), strings.Join(parts, "; "))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// causeError is a message of its own that still matches its cause with
// errors.Is, for the exit code.
type causeError struct {
	msg   string
	cause error
}

func (e causeError) Error() string { return e.msg }
func (e causeError) Unwrap() error { return e.cause }

// prepaidStart bounds the wait for prepaid hosts to start: a payment and
// its credit, a Lightning one included.
const prepaidStart = 30 * time.Second

// ready waits for prepaid hosts to start, writes the session's files, and
// probes the hosts and keeps the best (Probe). Spot checks run in Hold.
func (r *Rental) ready(ctx context.Context) error {
	if err := r.book.awaitPrepaid(ctx, prepaidStart); err != nil {
		return err
	}
	var err error
	if r.files, err = r.sess.Write(r.hosts, r.cfg.KeyPath); err != nil {
		return err
	}
	if r.cfg.Probe > 0 {
		if err := r.probe(ctx, r.cfg.Count); err != nil {
			return err
		}
	}
	if err := r.syncCluster(ctx); err != nil {
		return err
	}
	return r.sess.MarkReady()
}

// rentFromMarket rents Count hosts (at least Min) from the market's
// providers, learned from Seeds and the providers file.
func (r *Rental) rentFromMarket(ctx context.Context, names []string) error {
	o := r.cfg
	dir, notes, serr := KnownProviders(ctx, o.ConfigDir, o.Seeds, o.Signer, o.PowBits)
	for _, n := range notes {
		r.notice("%s", n)
	}
	if dir.Len() == 0 && serr != nil {
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			return causeError{msg: fmt.Sprintf("no provider reachable within --timeout %s: %v", o.Timeout, serr), cause: serr}
		}
		return causeError{msg: fmt.Sprintf("no provider reachable: %v", serr), cause: serr}
	}
	if dir.Len() == 0 {
		return ErrNoProvider
	}
	r.market = dir
	want := cmp.Or(o.Min, o.Count)
	summary, err := r.rentMarket(ctx, dir, names, nil, want)
	got := len(r.hosts)
	if got < want || got == 0 {
		msg := "the market gave too few hosts: " + summary
		if err != nil {
			msg += " (" + err.Error() + ")"
		}
		if o.Min == 0 && got > 0 {
			msg += fmt.Sprintf("; pass --min %d to take them", got)
		}
		return causeError{msg: msg, cause: proto.ErrCapacity}
	}
	if got < o.Count {
		r.notice("taking what the market gave (--min %d): %s", o.Min, summary)
		r.sess.ReserveNames(got) // free the names not used
	}
	return r.ready(ctx)
}

// addClient keeps a provider the rental holds leases of, and handles its
// events.
func (r *Rental) addClient(c *sshgate.Client) {
	r.clients = append(r.clients, c)
	go r.book.events(r.bookCtx, c, r.ended)
}

// take adds leases granted by c to the rental under names (one each, in
// order): a local port each, an account each.
func (r *Rental) take(c *sshgate.Client, offer proto.Offer, method string, rates pay.Rates, calib *bench.Set, leases []proto.Lease, names []string) error {
	if calib != nil && len(leases) > 0 {
		r.calibrations[c] = calib
		if r.cfg.SpotCheck && r.spots[c] == nil {
			r.spots[c] = &spotState{set: calib, rates: rates}
		}
	}
	if len(leases) > 0 {
		r.note(c, market.Leased(uint64(len(leases))))
	}
	if p := offer.Payment.PrepayMsat; p > 0 && len(leases) > 0 {
		r.notice("provider %s does not know this key yet: it asks each host's first interval up front, %d msat a host (the price of an interval at the host's limits)", c.Addr, p)
	}
	for i, le := range leases {
		r.leases[c] = append(r.leases[c], le.ID)
		r.all[c] = append(r.all[c], le.ID)
		r.rates[le.ID] = rates
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("open local port: %w", err)
		}
		r.listeners[le.ID] = l
		go c.Forward(r.bookCtx, l, le.ID, r.report)
		h := session.Host{
			Name: names[i], LocalPort: l.Addr().(*net.TCPAddr).Port, Provider: c.Addr,
			LeaseID: le.ID, Limits: le.Limits, HostKey: le.HostKey, PricePerWorkMsat: offer.Payment.PricePerWorkMsat,
			ClusterAddr: le.ClusterAddr,
		}
		r.hosts = append(r.hosts, h)
		if err := r.book.add(r.bookCtx, h, le, c, offer, method, rates); err != nil {
			return fmt.Errorf("open the account of %s: %w", h.Name, err)
		}
	}
	return nil
}

// Release ends every lease, waiting up to timeout for the providers to
// confirm and for the final bills to be paid, closes the accounts (their
// receipts are then in Receipts) and removes the session's files.
func (r *Rental) Release(ctx context.Context, timeout time.Duration) error {
	for _, l := range r.listeners {
		l.Close()
	}
	r.net.closeRelays()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(r.clients))
	for i, c := range r.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.Err() == nil {
				errs[i] = c.Release(ctx, r.leases[c])
				if errs[i] == nil {
					for range r.leases[c] {
						r.note(c, market.Completed())
					}
				}
				r.settle(ctx, c)
			}
			c.Close()
		}()
	}
	wg.Wait()
	if r.book != nil {
		r.receipts = r.book.close(r.stopBook)
	} else if r.stopBook != nil {
		r.stopBook()
	}
	if r.ledger != nil {
		if err := r.ledger.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.lnd != nil {
		r.lnd.Close()
	}
	r.dialMu.Lock()
	if r.dialer != nil {
		r.dialer.Close()
	}
	r.dialMu.Unlock()
	if r.sess != nil {
		r.sess.Close()
	}
	return errors.Join(errs...)
}

// settle waits, for a while, until the final bills of c's leases are
// paid and acknowledged.
func (r *Rental) settle(ctx context.Context, c *sshgate.Client) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !r.book.settled(r.all[c]) {
		select {
		case <-ctx.Done():
			return
		case <-c.Done():
			return
		case <-t.C:
		}
	}
}

// Hold keeps the hosts until ctx ends or none is left: it checks that
// reports keep coming, writes the usage file, drops hosts the usage book
// refuses, replaces hosts lost through a provider's fault (from the
// market), and says all of it as events. It returns nil when ctx ends.
func (r *Rental) Hold(ctx context.Context) error {
	gone := make(chan *sshgate.Client, len(r.clients))
	watch := func(c *sshgate.Client) {
		go func() {
			select {
			case <-c.Done():
				gone <- c
			case <-ctx.Done():
			}
		}()
	}
	for _, c := range r.clients {
		watch(c)
	}
	live := len(r.clients)
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	// The session's membership goes out on a goroutine of its own (a
	// provider may take up to 30 s to answer), the latest one first; what
	// came of it comes back here to be said.
	syncs := make(chan *syncJob, 1)
	synced := make(chan syncResult, 1)
	syncing := false
	sctx, stopSync := context.WithCancel(ctx)
	var syncWG sync.WaitGroup
	syncWG.Go(func() {
		for {
			select {
			case j := <-syncs:
				res := r.deliver(sctx, j)
				select {
				case synced <- res:
				case <-sctx.Done():
					return
				}
			case <-sctx.Done():
				return
			}
		}
	})
	defer syncWG.Wait()
	defer stopSync()
	// Spot checks run one at a time on a goroutine of their own; what they
	// found comes back here to be acted on.
	spotDone := make(chan spotDone, 1)
	spotting := false
	startSpot := func(now time.Time) {
		if spotting {
			return
		}
		if job, ok := r.nextSpot(now); ok {
			spotting = true
			syncWG.Go(func() {
				d := r.runSpot(sctx, job)
				select {
				case spotDone <- d:
				case <-sctx.Done():
				}
			})
		}
	}
	startSpot(time.Now())
	resync := func() {
		j, err := r.prepareSync()
		if err != nil {
			r.notice("cluster network: %v", err)
		}
		if j == nil {
			return
		}
		select {
		case <-syncs: // a membership not sent yet: this one replaces it
		default:
		}
		syncs <- j
		syncing = true
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case res := <-synced:
			syncing = false
			if res.err != nil {
				r.notice("cluster network: %v", res.err)
			} else if res.changed {
				r.emit(res.up)
			}
		case d := <-spotDone:
			spotting = false
			if ctx.Err() != nil {
				return nil
			}
			names, err := r.spotResult(d)
			if err != nil {
				r.notice("spot check: %v", err)
			}
			if len(names) > 0 {
				before := len(r.clients)
				r.replace(ctx, names)
				live += len(r.clients) - before
				for _, nc := range r.clients[before:] {
					watch(nc)
				}
				if len(r.hosts) == 0 {
					return errors.New("every host was dropped; none left")
				}
				resync()
			}
			startSpot(time.Now())
		case now := <-flush.C:
			startSpot(now)
			if !syncing && r.clusterDue(now) {
				resync()
			}
			r.book.silent(now)
			if err := r.book.flush(); err != nil {
				r.notice("write usage: %v", err)
			}
		case n := <-r.book.notices:
			r.notice("%s", n)
		case e := <-r.errs:
			r.notice("%v", e)
		case d := <-r.book.drops:
			if !slices.Contains(r.leases[d.c], d.id) {
				// Released already (a probe's drop, a replaced host): its
				// account stops, and the user is told why.
				r.emit(Dropped{Lease: d.id, Provider: d.c.Addr, Reason: d.reason, Released: true})
				continue
			}
			name := r.drop(d.c, d.id)
			r.note(d.c, market.Dropped(d.reason))
			r.emit(Dropped{Host: name, Lease: d.id, Provider: d.c.Addr, Reason: d.reason})
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				if err := d.c.Release(rctx, []string{d.id}); err != nil {
					r.report(fmt.Errorf("release dropped lease %s: %w", d.id, err))
				}
			}()
			r.excluded[fingerprint(d.c)] = true
			r.replace(ctx, []string{name})
			if len(r.hosts) == 0 {
				return errors.New("every host was dropped; none left")
			}
			resync()
		case el := <-r.ended:
			if !slices.Contains(r.leases[el.c], el.e.ID) {
				continue
			}
			name := r.drop(el.c, el.e.ID)
			fault := providersFault(el.e)
			if fault {
				r.note(el.c, market.Dropped(el.e.Reason))
			}
			r.emit(Ended{Host: name, Lease: el.e.ID, Provider: el.c.Addr, Reason: el.e.Reason, Cause: el.e.Cause, ProvidersFault: fault})
			if fault {
				r.excluded[fingerprint(el.c)] = true
				r.replace(ctx, []string{name})
			}
			if len(r.hosts) == 0 {
				return errors.New("every host has ended; none left")
			}
			resync()
		case c := <-gone:
			live--
			r.emit(ProviderLost{Err: c.Err(), Hosts: len(r.leases[c])})
			var lost []string
			for _, id := range slices.Clone(r.leases[c]) {
				lost = append(lost, r.drop(c, id))
				r.note(c, market.Dropped("provider gone"))
			}
			r.excluded[fingerprint(c)] = true
			before := len(r.clients)
			r.replace(ctx, lost)
			live += len(r.clients) - before
			for _, nc := range r.clients[before:] {
				watch(nc)
			}
			if live == 0 {
				return errors.New("every provider is gone; no hosts left")
			}
			resync()
		}
	}
}

// providersFault tells, from its cause alone, whether a lease the provider
// ended counts against it: not when the renter's host overran its memory
// or went unpaid, nor when the renter ended it. Any other cause counts,
// and so does one this renter cannot place (none, from a provider built
// before causes, or one added since).
func providersFault(e proto.Ended) bool {
	switch e.Cause {
	case proto.EndMemoryExceeded, proto.EndUnpaid, proto.EndReleased, proto.EndRenterGone:
		return false
	}
	return true
}

// forget removes lease id of c from the rental: its port closes and its
// host leaves the list. It returns the host's name.
func (r *Rental) forget(c *sshgate.Client, id string) string {
	if l, ok := r.listeners[id]; ok {
		l.Close()
		delete(r.listeners, id)
	}
	r.leases[c] = slices.DeleteFunc(r.leases[c], func(x string) bool { return x == id })
	name := id
	r.hosts = slices.DeleteFunc(r.hosts, func(h session.Host) bool {
		if h.LeaseID == id {
			name = h.Name
			return true
		}
		return false
	})
	return name
}

// drop forgets a host whose lease ended and rewrites the session's files
// without it. It returns the host's name.
func (r *Rental) drop(c *sshgate.Client, id string) string {
	name := r.forget(c, id)
	if _, err := r.sess.Write(r.hosts, r.cfg.KeyPath); err != nil {
		r.report(fmt.Errorf("rewrite session files: %w", err))
	}
	return name
}
