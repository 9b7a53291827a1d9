package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/session"
	"github.com/zennet/zennet/sshgate"
)

type rentOptions struct {
	IO        IOStreams
	G         *globalOptions
	Count     int
	Memory    string
	CPUs      float64
	Providers []string
	Identity  string
	Disk      string
	Interval  time.Duration
	JSON      bool
	Timeout   time.Duration
	Pay       []string
	LND       lndFlags
	SpotCheck bool
	// The market: where to learn providers, and the rules of choice.
	Seeds    []string
	Explain  bool
	Min      int
	MaxPrice float64
	Bid      float64
	// Probe rents this many hosts more, probes them all and keeps the
	// best Count.
	Probe         int
	MinScore      float64
	MinReputation float64
	PowBits       uint

	memoryBytes int64
	diskBytes   int64
}

func newCmdRent(io IOStreams, g *globalOptions) *cobra.Command {
	o := &rentOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "zennet -n N -m MEM --provider HOST:PORT",
		Short: "Rent N passwordless SSH hosts in gVisor sandboxes",
		Long: `zennet rents N hosts, each a gVisor sandbox on a provider's machine, and
forwards a local port to each. It writes an ssh_config, an MPI hostfile and a
GNU parallel --sshloginfile, prints the hosts, and holds the leases until you
press Ctrl-C (or run 'zennet release'), which ends them all.`,
		Example: `  zennet -n 3 -m 512M --provider 127.0.0.1:2222
  ssh -F ~/.config/zennet/ssh_config zennet-1
  zennet -n 2 -m 1G --provider a.example:2222 --json
  zennet -n 100 -m 512M --seed a.example:2222 --max-price 150 --explain`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("count") && !cmd.Flags().Changed("memory") && len(o.Providers) == 0 {
				return cmd.Help()
			}
			if err := o.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runRent(ctx, o)
		},
	}
	registerRentFlags(cmd.Flags(), o)
	cmd.Flags().IntVar(&o.Min, "min", 0, "accept as few as this many hosts when the market cannot give -n (default: all -n or nothing)")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate checks the options and fills the derived fields.
func (o *rentOptions) Validate() error {
	if o.Count < 1 || o.Count > proto.MaxHostsPerDemand {
		return usagef("-n %d: the number of hosts must be between 1 and %d", o.Count, proto.MaxHostsPerDemand)
	}
	m, err := ParseSize(o.Memory)
	if err != nil {
		return usagef("-m: %v", err)
	}
	if m < proto.MinMemory {
		return usagef("-m %s: a host needs at least 64M of memory", o.Memory)
	}
	o.memoryBytes = m
	if o.Disk != "" {
		d, err := ParseSize(o.Disk)
		if err != nil {
			return usagef("--disk: %v", err)
		}
		if d < proto.MinDisk {
			return usagef("--disk %s: a host needs at least 64M of disk", o.Disk)
		}
		o.diskBytes = d
	}
	if !(o.CPUs > 0 && o.CPUs <= 4096) {
		return usagef("--cpus %v: must be more than 0 (e.g. 0.5 or 2)", o.CPUs)
	}
	for _, p := range o.Seeds {
		if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			return usagef("--seed %q is not HOST:PORT", p)
		}
	}
	if o.Probe < 0 || o.Probe > proto.MaxHostsPerDemand-o.Count {
		return usagef("--probe %d: must be between 0 and %d (-n plus --probe hosts are rented)", o.Probe, proto.MaxHostsPerDemand-o.Count)
	}
	if o.Min < 0 || o.Min > o.Count {
		return usagef("--min %d: must be between 1 and -n %d", o.Min, o.Count)
	}
	if !(o.MaxPrice >= 0) || !(o.MinScore >= 0) || !(o.MinReputation >= 0 && o.MinReputation <= 1) {
		return usagef("--max-price and --min-score must not be negative, --min-reputation is between 0 and 1")
	}
	if !(o.Bid >= 0 && o.Bid <= proto.MaxPricePerWork) || (o.MaxPrice > 0 && o.Bid > o.MaxPrice) {
		return usagef("--bid %v: must be between 0 and --max-price (a bid above what you would pay is no counter-offer)", o.Bid)
	}
	for _, p := range o.Providers {
		if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			return usagef("--provider %q is not HOST:PORT", p)
		}
	}
	if o.Timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if o.Interval < proto.MinInterval*time.Second || o.Interval > proto.MaxInterval*time.Second || o.Interval%time.Second != 0 {
		return usagef("--interval %s: must be whole seconds from %ds to %ds", o.Interval, proto.MinInterval, proto.MaxInterval)
	}
	for _, m := range o.Pay {
		if !slices.Contains(pay.Methods, m) {
			return usagef("--pay %q: the payment methods are %s", m, strings.Join(pay.Methods, ", "))
		}
	}
	if len(o.Pay) == 0 {
		return usagef("--pay: name at least one payment method (%s)", strings.Join(pay.Methods, ", "))
	}
	return nil
}

// bid is the renter's counter-offer to providers that ask more per unit of
// work: --bid, else --max-price (0: none).
func (o *rentOptions) bid() float64 { return cmp.Or(o.Bid, o.MaxPrice) }

// rental is a set of leased hosts with their forwarders and files.
type rental struct {
	sess      *session.Session
	files     session.Files
	hosts     []session.Host
	clients   []*sshgate.Client
	leases    map[*sshgate.Client][]string
	listeners map[string]net.Listener // by lease id
	// calibrations are the providers' offered calibration sets.
	calibrations map[*sshgate.Client]*bench.Set
	// all is every lease granted through a client, ended ones included:
	// their final bills are paid before release returns.
	all      map[*sshgate.Client][]string
	keyPath  string
	errs     chan error
	book     *usageBook
	bookCtx  context.Context
	stopBook context.CancelFunc
	signer   gossh.Signer
	hostKeys gossh.HostKeyCallback
	ended    chan endedLease
	ledger   *pay.Ledger
	lnd      *pay.LND
	receipts []hostReceipt
	// market is the directory hosts came from (nil with --provider): lost
	// hosts are replaced from it.
	market *market.Directory
	opts   *rentOptions
	// excluded are providers (fingerprints) that lost hosts: replacements
	// come from others.
	excluded map[string]bool
}

// endedLease is a lease its provider ended.
type endedLease struct {
	c *sshgate.Client
	e proto.Ended
}

func (o *rentOptions) identity() (gossh.Signer, string, error) {
	path := o.Identity
	if path == "" {
		home, _ := os.UserHomeDir()
		path = filepath.Join(home, ".ssh", "id_ed25519")
		if _, err := os.Stat(path); err != nil {
			path = filepath.Join(o.G.ConfigDir, "id_ed25519")
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, "", usagef("--identity %s: %v", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	s, err := loadOrCreateKey(abs, "zennet renter")
	return s, abs, err
}

// providerHostKeys trusts a provider's host key the first time it is seen
// and pins it in the config dir's known_providers from then on.
func providerHostKeys(configDir string) (gossh.HostKeyCallback, error) {
	path := filepath.Join(configDir, "known_providers")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	var mu sync.Mutex
	return func(hostname string, remote net.Addr, key gossh.PublicKey) error {
		mu.Lock()
		defer mu.Unlock()
		cb, err := knownhosts.New(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		err = cb(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = fmt.Fprintln(f, line)
			return err
		}
		if errors.As(err, &ke) {
			return fmt.Errorf("provider %s presented a different host key than before (%s); if it was re-installed, remove its line from %s", hostname, gossh.FingerprintSHA256(key), path)
		}
		return err
	}, nil
}

func progress(o *rentOptions, format string, a ...any) {
	if isTerminal(o.IO.ErrOut) && !o.JSON {
		fmt.Fprintf(o.IO.ErrOut, "\r\033[K"+format, a...)
	}
}

// asked is how many hosts are rented: -n, plus --probe to drop.
func (o *rentOptions) asked() int { return o.Count + o.Probe }

// rent leases o.Count hosts (o.asked() with --probe) from the providers in
// order, all or nothing.
func rent(ctx context.Context, o *rentOptions) (r *rental, err error) {
	signer, keyPath, err := o.identity()
	if err != nil {
		return nil, err
	}
	hostKeys, err := providerHostKeys(o.G.ConfigDir)
	if err != nil {
		return nil, err
	}
	var lnd *pay.LND
	if slices.Contains(o.Pay, pay.MethodLightning) {
		if lnd, err = o.LND.dial(ctx); err != nil {
			return nil, err
		}
	}
	sess, err := session.Open(o.G.ConfigDir)
	if err != nil {
		if lnd != nil {
			lnd.Close()
		}
		return nil, err
	}
	r = &rental{sess: sess, leases: map[*sshgate.Client][]string{}, all: map[*sshgate.Client][]string{}, calibrations: map[*sshgate.Client]*bench.Set{}, excluded: map[string]bool{},
		listeners: map[string]net.Listener{}, keyPath: keyPath, errs: make(chan error, 16), ended: make(chan endedLease, 64), lnd: lnd}
	r.bookCtx, r.stopBook = context.WithCancel(context.WithoutCancel(ctx))
	r.signer, r.hostKeys, r.opts = signer, hostKeys, o
	defer func() {
		if err != nil {
			r.release(context.WithoutCancel(ctx), 30*time.Second)
			r = nil
		}
	}()
	if r.ledger, err = openRenterLedger(o.G.ConfigDir, sess.ID); err != nil {
		return r, err
	}
	r.book = newUsageBook(sess, r.ledger, signer, lnd)
	for _, n := range settleOldLedgers(ctx, o.G.ConfigDir, signer, lnd, sess.ID) {
		fmt.Fprintf(o.IO.ErrOut, "zennet: %s\n", n)
	}
	names, err := sess.ReserveNames(o.asked())
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	demand := proto.Limits{MemoryBytes: o.memoryBytes, CPUs: o.CPUs, DiskBytes: o.diskBytes}
	var refusals []string
	var unreachable, capacity int
	if len(o.Providers) == 0 {
		return r, r.rentFromMarket(ctx, o, names)
	}
	for _, addr := range o.Providers {
		want := o.asked() - len(r.hosts)
		if want == 0 {
			break
		}
		progress(o, "leasing %d hosts from %s ...", want, addr)
		c, err := sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: signer, HostKeyCallback: hostKeys})
		if err != nil {
			unreachable++
			refusals = append(refusals, strings.TrimPrefix(err.Error(), sshgate.ErrUnreachable.Error()+": "))
			continue
		}
		var method string
		var rates pay.Rates
		var calib *bench.Set
		offer, leases, err := c.Rent(ctx, proto.Demand{Count: want, Limits: demand, IntervalSeconds: int(o.Interval / time.Second), Methods: o.Pay,
			BidPerWorkMsat: o.bid()},
			func(offer proto.Offer) (string, error) {
				method, rates, calib, err = acceptTerms(o.Pay, offer)
				return method, err
			})
		if len(leases) > 0 || err == nil {
			r.addClient(c)
		} else {
			c.Close()
		}
		if terr := r.take(c, offer, method, rates, calib, leases, names[len(r.hosts):]); terr != nil {
			return r, terr
		}
		if err != nil {
			if errors.Is(err, proto.ErrCapacity) {
				capacity++
			}
			refusals = append(refusals, fmt.Sprintf("provider %s: %v", addr, strings.TrimPrefix(err.Error(), proto.ErrCapacity.Error()+": ")))
		}
	}
	progress(o, "")
	if len(r.hosts) < o.asked() {
		msg := fmt.Sprintf("got %d of %d hosts: %s", len(r.hosts), o.asked(), strings.Join(refusals, "; "))
		switch {
		case errors.Is(context.Cause(ctx), context.DeadlineExceeded):
			return r, fmt.Errorf("leasing timed out after %s: %s", o.Timeout, msg)
		case capacity > 0:
			return r, causeError{msg: "not enough capacity: " + msg, cause: proto.ErrCapacity}
		case unreachable == len(o.Providers):
			return r, causeError{msg: "no provider reachable: " + msg, cause: sshgate.ErrUnreachable}
		}
		return r, errors.New(msg)
	}
	return r, r.ready(ctx, o)
}

// ready writes the session's files, probes the hosts and keeps the best
// (--probe), and spot-checks the providers.
func (r *rental) ready(ctx context.Context, o *rentOptions) error {
	var err error
	if r.files, err = r.sess.Write(r.hosts, r.keyPath); err != nil {
		return err
	}
	if o.Probe > 0 {
		if err := r.probe(ctx, o, o.Count); err != nil {
			return err
		}
	}
	if o.SpotCheck {
		return r.spotCheck(ctx, o)
	}
	return nil
}

// rentFromMarket rents -n hosts (at least --min) from the market's
// providers, learned from --seed and the providers file.
func (r *rental) rentFromMarket(ctx context.Context, o *rentOptions, names []string) error {
	dir, notes := knownProviders(ctx, o.G.ConfigDir, o.Seeds, r.signer, o.PowBits)
	for _, n := range notes {
		fmt.Fprintf(o.IO.ErrOut, "zennet: %s\n", n)
	}
	if dir.Len() == 0 {
		return usagef("no provider known: pass --seed HOST:PORT (any provider of the market) or --provider HOST:PORT (or try 'zennet demo')")
	}
	r.market = dir
	summary, err := r.rentMarket(ctx, o, dir, names, nil)
	got := len(r.hosts)
	want := o.Count
	if o.Min > 0 {
		want = o.Min
	}
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
		fmt.Fprintf(o.IO.ErrOut, "zennet: taking what the market gave (--min %d): %s\n", o.Min, summary)
		r.sess.ReserveNames(got) // free the names not used
	}
	return r.ready(ctx, o)
}

// addClient keeps a provider the rental holds leases of, and handles its
// events.
func (r *rental) addClient(c *sshgate.Client) {
	r.clients = append(r.clients, c)
	go r.book.events(r.bookCtx, c, r.ended)
}

// take adds leases granted by c to the rental under names (one each, in
// order): a local port each, an account each.
func (r *rental) take(c *sshgate.Client, offer proto.Offer, method string, rates pay.Rates, calib *bench.Set, leases []proto.Lease, names []string) error {
	if calib != nil && len(leases) > 0 {
		r.calibrations[c] = calib
	}
	if len(leases) > 0 && r.opts != nil {
		r.note(r.opts, c, market.Leased(uint64(len(leases))))
	}
	for i, le := range leases {
		r.leases[c] = append(r.leases[c], le.ID)
		r.all[c] = append(r.all[c], le.ID)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("open local port: %w", err)
		}
		r.listeners[le.ID] = l
		go c.Forward(l, le.ID, func(e error) {
			select {
			case r.errs <- e:
			default:
			}
		})
		h := session.Host{
			Name: names[i], LocalPort: l.Addr().(*net.TCPAddr).Port, Provider: c.Addr,
			LeaseID: le.ID, Limits: le.Limits, HostKey: le.HostKey, PricePerWorkMsat: offer.Payment.PricePerWorkMsat,
		}
		r.hosts = append(r.hosts, h)
		if err := r.book.add(r.bookCtx, h, le, c, offer, method, rates); err != nil {
			return fmt.Errorf("open the account of %s: %w", h.Name, err)
		}
	}
	return nil
}

// release ends every lease, waiting up to timeout for the providers to
// confirm, and removes the session's files.
func (r *rental) release(ctx context.Context, timeout time.Duration) error {
	for _, l := range r.listeners {
		l.Close()
	}
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
				if errs[i] == nil && r.opts != nil {
					for range r.leases[c] {
						r.note(r.opts, c, market.Completed())
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
	if r.sess != nil {
		r.sess.Close()
	}
	return errors.Join(errs...)
}

// settle waits, for a while, until the final bills of c's leases are
// paid and acknowledged.
func (r *rental) settle(ctx context.Context, c *sshgate.Client) {
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

type hostsDoc struct {
	Session string        `json:"session"`
	Hosts   []hostJSON    `json:"hosts"`
	Files   session.Files `json:"files"`
}

type hostJSON struct {
	Name        string  `json:"name"`
	LocalPort   int     `json:"local_port"`
	Provider    string  `json:"provider"`
	LeaseID     string  `json:"lease_id"`
	MemoryBytes int64   `json:"memory_bytes"`
	CPUs        float64 `json:"cpus"`
	DiskBytes   int64   `json:"disk_bytes"`
	HostKey     string  `json:"host_key"`
	// PricePerWorkMsat is the agreed price per reference CPU-second of work
	// (0: flat rates).
	PricePerWorkMsat float64 `json:"price_per_work_msat,omitempty"`
}

func (r *rental) print(o *rentOptions) error {
	if o.JSON {
		doc := hostsDoc{Session: r.sess.ID, Files: r.files}
		for _, h := range r.hosts {
			doc.Hosts = append(doc.Hosts, hostJSON{h.Name, h.LocalPort, h.Provider, h.LeaseID, h.Limits.MemoryBytes, h.Limits.CPUs, h.Limits.DiskBytes, h.HostKey, h.PricePerWorkMsat})
		}
		return writeJSON(o.IO.Out, "hosts", doc)
	}
	rows := make([][]string, 0, len(r.hosts))
	for _, h := range r.hosts {
		rows = append(rows, []string{h.Name, strconv.Itoa(h.LocalPort), h.Provider, strconv.FormatFloat(h.Limits.CPUs, 'f', -1, 64),
			FormatSize(h.Limits.MemoryBytes), FormatSize(h.Limits.DiskBytes), h.LeaseID})
	}
	table(o.IO.Out, []string{"HOST", "LOCAL PORT", "PROVIDER", "CPU", "MEM", "DISK", "LEASE"}, rows)
	if isTerminal(o.IO.Out) {
		fmt.Fprintf(o.IO.Out, "\nssh -F %s %s      # or: ssh -p %d root@localhost\n", r.files.SSHConfig, r.hosts[0].Name, r.hosts[0].LocalPort)
		fmt.Fprintf(o.IO.Out, "MPI hostfile: %s   GNU parallel: --sshloginfile %s\n", r.files.MPIHostfile, r.files.SSHLoginFile)
		fmt.Fprintf(o.IO.Out, "Holding %d hosts; Ctrl-C or 'zennet release' ends the leases.\n", len(r.hosts))
	}
	return nil
}

// hold waits until ctx ends or every provider is gone, reporting lost
// providers, dropped hosts and forwarding errors on stderr.
func (r *rental) hold(ctx context.Context, o *rentOptions) error {
	gone := make(chan *sshgate.Client, len(r.clients))
	for _, c := range r.clients {
		go func() {
			select {
			case <-c.Done():
				gone <- c
			case <-ctx.Done():
			}
		}()
	}
	live := len(r.clients)
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-flush.C:
			r.book.silent(now)
			if err := r.book.flush(); err != nil {
				fmt.Fprintf(o.IO.ErrOut, "zennet: write usage: %v\n", err)
			}
		case n := <-r.book.notices:
			fmt.Fprintf(o.IO.ErrOut, "zennet: %s\n", n)
		case e := <-r.errs:
			fmt.Fprintf(o.IO.ErrOut, "zennet: %v\n", e)
		case d := <-r.book.drops:
			if !slices.Contains(r.leases[d.c], d.id) {
				// Released already (a probe's drop, a replaced host): its
				// account stops, and the user is told why.
				fmt.Fprintf(o.IO.ErrOut, "zennet: stopped paying released lease %s (provider %s): %s\n", d.id, d.c.Addr, d.reason)
				continue
			}
			name := r.drop(d.c, d.id)
			r.note(o, d.c, market.Dropped(d.reason))
			fmt.Fprintf(o.IO.ErrOut, "zennet: dropped %s (lease %s, provider %s): %s; stopped paying it\n", name, d.id, d.c.Addr, d.reason)
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				if err := d.c.Release(rctx, []string{d.id}); err != nil {
					select {
					case r.errs <- fmt.Errorf("release dropped lease %s: %w", d.id, err):
					default:
					}
				}
			}()
			r.excluded[fingerprint(d.c)] = true
			r.replace(ctx, o, []string{name})
			if len(r.hosts) == 0 {
				return errors.New("every host was dropped; none left")
			}
		case el := <-r.ended:
			if !slices.Contains(r.leases[el.c], el.e.ID) {
				continue
			}
			name := r.drop(el.c, el.e.ID)
			if providersFault(el.e.Reason) {
				r.note(o, el.c, market.Dropped(el.e.Reason))
			}
			fmt.Fprintf(o.IO.ErrOut, "zennet: %s (lease %s) ended by provider %s: %s\n", name, el.e.ID, el.c.Addr, el.e.Reason)
			if providersFault(el.e.Reason) {
				r.excluded[fingerprint(el.c)] = true
				r.replace(ctx, o, []string{name})
			}
			if len(r.hosts) == 0 {
				return errors.New("every host has ended; none left")
			}
		case c := <-gone:
			live--
			fmt.Fprintf(o.IO.ErrOut, "zennet: %v; %s lost\n", c.Err(), plural(len(r.leases[c]), "host"))
			var lost []string
			for _, id := range slices.Clone(r.leases[c]) {
				lost = append(lost, r.drop(c, id))
				r.note(o, c, market.Dropped("provider gone"))
			}
			r.excluded[fingerprint(c)] = true
			before := len(r.clients)
			r.replace(ctx, o, lost)
			live += len(r.clients) - before
			for _, nc := range r.clients[before:] {
				go func() {
					select {
					case <-nc.Done():
						gone <- nc
					case <-ctx.Done():
					}
				}()
			}
			if live == 0 {
				return errors.New("every provider is gone; no hosts left")
			}
		}
	}
}

// providersFault tells whether a lease the provider ended counts against
// it: not when the renter's host overran its memory or went unpaid.
func providersFault(reason string) bool {
	return !strings.HasPrefix(reason, "memory limit exceeded") && !strings.HasPrefix(reason, sshgate.UnpaidReasonPrefix)
}

// forget removes lease id of c from the rental: its port closes and its
// host leaves the list. It returns the host's name.
func (r *rental) forget(c *sshgate.Client, id string) string {
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
func (r *rental) drop(c *sshgate.Client, id string) string {
	name := r.forget(c, id)
	if _, err := r.sess.Write(r.hosts, r.keyPath); err != nil {
		select {
		case r.errs <- fmt.Errorf("rewrite session files: %w", err):
		default:
		}
	}
	return name
}

func runRent(ctx context.Context, o *rentOptions) error {
	r, err := rent(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	if err := r.print(o); err != nil {
		r.release(context.WithoutCancel(ctx), 30*time.Second)
		return err
	}
	herr := r.hold(ctx, o)
	n := len(r.hosts)
	rerr := r.release(context.WithoutCancel(ctx), 30*time.Second)
	if rerr != nil {
		fmt.Fprintf(o.IO.ErrOut, "zennet: release: %v\n", rerr)
	} else if !o.JSON {
		fmt.Fprintf(o.IO.ErrOut, "zennet: released %s\n", plural(n, "host"))
	}
	if perr := printReceipts(o, r.receipts); perr != nil {
		rerr = errors.Join(rerr, perr)
	}
	return errors.Join(herr, rerr)
}
