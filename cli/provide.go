package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/idle"
	"github.com/zennet/zennet/netsandbox"
	"github.com/zennet/zennet/provider"
)

type provideOptions struct {
	IO          IOStreams
	G           *globalOptions
	Listen      string
	DataDir     string
	Runsc       string
	Image       string
	Platform    string
	AgentBinary string
	ServeBinary string
	MaxLeases   int
	Memory      string
	CPUs        float64
	Disk        string
	Pids        int64
	Egress      string
	Publish     []string
	JSON        bool
	Rates       []string
	MinPayment  uint64
	Grace       int
	Unpaid      time.Duration
	Lightning   bool
	LND         lndFlags
	Metrics     string
	TUI         bool
	Calibration string
	PerWork     float64
	MinPerWork  float64
	Peers       []string
	Announce    string
	PowBits     uint
	Every       time.Duration
	WhenIdle    bool
	BusyAbove   string
	IdleBelow   string
	BusyFor     time.Duration
	IdleFor     time.Duration
	Throttle    float64

	// cfg is what Validate makes of the flags.
	cfg provider.Config
}

// newProvideOptions returns the provider's defaults (provider.DefaultConfig,
// the default paths, the environment): the flags' defaults, and the demo's
// providers'.
func newProvideOptions(io IOStreams, g *globalOptions) *provideOptions {
	def := provider.DefaultConfig()
	return &provideOptions{IO: io, G: g,
		Listen:      envOr("ZENNET_LISTEN", def.Listen),
		DataDir:     defaultProviderDataDir(),
		Runsc:       envOr("ZENNET_RUNSC", ""),
		Image:       envOr("ZENNET_IMAGE", filepath.Join(defaultCacheDir(), "images", "bookworm")),
		Platform:    envOr("ZENNET_PLATFORM", ""),
		AgentBinary: envOr("ZENNET_AGENT_BINARY", ""),
		ServeBinary: envOr("ZENNET_SERVE_BINARY", ""),
		MaxLeases:   def.MaxLeases,
		CPUs:        def.CPUs,
		Pids:        def.Pids,
		Egress:      envOr("ZENNET_EGRESS", def.Egress.String()),
		PerWork:     def.PricePerWork,
		MinPerWork:  def.MinPricePerWork,
		Peers:       splitList(os.Getenv("ZENNET_PEERS")),
		Announce:    envOr("ZENNET_ANNOUNCE", def.Announce),
		BusyAbove:   idle.DefaultBusyAbove.String(),
		IdleBelow:   idle.DefaultIdleBelow.String(),
		BusyFor:     idle.DefaultBusyFor,
		IdleFor:     idle.DefaultIdleFor,
		Every:       def.AnnounceEvery,
		PowBits:     def.PowBits,
		Calibration: envOr("ZENNET_CALIBRATION", def.Calibration),
		MinPayment:  def.MinPayment,
		Grace:       def.Grace,
		Unpaid:      def.UnpaidTimeout,
	}
}

func newCmdProvide(io IOStreams, g *globalOptions) *cobra.Command {
	o := newProvideOptions(io, g)
	cmd := &cobra.Command{
		Use:   "provide",
		Short: "Sell this machine's capacity as gVisor-sandboxed SSH hosts",
		Long: `provide runs an SSH gateway that renters negotiate leases with. Each lease is
a gVisor sandbox (runsc) with the agreed memory and CPU, reachable only with the
renter's key. Stop it with Ctrl-C: every lease ends and every sandbox is destroyed.`,
		Example: "  zennet provide --listen 127.0.0.1:2222\n  zennet provide --listen :2222 --max-leases 20 --memory 16G",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return runProvide(cmd.Context(), o, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", o.Listen, "address of the SSH gateway")
	f.StringVar(&o.DataDir, "data-dir", o.DataDir, "provider state: host key, leases, sandboxes (env ZENNET_DATA_DIR)")
	f.StringVar(&o.Runsc, "runsc", o.Runsc, "runsc binary (default: the pinned build in the cache, then PATH)")
	f.StringVar(&o.Image, "image", o.Image, "root filesystem of the sandboxes (built with mmdebstrap if missing)")
	f.StringVar(&o.Platform, "platform", o.Platform, "runsc platform: systrap (default), ptrace or kvm")
	f.StringVar(&o.AgentBinary, "agent-binary", o.AgentBinary, "static zennet binary bound into sandboxes (default: this binary)")
	f.StringVar(&o.ServeBinary, "serve-binary", o.ServeBinary, "static zennet-agent binary that serves each SSH connection inside a sandbox (default: zennet-agent next to the agent binary, else the agent binary itself)")
	f.IntVar(&o.MaxLeases, "max-leases", o.MaxLeases, "most leases at once")
	f.StringVar(&o.Memory, "memory", o.Memory, "memory to sell in all (default: this machine's memory less 1G)")
	f.Float64Var(&o.CPUs, "cpus", o.CPUs, "CPU quota to sell in all, in cores (quotas cap, they do not reserve)")
	f.StringVar(&o.Disk, "disk", o.Disk, "disk to sell in all (default: 90% of the data dir's free space)")
	f.Int64Var(&o.Pids, "pids", o.Pids, "most processes and threads in one sandbox")
	f.StringVar(&o.Egress, "egress", o.Egress, "what sandboxes may reach: public (the internet, never this machine or its private networks) or none")
	f.StringArrayVar(&o.Publish, "publish", nil, "a service of this machine's to open to every sandbox: [NAME[:PORT]=]HOST:PORT (repeatable)")
	f.BoolVar(&o.JSON, "json", false, "print the provider's address and key as JSON once it is ready")
	f.StringArrayVar(&o.Rates, "rate", nil, "flat price of a meter counter instead of the price model: COUNTER=MSAT_PER_UNIT, e.g. cpu_ns=1/10000000 (repeatable)")
	f.Float64Var(&o.PerWork, "price-per-work", o.PerWork, "price model: msat for the work the reference machine does in a CPU-second; the rates are fitted to this machine's calibration")
	f.Float64Var(&o.MinPerWork, "min-price-per-work", o.MinPerWork, "the least price per work to take when a renter counters with a lower bid (0: no discounts; at most --price-per-work)")
	f.StringSliceVar(&o.Peers, "peer", o.Peers, "another provider to exchange announcements with, HOST:PORT (repeatable; env ZENNET_PEERS)")
	f.StringVar(&o.Announce, "announce", o.Announce, "address renters reach this provider at, HOST:PORT, announced to the market (default: --listen's, when it names a host)")
	f.BoolVar(&o.WhenIdle, "when-idle", false, "lend the machine only while its owner leaves it alone: pause (or throttle) every lease while the owner is busy")
	f.StringVar(&o.BusyAbove, "busy-above", o.BusyAbove, "with --when-idle: the owner is busy above this load, in cores (0.5) or of the machine (25%)")
	f.StringVar(&o.IdleBelow, "idle-below", o.IdleBelow, "with --when-idle: the owner is idle again below this load")
	f.DurationVar(&o.BusyFor, "busy-for", o.BusyFor, "with --when-idle: how long the load must stay above --busy-above")
	f.DurationVar(&o.IdleFor, "idle-for", o.IdleFor, "with --when-idle: how long the load must stay below --idle-below")
	f.Float64Var(&o.Throttle, "throttle", 0, "with --when-idle: between the thresholds, scale leases' CPU quotas by this factor (0 < f < 1) instead of waiting to pause them")
	f.DurationVar(&o.Every, "announce-every", o.Every, "how often to announce this provider to the market and exchange announcements with a peer")
	f.UintVar(&o.PowBits, "pow-bits", o.PowBits, "proof of work to ask of announcements received, in bits (each bit doubles a sender's cost)")
	f.StringVar(&o.Calibration, "calibration", o.Calibration, "calibration to offer: auto (benchmark this machine on first start, cached), off, or a signed calibration set FILE")
	f.Uint64Var(&o.MinPayment, "min-payment", o.MinPayment, "least amount to ask at once, msat (the method's own minimum applies too)")
	f.IntVar(&o.Grace, "grace", o.Grace, "report intervals a bill may stay unpaid before the host is paused")
	f.DurationVar(&o.Unpaid, "unpaid-timeout", o.Unpaid, "end a lease whose bill stays unpaid this long")
	f.BoolVar(&o.Lightning, "lightning", false, "also accept Lightning payments, to the lnd node the --lnddir flags name")
	o.LND.register(f)
	f.StringVar(&o.Metrics, "metrics", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9464 (off by default)")
	f.BoolVar(&o.TUI, "tui", false, "show the dashboard while providing (logs go to DATA_DIR/provider.log; q stops the provider)")
	return cmd
}

// Validate checks the options and makes the provider's Config of them,
// with the defaults that need the machine.
func (o *provideOptions) Validate() error {
	c := provider.DefaultConfig()
	c.Listen, c.CacheDir, c.Runsc, c.Image, c.Platform = o.Listen, defaultCacheDir(), o.Runsc, o.Image, o.Platform
	c.AgentBinary, c.ServeBinary, c.MaxLeases, c.CPUs, c.Pids = o.AgentBinary, o.ServeBinary, o.MaxLeases, o.CPUs, o.Pids
	c.PricePerWork, c.MinPricePerWork, c.Calibration = o.PerWork, o.MinPerWork, o.Calibration
	c.MinPayment, c.Grace, c.UnpaidTimeout, c.Metrics = o.MinPayment, o.Grace, o.Unpaid, o.Metrics
	c.Peers, c.Announce, c.PowBits, c.AnnounceEvery = o.Peers, o.Announce, o.PowBits, o.Every
	c.FlatRates = len(o.Rates) > 0
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return usagef("--listen %q is not HOST:PORT", o.Listen)
	}
	if o.MaxLeases < 1 {
		return usagef("--max-leases must be at least 1")
	}
	if !(o.CPUs > 0) {
		return usagef("--cpus must be more than 0")
	}
	var err error
	if o.Memory == "" {
		if c.Memory, err = provider.DefaultMemory(); err != nil {
			return err
		}
	} else if c.Memory, err = ParseSize(o.Memory); err != nil {
		return usagef("--memory: %v", err)
	}
	if c.Egress, err = netsandbox.ParsePolicy(o.Egress); err != nil {
		return usagef("--egress: %v", err)
	}
	for _, p := range o.Publish {
		svc, err := netsandbox.ParseService(p)
		if err != nil {
			return usagef("--publish %q: %v", p, err)
		}
		c.Publish = append(c.Publish, svc)
	}
	if o.Pids < 16 {
		return usagef("--pids must be at least 16")
	}
	if c.Rates, err = counterRates(provider.DefaultRates, o.Rates); err != nil {
		return err
	}
	if !(o.PerWork > 0 && o.PerWork < 1e12) {
		return usagef("--price-per-work %v: must be a positive number of msat", o.PerWork)
	}
	if !(o.MinPerWork >= 0 && o.MinPerWork <= o.PerWork) {
		return usagef("--min-price-per-work %v: must be between 0 (no discounts) and --price-per-work %v", o.MinPerWork, o.PerWork)
	}
	if o.Calibration == "" {
		return usagef("--calibration: say auto, off or a calibration set FILE")
	}
	if o.Calibration != "auto" && o.Calibration != "off" {
		if _, err := os.Stat(o.Calibration); err != nil {
			return usagef("--calibration %s: %v (say auto, off or a calibration set FILE)", o.Calibration, err)
		}
	}
	if o.Grace < 1 {
		return usagef("--grace must be at least 1 interval")
	}
	if o.Unpaid < time.Second {
		return usagef("--unpaid-timeout must be at least 1s")
	}
	for _, p := range o.Peers {
		if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			return usagef("--peer %q is not HOST:PORT", p)
		}
	}
	if o.Announce != "" {
		if h, port, err := net.SplitHostPort(o.Announce); err != nil || port == "" || h == "" || net.ParseIP(h) != nil && net.ParseIP(h).IsUnspecified() {
			return usagef("--announce %q is not a HOST:PORT renters can dial", o.Announce)
		}
	}
	if o.WhenIdle {
		p := idle.Policy{BusyFor: o.BusyFor, IdleFor: o.IdleFor, ThrottleFactor: o.Throttle}
		if p.BusyAbove, err = idle.ParseThreshold(o.BusyAbove); err != nil {
			return usagef("--busy-above: %v", err)
		}
		if p.IdleBelow, err = idle.ParseThreshold(o.IdleBelow); err != nil {
			return usagef("--idle-below: %v", err)
		}
		if err := p.Validate(); err != nil {
			return usagef("--when-idle: %v", err)
		}
		c.Idle = &p
	}
	if o.Every < 100*time.Millisecond {
		return usagef("--announce-every %s: at least 100ms", o.Every)
	}
	if o.PowBits > 40 {
		return usagef("--pow-bits %d: at most 40 (each bit doubles the work a sender does)", o.PowBits)
	}
	if o.Metrics != "" {
		if _, _, err := net.SplitHostPort(o.Metrics); err != nil {
			return usagef("--metrics %q is not HOST:PORT", o.Metrics)
		}
	}
	if o.TUI && (o.JSON || !isTerminal(o.IO.Out)) {
		return usagef("--tui needs a terminal (and no --json)")
	}
	if o.LND.set() && !o.Lightning {
		return usagef("lnd flags given without --lightning: add --lightning to accept Lightning payments")
	}
	switch o.Platform {
	case "", "systrap", "ptrace", "kvm":
	default:
		return usagef("--platform %q is not one of systrap, ptrace, kvm", o.Platform)
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	o.DataDir, c.DataDir = abs, abs
	if o.Disk == "" {
		c.Disk = provider.DefaultDisk(abs)
	} else if c.Disk, err = ParseSize(o.Disk); err != nil {
		return usagef("--disk: %v", err)
	}
	if c.Disk < provider.MinDisk {
		return usagef("--disk: %s is too little to sell (at least %s)", FormatSize(c.Disk), FormatSize(provider.MinDisk))
	}
	o.cfg = c
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
	if cfg.Log, err = o.G.logger(logOut); err != nil {
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
	var tuiDone chan error // the dashboard's end, once it runs
	cfg.Events = func(e provider.Event) {
		st, ok := e.(provider.Started)
		switch {
		case !ok:
			printProviderEvent(o.IO, e)
		case ready != nil:
			ready <- st.Info
		case o.TUI:
			tuiDone = make(chan error, 1)
			go func() {
				tuiDone <- runDashboard(tctx, o.IO, p, time.Second)
				p.Shutdown(context.WithoutCancel(tctx)) // q stops the provider
			}()
		case o.JSON:
			writeJSON(o.IO.Out, "provider", st.Info)
		default:
			fmt.Fprintf(o.IO.ErrOut, "zennet: providing on %s (host key %s); %d leases, %s, %.4g CPUs; Ctrl-C stops\n",
				st.Info.Address, st.Info.Fingerprint, st.Info.MaxLeases, FormatSize(st.Info.MemoryBytes), st.Info.CPUs)
		}
	}
	if p, err = provider.New(cfg); err != nil {
		if errors.Is(err, provider.ErrLocked) {
			return conflictError{err}
		}
		return err
	}
	err = p.Run(ctx)
	if tuiDone != nil {
		stopTUI()
		err = errors.Join(<-tuiDone, err)
	}
	return err
}

// printProviderEvent says what the provider does on its way up.
func printProviderEvent(io IOStreams, e provider.Event) {
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
