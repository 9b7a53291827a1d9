// Package provider is the provider role: it sells this machine's capacity
// as gVisor-sandboxed SSH hosts. New takes the data dir; Run builds what the
// sandboxes need (root filesystem, calibration), wires the lease manager,
// billing, the market node and the SSH gateway, serves until its context ends
// or Shutdown, then ends every lease. A running Provider is also what its
// operator controls (Status, Pause, Resume, End, Drain: the control
// socket's and the dashboard's backend), and with an idle policy it lends
// the machine only while its owner leaves it alone.
//
// provider never writes to stdout or stderr: it logs to Config.Log and
// tells its caller what happens through Config.Events.
package provider

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/billing"
	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/idle"
	"github.com/zennet/zennet/internal/sshkey"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/netsandbox"
	"github.com/zennet/zennet/p2p"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
	"github.com/zennet/zennet/sshgate"
	"github.com/zennet/zennet/terms"
)

// Config is what a provider sells and how.
type Config struct {
	// Listen is the SSH gateway's address, HOST:PORT.
	Listen string
	// DataDir holds the provider's state: host key, leases, sandboxes,
	// ledger, lock and info file. One provider at a time per data dir.
	DataDir string
	// CacheDir is zennet's cache: the pinned runsc (CacheDir/bin/runsc)
	// and this machine's calibrations (CacheDir/calibration).
	CacheDir string
	// Runsc is the runsc binary; "" means sandbox.FindRunsc's choice.
	Runsc string
	// Image is the sandboxes' root filesystem, built once if missing.
	Image string
	// Platform is runsc's platform: "" (systrap), systrap, ptrace or kvm.
	Platform string
	// AgentBinary is the static zennet binary bound into sandboxes; ""
	// means this executable.
	AgentBinary string
	// ServeBinary serves each SSH connection inside a sandbox; "" means
	// zennet-agent next to AgentBinary, else AgentBinary itself.
	ServeBinary string

	// What is sold in all: leases at once, memory and disk in bytes (0:
	// DefaultMemory and DefaultDisk), CPU quota in cores; and the most
	// processes of one sandbox.
	MaxLeases    int
	Memory, Disk int64
	CPUs         float64
	Pids         int64
	// What one renter key may hold at once: MaxLeasesPerRenter leases
	// (0: MaxLeases) and MaxSharePerRenter of the memory, CPU and disk
	// sold (0 or 1: all of it).
	MaxLeasesPerRenter int
	MaxSharePerRenter  float64
	// Egress is what sandboxes may reach; Publish opens services of this
	// machine's to every sandbox.
	Egress  netsandbox.Policy
	Publish []netsandbox.Service
	// EgressDeny are further destinations sandboxes may not reach; the
	// announced address's are added (a provider behind a NAT does not
	// see its public address on its interfaces). EgressSMTP lets them
	// reach SMTP ports.
	EgressDeny []netip.Prefix
	EgressSMTP bool

	// Rates are the flat prices, used when FlatRates is set or there is
	// no calibration to fit the price model to.
	Rates     pay.Rates
	FlatRates bool
	// PricePerWork is the price model's msat for the work the reference
	// machine does in a CPU-second; MinPricePerWork the least to take
	// from a renter's counter-offer (0: no discounts).
	PricePerWork, MinPricePerWork float64
	// Calibration is the calibration offered: "auto" (this machine's,
	// benchmarked on first start and cached), "off", or a signed
	// calibration set file.
	Calibration string
	// MinPayment is the least to ask at once, msat; Grace the report
	// intervals a bill may stay unpaid before the host is paused;
	// UnpaidTimeout how long before such a lease ends.
	MinPayment    uint64
	Grace         int
	UnpaidTimeout time.Duration
	// Lightning, if not nil, connects to the lnd node whose payments are
	// accepted too. Run closes the node when it returns.
	Lightning func(context.Context) (*pay.LND, error)
	// Accept lists the payment methods taken, preferred first (empty:
	// the embedded channel, and Lightning with a node).
	Accept []string
	// Prepay asks renter keys with no paid lease here to pay each host's
	// first interval up front.
	Prepay bool

	// Peers are the market nodes to join the libp2p market through:
	// multiaddrs (/ip4/…/tcp/…/p2p/…), or other providers' HOST:PORT
	// (asked where their market nodes are); Announce the address renters
	// reach this one at ("" means Listen's, when it names a host);
	// PowBits the proof of work asked of announcements; AnnounceEvery how
	// often to look at the offer (announced anew when it changed).
	Peers []string
	// MarketListen are the multiaddrs of the libp2p market node (default:
	// --listen's host, TCP and QUIC, ports chosen by the system).
	MarketListen []string
	// Relay, if not nil, makes the market node a relay for providers
	// behind NATs (--relay), within its limits.
	Relay         *p2p.Relay
	Announce      string
	PowBits       uint
	AnnounceEvery time.Duration

	// Idle, if not nil, lends the machine only while its owner leaves it
	// alone: leases are paused (or throttled) while the owner is busy.
	Idle *idle.Policy
	// Metrics, if not "", serves Prometheus metrics on this address.
	Metrics string
	// Version is the build reported in Status.
	Version string
	// Serve, if not nil, starts what serves the provider to its operator
	// (the control socket, metrics) once it can answer them: before the
	// gateway takes renters and the info file appears. Run calls stop
	// when it returns.
	Serve func(ctx context.Context, p *Provider) (stop func(), err error)

	// Log receives the provider's log (nil: none). Status keeps its
	// latest lines of level info and above whatever Log's level.
	Log *slog.Logger
	// Events, if not nil, hears what the provider does (ImageBuilding,
	// Recovered, Calibrating, Started, ...), on Run's goroutine.
	Events func(Event)
}

// DefaultPricePerWork is a provider's price unless told otherwise: 100 msat
// (0.1 sat) for the work the reference machine does in one CPU-second.
const DefaultPricePerWork = 100

// DefaultPowBits is the proof of work asked of market announcements unless
// told otherwise: 2^16 hashes, some tens of milliseconds for an honest
// provider announcing itself once a minute, a real cost for a spammer
// minting thousands of identities.
const DefaultPowBits = 16

// DefaultRates are a provider's flat prices, msat per unit of each counter:
// 0.1 sat per CPU-second, 1 sat per GiB-hour of memory used, 1 sat per GiB
// of network traffic each way.
var DefaultRates = map[meter.Counter]string{
	meter.CPU:         "1/10000000",
	meter.MemoryTime:  "1/3686400",
	meter.NetInBytes:  "125/134217728",
	meter.NetOutBytes: "125/134217728",
}

// DefaultConfig returns a provider's defaults. The paths (DataDir,
// CacheDir, Image) are the caller's to set; Memory and Disk are left 0,
// which New takes as DefaultMemory and DefaultDisk.
func DefaultConfig() Config {
	var rates pay.Rates
	for c, v := range DefaultRates {
		if err := rates.Set(c, v); err != nil {
			panic(fmt.Sprintf("provider: default rate of %s: %v", c.Name(), err))
		}
	}
	return Config{
		Listen:        ":2222",
		MaxLeases:     64,
		CPUs:          float64(4 * runtime.NumCPU()),
		Pids:          1024,
		Egress:        netsandbox.PolicyPublic,
		Rates:         rates,
		PricePerWork:  DefaultPricePerWork,
		Calibration:   "auto",
		Grace:         billing.DefaultGraceIntervals,
		UnpaidTimeout: billing.DefaultUnpaidTimeout,
		PowBits:       DefaultPowBits,
		AnnounceEvery: time.Minute,
	}
}

// DefaultMemory is the memory a provider sells unless told otherwise: this
// machine's memory less 1G, and at least half of it.
func DefaultMemory() (int64, error) {
	total, err := hostMemory("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return max(total-1<<30, total/2), nil
}

// DefaultDisk is the disk a provider on dataDir sells unless told
// otherwise: 90% of the space free to unprivileged users on its file
// system (or its nearest existing parent's).
func DefaultDisk(dataDir string) int64 { return freeDisk(dataDir) / 10 * 9 }

// MinDisk is the least disk worth selling.
const MinDisk = 64 << 20

func freeDisk(dir string) int64 {
	for ; ; dir = filepath.Dir(dir) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			return int64(st.Bavail) * st.Bsize
		}
		if dir == "/" {
			return 0
		}
	}
}

func hostMemory(meminfo string) (int64, error) {
	f, err := os.Open(meminfo)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no MemTotal in " + meminfo)
}

// Provider is one provider on its data dir. Its operator's methods
// (Status, Pause, Resume, End, Drain) work once Run has started serving:
// from Config.Serve and the Started event on.
type Provider struct {
	cfg   Config
	lock  *os.File
	runsc string
	agent string
	log   *slog.Logger
	logs  *logRing

	stopOnce sync.Once
	stop     chan struct{} // closed by Shutdown
	ran      chan struct{} // closed when Run starts
	done     chan struct{} // closed when Run returns
	release  sync.Once

	// *operator is the operator's view (Status, Pause, Resume, End,
	// Drain), set up by Run before it calls Config.Serve.
	*operator
}

// New takes the data dir's lock (ErrLocked if another provider holds it)
// for the life of the provider, and finds runsc and the agent binary.
func New(cfg Config) (*Provider, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("provider: no data dir")
	}
	if cfg.MaxLeases < 1 || !(cfg.CPUs > 0) || cfg.Pids < 1 {
		return nil, fmt.Errorf("provider: nothing to sell: %d leases, %g CPUs, %d pids", cfg.MaxLeases, cfg.CPUs, cfg.Pids)
	}
	if cfg.MaxLeasesPerRenter < 0 || !(cfg.MaxSharePerRenter >= 0 && cfg.MaxSharePerRenter <= 1) {
		return nil, fmt.Errorf("provider: a renter's cap of %d leases and %g of the capacity: want at least 0 leases and a share from 0 to 1",
			cfg.MaxLeasesPerRenter, cfg.MaxSharePerRenter)
	}
	for _, m := range cfg.Accept {
		if !slices.Contains(pay.Methods, m) {
			return nil, fmt.Errorf("provider: unknown payment method %q (known: %s)", m, strings.Join(pay.Methods, ", "))
		}
		if m == pay.MethodLightning && cfg.Lightning == nil {
			return nil, errors.New("provider: Lightning is accepted, but no Lightning node is configured")
		}
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = abs
	if cfg.Memory == 0 {
		if cfg.Memory, err = DefaultMemory(); err != nil {
			return nil, err
		}
	}
	if cfg.Disk == 0 {
		cfg.Disk = DefaultDisk(cfg.DataDir)
	}
	if cfg.Disk < MinDisk {
		return nil, fmt.Errorf("provider: %d bytes of disk is too little to sell (at least %d)", cfg.Disk, MinDisk)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Provider{cfg: cfg, stop: make(chan struct{}), ran: make(chan struct{}), done: make(chan struct{})}
	p.logs = newLogRing(log.Handler())
	p.log = slog.New(p.logs)
	if p.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if p.runsc, err = sandbox.FindRunsc(cfg.Runsc, cfg.CacheDir); err != nil {
		p.unlock()
		return nil, err
	}
	if p.agent, err = agentBinary(cfg.AgentBinary); err != nil {
		p.unlock()
		return nil, err
	}
	if cfg.ServeBinary != "" {
		if err := lease.CheckAgentBinary(cfg.ServeBinary); err != nil {
			p.unlock()
			return nil, fmt.Errorf("--serve-binary: %w", err)
		}
	}
	return p, nil
}

// agentBinary is the static zennet binary bound into sandboxes: path if
// set, else this executable; it must be statically linked.
func agentBinary(path string) (string, error) {
	if path == "" {
		var err error
		if path, err = os.Executable(); err != nil {
			return "", err
		}
	}
	return path, lease.CheckAgentBinary(path)
}

func (p *Provider) emit(e Event) {
	if p.cfg.Events != nil {
		p.cfg.Events(e)
	}
}

// unlock releases the data dir, once.
func (p *Provider) unlock() { p.release.Do(func() { p.lock.Close() }) }

// Shutdown stops the provider as the end of Run's context does: Run ends
// every lease (its renters get the final reports and a moment to pay),
// closes the gateway and returns. Shutdown waits for that, or for ctx to
// end. A Provider that never ran just releases its data dir.
func (p *Provider) Shutdown(ctx context.Context) error {
	p.stopOnce.Do(func() { close(p.stop) })
	select {
	case <-p.ran:
	default:
		p.unlock()
		return nil
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run serves until ctx ends or Shutdown, then ends every lease and
// returns. It returns nil when stopped that way; an error if the provider
// could not start or its gateway failed. Run once per Provider.
func (p *Provider) Run(ctx context.Context) (err error) {
	close(p.ran)
	defer close(p.done)
	defer p.unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.stop: // Shutdown
			cancel()
		case <-ctx.Done():
		}
	}()
	cfg, log := p.cfg, p.log
	os.Remove(filepath.Join(cfg.DataDir, InfoFile)) // a crashed run's
	serve := cfg.ServeBinary
	if serve == "" {
		if serve = lease.FindServeBinary(p.agent); serve == "" {
			log.Info("no zennet-agent next to the agent binary: SSH sessions are served by the full zennet binary, which starts slower and takes more of each sandbox's memory ('make build' builds both)", "agent", p.agent)
		}
	}
	// zennet's own image is built when missing and rebuilt when from an
	// older recipe (keeping its extra packages); the provider's own root
	// filesystem (no stamp) is used as it is, if a sandbox can run on it.
	switch state, _, err := sandbox.InspectImage(cfg.Image, nil); {
	case err != nil:
		return err
	case state == sandbox.ImageMissing || state == sandbox.ImageStale:
		p.emit(ImageBuilding{Path: cfg.Image})
		if err := sandbox.BuildImage(ctx, cfg.Image, sandbox.BuildOptions{}); err != nil {
			return err
		}
	}
	if err := sandbox.CheckImage(cfg.Image); err != nil {
		return err
	}
	deny := append(slices.Clone(cfg.EgressDeny), announcedAddrs(ctx, cfg.Announce, log)...)
	nets, err := netsandbox.New(netsandbox.Config{Policy: cfg.Egress, Services: cfg.Publish, Deny: deny, AllowSMTP: cfg.EgressSMTP, Log: log})
	if err != nil {
		return err
	}
	defer nets.Close()
	rt, err := sandbox.New(sandbox.Config{Runsc: p.runsc, Image: cfg.Image, StateDir: filepath.Join(cfg.DataDir, "sandboxes"), Platform: cfg.Platform, Networks: nets, Log: log})
	if err != nil {
		return err
	}
	hostKey, rawKey, err := sshkey.HostKeyPair(cfg.DataDir)
	if err != nil {
		return err
	}
	calib, err := p.calibration(ctx, rt, hostKey)
	if err != nil {
		return err
	}
	calibJSON, err := terms.CalibrationJSON(calib)
	if err != nil {
		return err
	}
	// The price model's rates, unless flat rates were asked for (or there
	// is no calibration to fit them from).
	rates, perWork, floor := cfg.Rates, 0.0, 0.0
	var ratesAt func(float64) (pay.Rates, error)
	if calib != nil && !cfg.FlatRates {
		var fallback error
		if rates, perWork, fallback, err = terms.OfferRates(calib, cfg.PricePerWork, cfg.Rates); err != nil {
			return fmt.Errorf("price this machine's calibration: %w (or give flat prices with --rate)", err)
		}
		if fallback != nil {
			// The renters would refuse the tariff (issue 19): flat rates
			// it is, and the operator is told why.
			log.Warn("offering flat rates: this machine's calibration cannot be priced per unit of work", "reason", fallback)
			p.emit(FlatRates{Reason: fallback.Error()})
		} else {
			floor = cfg.MinPricePerWork
			ratesAt = func(price float64) (pay.Rates, error) {
				r, _, err := terms.ModelRates(calib, price)
				return r, err
			}
		}
	}
	if perWork == 0 && cfg.MinPricePerWork > 0 {
		log.Warn("--min-price-per-work is ignored: this provider offers flat rates")
	}
	var lnd *pay.LND
	if cfg.Lightning != nil {
		if lnd, err = cfg.Lightning(ctx); err != nil {
			return err
		}
		defer lnd.Close()
	}
	ledgerPath := filepath.Join(cfg.DataDir, "ledger.db")
	ledger, err := pay.Open(ledgerPath, &pay.Options{Logger: log})
	if errors.Is(err, pay.ErrDamaged) {
		// A damaged ledger stops nothing: it goes aside, kept for its
		// records, and a new one begins.
		to, serr := pay.SetAside(ledgerPath, time.Now())
		if serr != nil {
			return fmt.Errorf("%w; move it out of %s and start again", err, cfg.DataDir)
		}
		log.Warn("ledger damaged: set aside, and a new one begun; keep the old file if you need its payment records", "err", err, "set_aside_as", to)
		ledger, err = pay.Open(ledgerPath, &pay.Options{Logger: log})
	}
	if err != nil {
		return err
	}
	defer ledger.Close()
	// The renters' session networks: frames between this provider's hosts
	// of a session, and (Tunnels) to its other providers'.
	fabric := cluster.NewFabric(nil)
	mgr, err := lease.New(lease.Config{Signer: hostKey,
		Runtime: rt, AgentBinary: p.agent, ServeBinary: serve, Dir: filepath.Join(cfg.DataDir, "leases"), Log: log,
		Capacity: lease.Capacity{Leases: cfg.MaxLeases, Memory: cfg.Memory, CPUs: cfg.CPUs, Disk: cfg.Disk}, Pids: cfg.Pids,
		PerRenter: perRenter(cfg),
		Fabric:    fabric,
	})
	if err != nil {
		return err
	}
	if n, err := mgr.Recover(ctx); err != nil {
		return fmt.Errorf("clean up after an earlier run: %w", err)
	} else if n > 0 {
		p.emit(Recovered{Sandboxes: n})
	}
	op := newOperator(mgr, ledger, p.logs, cfg.Version)
	biller, err := billing.New(billing.Config{Ledger: ledger, Leases: mgr, HostKey: hostKey, Rates: rates,
		Accept: cfg.Accept, Prepay: cfg.Prepay, MinPayable: cfg.MinPayment, GraceIntervals: cfg.Grace, UnpaidTimeout: cfg.UnpaidTimeout, LND: lnd, Log: log, OnCredit: op.credit,
		Calibration: calibJSON, PricePerWork: perWork, MinPricePerWork: floor, RatesAt: ratesAt, Reputation: market.OpenBook(market.BookPath(cfg.DataDir))})
	if err != nil {
		return err
	}
	if n, err := biller.Recover(ctx); err != nil {
		log.Warn("settle the accounts of an earlier run", "err", err)
	} else if n > 0 {
		log.Info("closed the accounts of an earlier run", "leases", n)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	announce := cfg.Announce
	if h, _, _ := net.SplitHostPort(l.Addr().String()); announce == "" && !net.ParseIP(h).IsUnspecified() {
		announce = l.Addr().String()
	}
	// What the market is told: the gateway's HOST:PORT when it has one
	// renters can dial; the libp2p node announces its own multiaddr
	// instead when AutoNAT finds this machine behind a NAT (through a
	// relay), or when there is no HOST:PORT and it has a public address.
	digest := ""
	if calib != nil {
		digest, _ = calib.Digest()
	}
	score := terms.RelativeScore(calib)
	announcer := func() market.Announcement {
		free := mgr.Free()
		if mgr.Draining() {
			free = lease.Capacity{}
		}
		return market.Announcement{Address: announce,
			Capacity:         market.Capacity{Leases: max(free.Leases, 0), MemoryBytes: max(free.Memory, 0), CPUs: max(free.CPUs, 0), DiskBytes: max(free.Disk, 0)},
			PricePerWorkMsat: perWork, Score: score, Calibration: digest, Methods: biller.Methods()}
	}
	sshPeers, boot, err := p2p.SplitAddrs(cfg.Peers)
	if err != nil {
		l.Close()
		return fmt.Errorf("--peer %w", err)
	}
	p2pNode, err := p2p.New(ctx, p2p.Config{Key: rawKey, Listen: marketListen(cfg.MarketListen, l.Addr()), Bootstrap: boot,
		Resolve:  func(ctx context.Context) []peer.AddrInfo { return marketPeers(ctx, sshPeers, hostKey, log) },
		Announce: announcer, MinBits: cfg.PowBits, Every: cfg.AnnounceEvery, Relay: cfg.Relay, Log: log})
	if err != nil {
		l.Close()
		return err
	}
	defer p2pNode.Close()
	// The gateway over libp2p too: renters that cannot reach --listen (this
	// machine behind a NAT) reach it through a relay or a punched hole.
	sshL, err := p2pNode.ListenSSH()
	if err != nil {
		l.Close()
		return err
	}
	tunnels := sshgate.NewClusterTransport(hostKey, fabric, log).WithDial(p2pNode.DialSSH)
	defer tunnels.Close()
	node := &cluster.Node{Fabric: fabric, Self: gossh.FingerprintSHA256(hostKey.PublicKey()), Files: mgr.SetClusterFiles, Tunnels: tunnels}
	gw := sshgate.NewGateway(hostKey, mgr, biller, sshgate.WithLogger(log), sshgate.WithCluster(node, tunnels),
		sshgate.WithMarket(func() []string { return multiaddrStrings(p2pNode.Addrs()) }))
	info := Info{
		Address: l.Addr().String(), Market: multiaddrStrings(p2pNode.Addrs()), HostKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(hostKey.PublicKey()))),
		Fingerprint: gossh.FingerprintSHA256(hostKey.PublicKey()), DataDir: cfg.DataDir,
		MaxLeases: cfg.MaxLeases, MemoryBytes: cfg.Memory, CPUs: cfg.CPUs, Pid: os.Getpid(),
	}
	op.info, op.billing, op.gw = info, biller, gw
	op.market = func() *MarketStatus {
		st := p2pNode.Stats()
		return &MarketStatus{Addrs: multiaddrStrings(p2pNode.Addrs()), Announced: p2pNode.Announced(),
			Reachability: strings.ToLower(p2pNode.Reachability().String()), Relay: cfg.Relay != nil,
			Peers: len(p2pNode.Peers()), TopicPeers: len(p2pNode.TopicPeers()), Known: p2pNode.Directory().Len(),
			Accepted: st.Accepted, Ignored: st.Ignored, Throttled: st.Throttled, Rejected: st.Rejected}
	}
	p.operator = op
	if cfg.Idle != nil {
		if _, err := startIdleKeeper(ctx, *cfg.Idle, cfg.DataDir, mgr, rt, gw, log); err != nil {
			l.Close()
			return err
		}
	}
	if cfg.Serve != nil {
		stop, err := cfg.Serve(ctx, p)
		if err != nil {
			l.Close()
			return err
		}
		defer stop()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- gw.Serve(l) }()
	go func() {
		if err := gw.Serve(sshL); err != nil {
			log.Warn("gateway over libp2p", "err", err)
		}
	}()
	gctx, stopMarket := context.WithCancel(ctx)
	p2pDone := make(chan struct{})
	go func() {
		defer close(p2pDone)
		p2pNode.Run(gctx)
	}()
	defer func() {
		stopMarket()
		<-p2pDone
	}()
	// The info file tells scripts (and the dashboard) where this provider
	// listens; it exists only while the provider runs.
	infoPath := filepath.Join(cfg.DataDir, InfoFile)
	if err = writeInfo(infoPath, info); err == nil {
		defer os.Remove(infoPath)
		p.emit(Started{Info: info})
		select {
		case <-ctx.Done():
		case err = <-serveErr:
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// End every lease while the renters are still connected, so that they
	// get its final report and pay for it, and give them a moment to.
	var wg sync.WaitGroup
	for _, le := range mgr.List() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mgr.Terminate(sctx, le.ID, proto.EndProviderShutdown, "the provider is shutting down")
		}()
	}
	wg.Wait()
	biller.WaitSettled(sctx, 5*time.Second)
	gw.Shutdown(sctx)
	if serr := mgr.Shutdown(sctx); serr != nil {
		log.Error("shutdown", "err", serr)
		err = errors.Join(err, serr)
	} else if cerr := rt.Close(); cerr != nil {
		log.Warn("shutdown", "err", cerr)
	}
	log.Info("provider stopped", slog.Int("leases", len(mgr.List())))
	return err
}

// perRenter is the cap on what one renter key holds at once.
func perRenter(cfg Config) lease.Capacity {
	var c lease.Capacity
	if cfg.MaxLeasesPerRenter > 0 && cfg.MaxLeasesPerRenter < cfg.MaxLeases {
		c.Leases = cfg.MaxLeasesPerRenter
	}
	if f := cfg.MaxSharePerRenter; f > 0 && f < 1 {
		c.Memory, c.CPUs, c.Disk = int64(f*float64(cfg.Memory)), f*cfg.CPUs, int64(f*float64(cfg.Disk))
	}
	return c
}

// announcedAddrs are the addresses of the announced HOST:PORT, which a
// provider behind a NAT does not have on its interfaces: sandboxes must
// not reach the provider through them. A name that does not resolve
// within 5 s is logged and denies nothing.
func announcedAddrs(ctx context.Context, announce string, log *slog.Logger) []netip.Prefix {
	host, _, err := net.SplitHostPort(announce)
	if announce == "" || err != nil {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap().WithZone("")
		return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil {
		log.Warn("the announced name does not resolve: sandboxes are not kept from its addresses", "announce", announce, "err", err)
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}
