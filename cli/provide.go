package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/idle"
	"github.com/zennet/zennet/netsandbox"
	"github.com/zennet/zennet/p2p"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/provider"
)

// provideOptions are 'zennet provide's flags: those the provider takes
// as they are bound to its Config, the others parsed into it by Validate.
type provideOptions struct {
	IO   cmdutil.IOStreams
	G    *cmdutil.GlobalOptions
	cfg  provider.Config
	JSON bool
	TUI  bool

	Memory, Disk string
	Egress       string
	Publish      []string
	Rates        []string
	Lightning    bool
	LND          lndFlags
	RenterShare  string
	EgressDeny   []string

	Relay          bool
	RelayData      string
	RelayDuration  time.Duration
	RelayCircuits  int
	RelayReservers int

	WhenIdle             bool
	BusyAbove, IdleBelow string
	BusyFor, IdleFor     time.Duration
	Throttle             float64
}

// newProvideOptions returns the provider's defaults (provider.DefaultConfig,
// the default paths, the environment): the flags' defaults, and the demo's
// providers'.
func newProvideOptions(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *provideOptions {
	c := provider.DefaultConfig()
	c.Listen = cmdutil.EnvOr("ZENNET_LISTEN", c.Listen)
	c.DataDir, c.CacheDir = cmdutil.DefaultProviderDataDir(), cmdutil.DefaultCacheDir()
	c.Runsc, c.Platform = os.Getenv("ZENNET_RUNSC"), os.Getenv("ZENNET_PLATFORM")
	c.Image = cmdutil.DefaultImage()
	c.AgentBinary, c.ServeBinary = os.Getenv("ZENNET_AGENT_BINARY"), os.Getenv("ZENNET_SERVE_BINARY")
	c.Peers, c.Announce = splitList(os.Getenv("ZENNET_PEERS")), os.Getenv("ZENNET_ANNOUNCE")
	c.Calibration = cmdutil.EnvOr("ZENNET_CALIBRATION", c.Calibration)
	return &provideOptions{IO: io, G: g, cfg: c,
		Egress: cmdutil.EnvOr("ZENNET_EGRESS", c.Egress.String()), RenterShare: "100%",
		BusyAbove: idle.DefaultBusyAbove.String(), IdleBelow: idle.DefaultIdleBelow.String(),
		BusyFor: idle.DefaultBusyFor, IdleFor: idle.DefaultIdleFor,
	}
}

func newCmdProvide(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := newProvideOptions(io, g)
	cmd := &cobra.Command{
		Use:   "provide",
		Short: "Sell this machine's capacity as gVisor-sandboxed SSH hosts",
		Long: `provide runs an SSH gateway that renters negotiate leases with. Each lease is
a gVisor sandbox (runsc) with the agreed memory and CPU, reachable only with the
renter's key. Stop it with Ctrl-C: every lease ends and every sandbox is destroyed.`,
		Example: "  zennet provide --listen 127.0.0.1:2222\n  zennet provide --listen :2222 --max-leases 20 --memory 16G",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return runProvide(cmd.Context(), o, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cfg.Listen, "listen", o.cfg.Listen, "address of the SSH gateway")
	f.StringVar(&o.cfg.DataDir, "data-dir", o.cfg.DataDir, "provider state: host key, leases, sandboxes (env ZENNET_DATA_DIR)")
	f.StringVar(&o.cfg.Runsc, "runsc", o.cfg.Runsc, "runsc binary (default: the pinned build in the cache, then PATH)")
	f.StringVar(&o.cfg.Image, "image", o.cfg.Image, "root filesystem of the sandboxes (built with mmdebstrap if missing)")
	f.StringVar(&o.cfg.Platform, "platform", o.cfg.Platform, "runsc platform: systrap (default), ptrace or kvm")
	f.StringVar(&o.cfg.AgentBinary, "agent-binary", o.cfg.AgentBinary, "static zennet binary bound into sandboxes (default: this binary)")
	f.StringVar(&o.cfg.ServeBinary, "serve-binary", o.cfg.ServeBinary, "static zennet-agent binary that serves each SSH connection inside a sandbox (default: zennet-agent next to the agent binary, else the agent binary itself)")
	f.IntVar(&o.cfg.MaxLeases, "max-leases", o.cfg.MaxLeases, "most leases at once")
	f.StringVar(&o.Memory, "memory", o.Memory, "memory to sell in all (default: this machine's memory less 1G)")
	f.Float64Var(&o.cfg.CPUs, "cpus", o.cfg.CPUs, "CPU quota to sell in all, in cores (quotas cap, they do not reserve)")
	f.StringVar(&o.Disk, "disk", o.Disk, "disk to sell in all (default: 90% of the data dir's free space)")
	f.Int64Var(&o.cfg.Pids, "pids", o.cfg.Pids, "most processes and threads in one sandbox")
	f.StringVar(&o.Egress, "egress", o.Egress, "what sandboxes may reach: public (the internet, never this machine or its private networks) or none")
	f.StringArrayVar(&o.EgressDeny, "egress-deny", nil, "an address or CIDR prefix sandboxes may not reach besides the private ranges, this machine's addresses and the announced one (repeatable)")
	f.BoolVar(&o.cfg.EgressSMTP, "egress-smtp", false, "let sandboxes reach SMTP ports (25, 465, 587), denied by default: mail from strangers' hosts gets this machine's address blocklisted")
	f.StringArrayVar(&o.Publish, "publish", nil, "a service of this machine's to open to every sandbox: [NAME[:PORT]=]HOST:PORT (repeatable)")
	f.BoolVar(&o.JSON, "json", false, "print the provider's address and key as JSON once it is ready")
	f.StringArrayVar(&o.Rates, "rate", nil, "flat price of a meter counter instead of the price model: COUNTER=MSAT_PER_UNIT, e.g. cpu_ns=1/10000000 (repeatable)")
	f.Float64Var(&o.cfg.PricePerWork, "price-per-work", o.cfg.PricePerWork, "price model: msat for the work the reference machine does in a CPU-second; the rates are fitted to this machine's calibration")
	f.Float64Var(&o.cfg.MinPricePerWork, "min-price-per-work", o.cfg.MinPricePerWork, "the least price per work to take when a renter counters with a lower bid (0: no discounts; at most --price-per-work)")
	f.StringSliceVar(&o.cfg.Peers, "peer", o.cfg.Peers, "a market node to join the market through: a multiaddr /ip4/…/tcp/…/p2p/ID, or another provider's HOST:PORT, asked where its market node is (repeatable; env ZENNET_PEERS)")
	f.StringSliceVar(&o.cfg.MarketListen, "market-listen", nil, "multiaddrs of the libp2p market node (default: --listen's host, TCP and QUIC, ports chosen by the system; printed in provider.json, \"market\")")
	f.BoolVar(&o.Relay, "relay", false, "relay the libp2p market for providers behind NATs (circuit relay v2): this machine must be reachable from the internet")
	f.IntVar(&o.RelayReservers, "relay-reservations", 128, "with --relay: most providers holding a slot at once")
	f.IntVar(&o.RelayCircuits, "relay-circuits", 16, "with --relay: most relayed connections to or from one peer")
	f.StringVar(&o.RelayData, "relay-data", "", "with --relay: most bytes relayed each way over one connection, e.g. 10G (default: no bound; a cut connection ends its renter's leases)")
	f.DurationVar(&o.RelayDuration, "relay-duration", 0, "with --relay: longest a relayed connection lasts (default: no bound)")
	f.StringVar(&o.cfg.Announce, "announce", o.cfg.Announce, "address renters reach this provider at, HOST:PORT, announced to the market (default: --listen's, when it names a host)")
	f.BoolVar(&o.WhenIdle, "when-idle", false, "lend the machine only while its owner leaves it alone: pause (or throttle) every lease while the owner is busy")
	f.StringVar(&o.BusyAbove, "busy-above", o.BusyAbove, "with --when-idle: the owner is busy above this load, in cores (0.5) or of the machine (25%)")
	f.StringVar(&o.IdleBelow, "idle-below", o.IdleBelow, "with --when-idle: the owner is idle again below this load")
	f.DurationVar(&o.BusyFor, "busy-for", o.BusyFor, "with --when-idle: how long the load must stay above --busy-above")
	f.DurationVar(&o.IdleFor, "idle-for", o.IdleFor, "with --when-idle: how long the load must stay below --idle-below")
	f.Float64Var(&o.Throttle, "throttle", 0, "with --when-idle: between the thresholds, scale leases' CPU quotas by this factor (0 < f < 1) instead of waiting to pause them")
	f.DurationVar(&o.cfg.AnnounceEvery, "announce-every", o.cfg.AnnounceEvery, "how often to look at this provider's offer (announced anew when it changed)")
	f.UintVar(&o.cfg.PowBits, "pow-bits", o.cfg.PowBits, "proof of work to ask of announcements received, in bits (each bit doubles a sender's cost)")
	f.StringVar(&o.cfg.Calibration, "calibration", o.cfg.Calibration, "calibration to offer: auto (benchmark this machine on first start, cached), off, or a signed calibration set FILE")
	f.Uint64Var(&o.cfg.MinPayment, "min-payment", o.cfg.MinPayment, "least amount to ask at once, msat (the method's own minimum applies too)")
	f.IntVar(&o.cfg.Grace, "grace", o.cfg.Grace, "report intervals a bill may stay unpaid before the host is paused")
	f.DurationVar(&o.cfg.UnpaidTimeout, "unpaid-timeout", o.cfg.UnpaidTimeout, "end a lease whose bill stays unpaid this long")
	f.BoolVar(&o.Lightning, "lightning", false, "also accept Lightning payments, to the lnd node the --lnddir flags name")
	f.StringSliceVar(&o.cfg.Accept, "accept", nil, "payment methods to take, preferred first: embedded (signed IOUs: worth what the renter's word is worth), lightning (needs --lightning) (default: embedded, and lightning with --lightning)")
	f.BoolVar(&o.cfg.Prepay, "prepay", false, "ask renter keys that have no paid lease here to pay each host's first interval (at its limits) up front; the host starts once it is paid")
	f.IntVar(&o.cfg.MaxLeasesPerRenter, "max-leases-per-renter", 0, "most leases one renter key holds at once (0: --max-leases)")
	f.StringVar(&o.RenterShare, "max-share-per-renter", o.RenterShare, "most of the memory, CPU and disk sold that one renter key holds at once, e.g. 25%")
	o.LND.register(f)
	f.StringVar(&o.cfg.Metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (off by default): the provider's capacity, use, earnings and payment failures, and per lease its renter's key fingerprint, limits, CPU, memory, network bytes, billed and paid msat (docs/user-guide.md lists them); anyone who reaches it sees them, so bind it to loopback or a private address")
	f.BoolVar(&o.TUI, "tui", false, "show the dashboard while providing (logs go to DATA_DIR/provider.log; q leaves the dashboard, the provider keeps running until Ctrl-C)")
	return cmd
}

// Validate checks the options and makes the provider's Config of them,
// with the defaults that need the machine.
func (o *provideOptions) Validate() error {
	c := &o.cfg
	c.FlatRates, c.Publish, c.Idle = len(o.Rates) > 0, nil, nil
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return cmdutil.Usagef("--listen %q is not HOST:PORT", c.Listen)
	}
	if c.MaxLeases < 1 {
		return cmdutil.Usagef("--max-leases must be at least 1")
	}
	if !(c.CPUs > 0) {
		return cmdutil.Usagef("--cpus must be more than 0")
	}
	var err error
	if o.Memory == "" {
		if c.Memory, err = provider.DefaultMemory(); err != nil {
			return err
		}
	} else if c.Memory, err = cmdutil.ParseSize(o.Memory); err != nil {
		return cmdutil.Usagef("--memory: %v", err)
	}
	if c.Egress, err = netsandbox.ParsePolicy(o.Egress); err != nil {
		return cmdutil.Usagef("--egress: %v", err)
	}
	c.EgressDeny = nil
	for _, d := range o.EgressDeny {
		p, err := netsandbox.ParseDeny(d)
		if err != nil {
			return cmdutil.Usagef("--egress-deny: %v", err)
		}
		c.EgressDeny = append(c.EgressDeny, p)
	}
	for _, p := range o.Publish {
		svc, err := netsandbox.ParseService(p)
		if err != nil {
			return cmdutil.Usagef("--publish %q: %v", p, err)
		}
		c.Publish = append(c.Publish, svc)
	}
	if c.Pids < 16 {
		return cmdutil.Usagef("--pids must be at least 16")
	}
	if c.Rates, err = counterRates(provider.DefaultRates, o.Rates); err != nil {
		return err
	}
	if !(c.PricePerWork > 0 && c.PricePerWork < 1e12) {
		return cmdutil.Usagef("--price-per-work %v: must be a positive number of msat", c.PricePerWork)
	}
	if !(c.MinPricePerWork >= 0 && c.MinPricePerWork <= c.PricePerWork) {
		return cmdutil.Usagef("--min-price-per-work %v: must be between 0 (no discounts) and --price-per-work %v", c.MinPricePerWork, c.PricePerWork)
	}
	if c.Calibration == "" {
		return cmdutil.Usagef("--calibration: say auto, off or a calibration set FILE")
	}
	if c.Calibration != "auto" && c.Calibration != "off" {
		if _, err := os.Stat(c.Calibration); err != nil {
			return cmdutil.Usagef("--calibration %s: %v (say auto, off or a calibration set FILE)", c.Calibration, err)
		}
	}
	if c.Grace < 1 {
		return cmdutil.Usagef("--grace must be at least 1 interval")
	}
	if c.UnpaidTimeout < time.Second {
		return cmdutil.Usagef("--unpaid-timeout must be at least 1s")
	}
	if _, _, err := p2p.SplitAddrs(c.Peers); err != nil {
		return cmdutil.Usagef("--peer %v", err)
	}
	for _, a := range c.MarketListen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return cmdutil.Usagef("--market-listen %q: %v (e.g. /ip4/0.0.0.0/tcp/4001)", a, err)
		}
	}
	if o.Relay {
		r := &p2p.Relay{Reservations: o.RelayReservers, CircuitsPerPeer: o.RelayCircuits, Duration: o.RelayDuration}
		if o.RelayData != "" {
			if r.Data, err = cmdutil.ParseSize(o.RelayData); err != nil || r.Data <= 0 {
				return cmdutil.Usagef("--relay-data %q: give a size such as 10G", o.RelayData)
			}
		}
		if r.Reservations < 1 || r.CircuitsPerPeer < 1 || r.Duration < 0 {
			return cmdutil.Usagef("--relay-reservations and --relay-circuits must be at least 1, --relay-duration not negative")
		}
		c.Relay = r
	}
	if c.Announce != "" {
		if h, port, err := net.SplitHostPort(c.Announce); err != nil || port == "" || h == "" || net.ParseIP(h) != nil && net.ParseIP(h).IsUnspecified() {
			return cmdutil.Usagef("--announce %q is not a HOST:PORT renters can dial", c.Announce)
		}
	}
	if o.WhenIdle {
		p := idle.Policy{BusyFor: o.BusyFor, IdleFor: o.IdleFor, ThrottleFactor: o.Throttle}
		if p.BusyAbove, err = idle.ParseThreshold(o.BusyAbove); err != nil {
			return cmdutil.Usagef("--busy-above: %v", err)
		}
		if p.IdleBelow, err = idle.ParseThreshold(o.IdleBelow); err != nil {
			return cmdutil.Usagef("--idle-below: %v", err)
		}
		if err := p.Validate(); err != nil {
			return cmdutil.Usagef("--when-idle: %v", err)
		}
		c.Idle = &p
	}
	if c.AnnounceEvery < 100*time.Millisecond {
		return cmdutil.Usagef("--announce-every %s: at least 100ms", c.AnnounceEvery)
	}
	if c.PowBits > 40 {
		return cmdutil.Usagef("--pow-bits %d: at most 40 (each bit doubles the work a sender does)", c.PowBits)
	}
	if c.Metrics != "" {
		host, _, err := net.SplitHostPort(c.Metrics)
		if err != nil {
			return cmdutil.Usagef("--metrics %q is not HOST:PORT", c.Metrics)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback() && !ip.IsPrivate()) && o.IO.ErrOut != nil {
			fmt.Fprintf(o.IO.ErrOut, "zennet: --metrics %s is not on loopback or a private address: whoever reaches it sees your renters' keys and your earnings\n", c.Metrics)
		}
	}
	if o.TUI && (o.JSON || !cmdutil.IsTerminal(o.IO.Out)) {
		return cmdutil.Usagef("--tui needs a terminal (and no --json)")
	}
	if o.LND.set() && !o.Lightning {
		return cmdutil.Usagef("lnd flags given without --lightning: add --lightning to accept Lightning payments")
	}
	for i, m := range c.Accept {
		switch {
		case !slices.Contains(pay.Methods, m):
			return cmdutil.Usagef("--accept %q: not a payment method (say %s)", m, strings.Join(pay.Methods, ", "))
		case m == pay.MethodLightning && !o.Lightning:
			return cmdutil.Usagef("--accept lightning needs --lightning and the lnd flags of the node to be paid at")
		case slices.Contains(c.Accept[:i], m):
			return cmdutil.Usagef("--accept names %s twice", m)
		}
	}
	if c.MaxLeasesPerRenter < 0 {
		return cmdutil.Usagef("--max-leases-per-renter must be at least 0 (0: --max-leases)")
	}
	if c.MaxSharePerRenter, err = parseShare(o.RenterShare); err != nil {
		return cmdutil.Usagef("--max-share-per-renter: %v", err)
	}
	switch c.Platform {
	case "", "systrap", "ptrace", "kvm":
	default:
		return cmdutil.Usagef("--platform %q is not one of systrap, ptrace, kvm", c.Platform)
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	if o.Disk == "" {
		c.Disk = provider.DefaultDisk(abs)
	} else if c.Disk, err = cmdutil.ParseSize(o.Disk); err != nil {
		return cmdutil.Usagef("--disk: %v", err)
	}
	if c.Disk < provider.MinDisk {
		return cmdutil.Usagef("--disk: %s is too little to sell (at least %s)", cmdutil.FormatSize(c.Disk), cmdutil.FormatSize(provider.MinDisk))
	}
	return nil
}

// runProvide runs the provider until ctx ends (or, with --tui, the
// dashboard quits). If ready is not nil it receives the provider's info
// once it takes renters, and nothing is printed of it.
func runProvide(ctx context.Context, o *provideOptions, ready chan<- provider.Info) error {
	cfg := o.cfg
	logOut := o.IO.ErrOut
	if o.TUI {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(cfg.DataDir, "provider.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		logOut = f
	}
	var err error
	if cfg.Log, err = o.G.Logger(logOut); err != nil {
		return err
	}
	if o.Lightning {
		cfg.Lightning = o.LND.dial
	}
	cfg.Version = Version()
	cfg.Serve = func(ctx context.Context, p *provider.Provider) (func(), error) {
		return serveControl(ctx, p, cfg.DataDir, cfg.Metrics)
	}
	var p *provider.Provider
	tctx, stopTUI := context.WithCancel(ctx)
	defer stopTUI()
	var tuiDone chan error  // the dashboard's end, once it runs
	var started atomic.Bool // the provider took renters: it has a run to sum up
	cfg.Events = func(e provider.Event) {
		st, ok := e.(provider.Started)
		if ok {
			started.Store(true)
		}
		switch {
		case !ok:
			printProviderEvent(o.IO, e)
		case ready != nil:
			ready <- st.Info
		case o.TUI:
			tuiDone = make(chan error, 1)
			go func() {
				// q (or Ctrl-C in the dashboard) leaves the dashboard, as
				// its help says; the provider keeps serving its renters
				// until Ctrl-C or SIGTERM reaches the process.
				err := runDashboard(tctx, o.IO, cfg.DataDir, time.Second)
				if tctx.Err() == nil {
					if err != nil {
						fmt.Fprintf(o.IO.ErrOut, "zennet: dashboard: %v\n", err)
					}
					fmt.Fprintf(o.IO.ErrOut, "zennet: dashboard closed; still providing on %s (log: %s); Ctrl-C stops the provider, 'zennet dashboard --data-dir %s' shows it again\n",
						st.Info.Address, filepath.Join(cfg.DataDir, "provider.log"), cfg.DataDir)
					err = nil
				}
				tuiDone <- err
			}()
		case o.JSON:
			cmdutil.WriteJSONLine(o.IO.Out, cmdutil.KindProvider, st.Info)
		default:
			fmt.Fprintf(o.IO.ErrOut, "zennet: providing on %s (host key %s); %d leases, %s, %.4g CPUs; Ctrl-C stops\n",
				st.Info.Address, st.Info.Fingerprint, st.Info.MaxLeases, cmdutil.FormatSize(st.Info.MemoryBytes), st.Info.CPUs)
		}
	}
	if p, err = provider.New(cfg); err != nil {
		if errors.Is(err, provider.ErrLocked) {
			return cmdutil.ConflictError{Err: err}
		}
		return err
	}
	err = p.Run(ctx)
	if tuiDone != nil {
		stopTUI()
		err = errors.Join(<-tuiDone, err)
	}
	if started.Load() && ready == nil && !o.JSON {
		printStopSummary(o.IO, p)
	}
	return err
}

// printStopSummary says in one line what the provider did in this run,
// once it has stopped.
func printStopSummary(io cmdutil.IOStreams, src interface {
	Status(context.Context) (provider.Status, error)
}) {
	st, err := src.Status(context.Background())
	if err != nil || st.Identity.Started.IsZero() {
		return
	}
	line := fmt.Sprintf("zennet: provider stopped after %s: earned %d msat this run", time.Since(st.Identity.Started).Round(time.Second), st.Earnings.SessionMsat)
	if st.PaymentFailures > 0 {
		line += fmt.Sprintf(", %s failed or refused", cmdutil.Plural(int(st.PaymentFailures), "payment"))
	}
	fmt.Fprintln(io.ErrOut, line)
}

// printProviderEvent says what the provider does on its way up.
func printProviderEvent(io cmdutil.IOStreams, e provider.Event) {
	switch e := e.(type) {
	case provider.ImageBuilding:
		fmt.Fprintf(io.ErrOut, "zennet: building the sandbox root filesystem at %s (once; about a minute) ...\n", e.Path)
	case provider.Recovered:
		fmt.Fprintf(io.ErrOut, "zennet: removed %d sandboxes left by an earlier run\n", e.Sandboxes)
	case provider.CalibrationWaiting:
		fmt.Fprintln(io.ErrOut, "zennet: waiting for another provider calibrating this machine ...")
	case provider.Calibrating:
		fmt.Fprintf(io.ErrOut, "zennet: calibrating this machine: %d steps of the canonical benchmark suite in a sandbox, once per machine (about a minute) ...\n", e.Steps)
	case provider.Calibrated:
		fmt.Fprintf(io.ErrOut, "zennet: calibrated in %s\n", e.Took.Round(time.Second))
	case provider.FlatRates:
		fmt.Fprintf(io.ErrOut, "zennet: offering flat rates (--rate): renters would refuse a price per unit of work from this calibration: %s\n", e.Reason)
	}
}

// serveControl serves p on the control socket in dataDir and, if metrics
// is not "", its Prometheus metrics there; stop closes both.
func serveControl(ctx context.Context, p *provider.Provider, dataDir, metrics string) (stop func(), err error) {
	ctl, err := control.Serve(ctx, control.SocketPath(dataDir), p)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if metrics == "" {
		return func() { ctl.Close() }, nil
	}
	m, err := control.ServeMetrics(ctx, metrics, p)
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("--metrics %s: %w", metrics, err)
	}
	return func() {
		m.Close()
		ctl.Close()
	}, nil
}

// parseShare reads a share of the capacity: a percentage (25%) or a
// fraction (0.25), more than 0 and at most all of it.
func parseShare(s string) (float64, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a share: say a percentage (25%%) or a fraction (0.25)", s)
	}
	if pct {
		f /= 100
	}
	if !(f > 0 && f <= 1) {
		return 0, fmt.Errorf("%q: a share is more than 0 and at most 100%%", s)
	}
	return f, nil
}
