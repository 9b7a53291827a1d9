package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/idle"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/netsandbox"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/sandbox"
	"github.com/zennet/zennet/sshgate"
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

	busyAbove, idleBelow idle.Threshold

	rates pay.Rates

	policy   netsandbox.Policy
	services []netsandbox.Service

	memoryBytes int64
	diskBytes   int64
}

func newCmdProvide(io IOStreams, g *globalOptions) *cobra.Command {
	o := &provideOptions{IO: io, G: g}
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
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runProvide(ctx, o, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", envOr("ZENNET_LISTEN", ":2222"), "address of the SSH gateway")
	f.StringVar(&o.DataDir, "data-dir", filepath.Join(defaultDataDir(), "provider"), "provider state: host key, leases, sandboxes (env ZENNET_DATA_DIR)")
	f.StringVar(&o.Runsc, "runsc", envOr("ZENNET_RUNSC", ""), "runsc binary (default: the pinned build in the cache, then PATH)")
	f.StringVar(&o.Image, "image", envOr("ZENNET_IMAGE", filepath.Join(defaultCacheDir(), "images", "bookworm")), "root filesystem of the sandboxes (built with mmdebstrap if missing)")
	f.StringVar(&o.Platform, "platform", envOr("ZENNET_PLATFORM", ""), "runsc platform: systrap (default), ptrace or kvm")
	f.StringVar(&o.AgentBinary, "agent-binary", envOr("ZENNET_AGENT_BINARY", ""), "static zennet binary bound into sandboxes (default: this binary)")
	f.StringVar(&o.ServeBinary, "serve-binary", envOr("ZENNET_SERVE_BINARY", ""), "static zennet-agent binary that serves each SSH connection inside a sandbox (default: zennet-agent next to the agent binary, else the agent binary itself)")
	f.IntVar(&o.MaxLeases, "max-leases", 64, "most leases at once")
	f.StringVar(&o.Memory, "memory", "", "memory to sell in all (default: this machine's memory less 1G)")
	f.Float64Var(&o.CPUs, "cpus", float64(4*runtime.NumCPU()), "CPU quota to sell in all, in cores (quotas cap, they do not reserve)")
	f.StringVar(&o.Disk, "disk", "", "disk to sell in all (default: 90% of the data dir's free space)")
	f.Int64Var(&o.Pids, "pids", 1024, "most processes and threads in one sandbox")
	f.StringVar(&o.Egress, "egress", envOr("ZENNET_EGRESS", "public"), "what sandboxes may reach: public (the internet, never this machine or its private networks) or none")
	f.StringArrayVar(&o.Publish, "publish", nil, "a service of this machine's to open to every sandbox: [NAME[:PORT]=]HOST:PORT (repeatable)")
	f.BoolVar(&o.JSON, "json", false, "print the provider's address and key as JSON once it is ready")
	f.StringArrayVar(&o.Rates, "rate", nil, "flat price of a meter counter instead of the price model: COUNTER=MSAT_PER_UNIT, e.g. cpu_ns=1/10000000 (repeatable)")
	f.Float64Var(&o.PerWork, "price-per-work", DefaultPricePerWork, "price model: msat for the work the reference machine does in a CPU-second; the rates are fitted to this machine's calibration")
	f.Float64Var(&o.MinPerWork, "min-price-per-work", 0, "the least price per work to take when a renter counters with a lower bid (0: no discounts; at most --price-per-work)")
	f.StringSliceVar(&o.Peers, "peer", splitList(os.Getenv("ZENNET_PEERS")), "another provider to exchange announcements with, HOST:PORT (repeatable; env ZENNET_PEERS)")
	f.StringVar(&o.Announce, "announce", envOr("ZENNET_ANNOUNCE", ""), "address renters reach this provider at, HOST:PORT, announced to the market (default: --listen's, when it names a host)")
	f.BoolVar(&o.WhenIdle, "when-idle", false, "lend the machine only while its owner leaves it alone: pause (or throttle) every lease while the owner is busy")
	f.StringVar(&o.BusyAbove, "busy-above", idle.DefaultBusyAbove.String(), "with --when-idle: the owner is busy above this load, in cores (0.5) or of the machine (25%)")
	f.StringVar(&o.IdleBelow, "idle-below", idle.DefaultIdleBelow.String(), "with --when-idle: the owner is idle again below this load")
	f.DurationVar(&o.BusyFor, "busy-for", idle.DefaultBusyFor, "with --when-idle: how long the load must stay above --busy-above")
	f.DurationVar(&o.IdleFor, "idle-for", idle.DefaultIdleFor, "with --when-idle: how long the load must stay below --idle-below")
	f.Float64Var(&o.Throttle, "throttle", 0, "with --when-idle: between the thresholds, scale leases' CPU quotas by this factor (0 < f < 1) instead of waiting to pause them")
	f.DurationVar(&o.Every, "announce-every", time.Minute, "how often to look at this provider's offer (announced anew when it changed) and exchange announcements with a peer")
	f.UintVar(&o.PowBits, "pow-bits", defaultPowBits, "proof of work to ask of announcements received, in bits (each bit doubles a sender's cost)")
	f.StringVar(&o.Calibration, "calibration", envOr("ZENNET_CALIBRATION", "auto"), "calibration to offer: auto (benchmark this machine on first start, cached), off, or a signed calibration set FILE")
	f.Uint64Var(&o.MinPayment, "min-payment", 0, "least amount to ask at once, msat (the method's own minimum applies too)")
	f.IntVar(&o.Grace, "grace", sshgate.DefaultGraceIntervals, "report intervals a bill may stay unpaid before the host is paused")
	f.DurationVar(&o.Unpaid, "unpaid-timeout", sshgate.DefaultUnpaidTimeout, "end a lease whose bill stays unpaid this long")
	f.BoolVar(&o.Lightning, "lightning", false, "also accept Lightning payments, to the lnd node the --lnddir flags name")
	o.LND.register(f)
	f.StringVar(&o.Metrics, "metrics", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9464 (off by default)")
	f.BoolVar(&o.TUI, "tui", false, "show the dashboard while providing (logs go to DATA_DIR/provider.log; q stops the provider)")
	return cmd
}

// Validate checks the options and fills defaults that need the machine.
func (o *provideOptions) Validate() error {
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return usagef("--listen %q is not HOST:PORT", o.Listen)
	}
	if o.MaxLeases < 1 {
		return usagef("--max-leases must be at least 1")
	}
	if !(o.CPUs > 0) {
		return usagef("--cpus must be more than 0")
	}
	if o.Memory == "" {
		total, err := hostMemory()
		if err != nil {
			return err
		}
		o.memoryBytes = max(total-1<<30, total/2)
	} else {
		m, err := ParseSize(o.Memory)
		if err != nil {
			return usagef("--memory: %v", err)
		}
		o.memoryBytes = m
	}
	var err error
	if o.policy, err = netsandbox.ParsePolicy(o.Egress); err != nil {
		return usagef("--egress: %v", err)
	}
	o.services = nil
	for _, p := range o.Publish {
		svc, err := netsandbox.ParseService(p)
		if err != nil {
			return usagef("--publish %q: %v", p, err)
		}
		o.services = append(o.services, svc)
	}
	if o.Pids < 16 {
		return usagef("--pids must be at least 16")
	}
	if o.rates, err = counterRates(defaultRates, o.Rates); err != nil {
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
		var err error
		if o.busyAbove, err = idle.ParseThreshold(o.BusyAbove); err != nil {
			return usagef("--busy-above: %v", err)
		}
		if o.idleBelow, err = idle.ParseThreshold(o.IdleBelow); err != nil {
			return usagef("--idle-below: %v", err)
		}
		p := idle.Policy{BusyAbove: o.busyAbove, IdleBelow: o.idleBelow, BusyFor: o.BusyFor, IdleFor: o.IdleFor, ThrottleFactor: o.Throttle}
		if err := p.Validate(); err != nil {
			return usagef("--when-idle: %v", err)
		}
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
	o.DataDir = abs
	if o.Disk != "" {
		d, err := ParseSize(o.Disk)
		if err != nil {
			return usagef("--disk: %v", err)
		}
		o.diskBytes = d
	} else {
		o.diskBytes = freeDisk(o.DataDir) / 10 * 9
	}
	if o.diskBytes < 64<<20 {
		return usagef("--disk: %s is too little to sell (at least 64M)", FormatSize(o.diskBytes))
	}
	return nil
}

// defaultRates are a provider's prices unless --rate says otherwise: 0.1
// sat per CPU-second, 1 sat per GiB-hour of memory used, 1 sat per GiB of
// network traffic each way.
var defaultRates = map[meter.Counter]string{
	meter.CPU:         "1/10000000",
	meter.MemoryTime:  "1/3686400",
	meter.NetInBytes:  "125/134217728",
	meter.NetOutBytes: "125/134217728",
}

// freeDisk returns the bytes free to unprivileged users on the file system
// that holds dir (or its nearest existing parent).
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

func hostMemory() (int64, error) {
	f, err := os.Open("/proc/meminfo")
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
	return 0, errors.New("no MemTotal in /proc/meminfo")
}

// findRunsc returns the runsc to use: the flag, the pinned build in the
// cache ('make runsc' puts it there), then PATH.
func findRunsc(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	cached := filepath.Join(defaultCacheDir(), "bin", "runsc")
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	if p, err := exec.LookPath("runsc"); err == nil {
		return p, nil
	}
	return "", errors.New("no runsc found: run 'make runsc' (builds the pinned gVisor into " + cached + ") or pass --runsc")
}

// lockDataDir takes the data dir's lock for the life of the process.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "provider.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(f.Name())
		f.Close()
		pid := strings.TrimSpace(string(b))
		return nil, conflictError{fmt.Errorf("another zennet provider (pid %s) is running on data dir %s; stop it or pass another --data-dir", pid, dir)}
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

type providerInfo struct {
	Address     string  `json:"address"`
	HostKey     string  `json:"host_key"`
	Fingerprint string  `json:"fingerprint"`
	DataDir     string  `json:"data_dir"`
	MaxLeases   int     `json:"max_leases"`
	MemoryBytes int64   `json:"memory_bytes"`
	CPUs        float64 `json:"cpus"`
	// Pid is the provider's process: a provider.json whose process is
	// gone is stale (left by a crash).
	Pid int `json:"pid"`
}

// runProvide serves until ctx ends. If ready is not nil it receives the
// provider's address once the gateway listens.
func runProvide(ctx context.Context, o *provideOptions, ready chan<- providerInfo) error {
	lock, err := lockDataDir(o.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	os.Remove(filepath.Join(o.DataDir, "provider.json")) // a crashed run's
	logOut := o.IO.ErrOut
	if o.TUI {
		f, err := os.OpenFile(filepath.Join(o.DataDir, "provider.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		logOut = f
	}
	plain, err := o.G.logger(logOut)
	if err != nil {
		return err
	}
	logs := newLogRing(plain.Handler())
	log := slog.New(logs)
	runsc, err := findRunsc(o.Runsc)
	if err != nil {
		return err
	}
	agent, err := agentBinary(o.AgentBinary)
	if err != nil {
		return err
	}
	serve := o.ServeBinary
	if serve == "" {
		if serve = lease.FindServeBinary(agent); serve == "" {
			log.Info("no zennet-agent next to the agent binary: SSH sessions are served by the full zennet binary, which starts slower and takes more of each sandbox's memory ('make build' builds both)", "agent", agent)
		}
	} else if err := lease.CheckAgentBinary(serve); err != nil {
		return fmt.Errorf("--serve-binary: %w", err)
	}
	if sandbox.CheckImage(o.Image) != nil {
		fmt.Fprintf(o.IO.ErrOut, "zennet: building the sandbox root filesystem at %s (once; about a minute) ...\n", o.Image)
		if err := sandbox.BuildImage(ctx, o.Image, ""); err != nil {
			return err
		}
	}
	nets, err := netsandbox.New(netsandbox.Config{Policy: o.policy, Services: o.services, Log: log})
	if err != nil {
		return err
	}
	defer nets.Close()
	rt, err := sandbox.New(sandbox.Config{Runsc: runsc, Image: o.Image, StateDir: filepath.Join(o.DataDir, "sandboxes"), Platform: o.Platform, Networks: nets, Log: log})
	if err != nil {
		return err
	}
	hostKey, err := loadOrCreateKey(filepath.Join(o.DataDir, "host_key"), "zennet provider")
	if err != nil {
		return err
	}
	calib, err := providerCalibration(ctx, o, rt, runsc, agent, hostKey, log)
	if err != nil {
		return err
	}
	calibJSON, err := calibrationJSON(calib)
	if err != nil {
		return err
	}
	// The price model's rates, unless flat rates were asked for (or there
	// is no calibration to fit them from).
	rates, perWork, floor := o.rates, 0.0, 0.0
	var ratesAt func(float64) (pay.Rates, error)
	if calib != nil && len(o.Rates) == 0 {
		if rates, _, err = modelRates(calib, o.PerWork); err != nil {
			return fmt.Errorf("price this machine's calibration: %w (or give flat prices with --rate)", err)
		}
		perWork, floor = o.PerWork, o.MinPerWork
		ratesAt = func(price float64) (pay.Rates, error) {
			r, _, err := modelRates(calib, price)
			return r, err
		}
	} else if o.MinPerWork > 0 {
		log.Warn("--min-price-per-work is ignored: this provider offers flat rates")
	}
	var lnd *pay.LND
	if o.Lightning {
		if lnd, err = o.LND.dial(ctx); err != nil {
			return err
		}
		defer lnd.Close()
	}
	ledger, err := pay.Open(filepath.Join(o.DataDir, "ledger.db"), &pay.Options{Logger: log})
	if err != nil {
		return err
	}
	defer ledger.Close()
	mgr, err := lease.New(lease.Config{Signer: hostKey,
		Runtime: rt, AgentBinary: agent, ServeBinary: serve, Dir: filepath.Join(o.DataDir, "leases"), Log: log,
		Capacity: lease.Capacity{Leases: o.MaxLeases, Memory: o.memoryBytes, CPUs: o.CPUs, Disk: o.diskBytes}, Pids: o.Pids,
	})
	if err != nil {
		return err
	}
	if n, err := mgr.Recover(ctx); err != nil {
		return fmt.Errorf("clean up after an earlier run: %w", err)
	} else if n > 0 {
		fmt.Fprintf(o.IO.ErrOut, "zennet: removed %d sandboxes left by an earlier run\n", n)
	}
	ctl := newProviderControl(providerInfo{}, mgr, ledger, logs)
	billing, err := sshgate.NewBilling(sshgate.BillingConfig{Ledger: ledger, Leases: mgr, HostKey: hostKey, Rates: rates,
		MinPayable: o.MinPayment, GraceIntervals: o.Grace, UnpaidTimeout: o.Unpaid, LND: lnd, Log: log, OnCredit: ctl.credit,
		Calibration: calibJSON, PricePerWork: perWork, MinPricePerWork: floor, RatesAt: ratesAt, Reputation: market.OpenBook(market.BookPath(o.DataDir))})
	if err != nil {
		return err
	}
	if n, err := billing.Recover(ctx); err != nil {
		log.Warn("settle the accounts of an earlier run", "err", err)
	} else if n > 0 {
		log.Info("closed the accounts of an earlier run", "leases", n)
	}
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	announce := o.Announce
	if h, _, _ := net.SplitHostPort(l.Addr().String()); announce == "" && !net.ParseIP(h).IsUnspecified() {
		announce = l.Addr().String()
	}
	var announcer func() market.Announcement
	if announce != "" {
		digest := ""
		if calib != nil {
			digest, _ = calib.Digest()
		}
		score := relativeScore(calib)
		announcer = func() market.Announcement {
			free := mgr.Free()
			if mgr.Draining() {
				free = lease.Capacity{}
			}
			return market.Announcement{Address: announce,
				Capacity:         market.Capacity{Leases: max(free.Leases, 0), MemoryBytes: max(free.Memory, 0), CPUs: max(free.CPUs, 0), DiskBytes: max(free.Disk, 0)},
				PricePerWorkMsat: perWork, Score: score, Calibration: digest, Methods: billing.Methods()}
		}
	}
	transport := sshgate.NewGossipTransport(hostKey)
	defer transport.Close()
	gossip := market.NewNode(market.NodeConfig{Signer: hostKey, Transport: transport, Announce: announcer, Peers: o.Peers, MinBits: o.PowBits, Every: o.Every, Log: log})
	gw := sshgate.NewGateway(hostKey, mgr, billing, sshgate.WithLogger(log), sshgate.WithGossip(gossip))
	info := providerInfo{
		Address: l.Addr().String(), HostKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(hostKey.PublicKey()))),
		Fingerprint: gossh.FingerprintSHA256(hostKey.PublicKey()), DataDir: o.DataDir,
		MaxLeases: o.MaxLeases, MemoryBytes: o.memoryBytes, CPUs: o.CPUs, Pid: os.Getpid(),
	}
	ctl.info, ctl.billing, ctl.gw = info, billing, gw
	if o.WhenIdle {
		if _, err := startIdleKeeper(ctx, o, mgr, rt, gw, log); err != nil {
			l.Close()
			return err
		}
	}
	ctlSrv, err := control.Serve(ctx, control.SocketPath(o.DataDir), ctl)
	if err != nil {
		l.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	defer ctlSrv.Close()
	if o.Metrics != "" {
		m, err := control.ServeMetrics(ctx, o.Metrics, ctl)
		if err != nil {
			l.Close()
			return fmt.Errorf("--metrics %s: %w", o.Metrics, err)
		}
		defer m.Close()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- gw.Serve(l) }()
	gctx, stopGossip := context.WithCancel(ctx)
	gossipDone := make(chan struct{})
	go func() {
		defer close(gossipDone)
		gossip.Run(gctx)
	}()
	defer func() {
		stopGossip()
		<-gossipDone
	}()
	// provider.json tells scripts (and the dashboard) where this provider
	// listens; it exists only while the provider runs.
	infoPath := filepath.Join(o.DataDir, "provider.json")
	if err := writeFileJSON(infoPath, "provider", info); err != nil {
		return err
	}
	defer os.Remove(infoPath)
	tuiDone := make(chan error, 1)
	if ready != nil {
		ready <- info
	} else if o.TUI {
		go func() { tuiDone <- runDashboard(ctx, o.IO, ctl, time.Second) }()
	} else if o.JSON {
		writeJSON(o.IO.Out, "provider", info)
	} else {
		fmt.Fprintf(o.IO.ErrOut, "zennet: providing on %s (host key %s); %d leases, %s, %.4g CPUs; Ctrl-C stops\n",
			info.Address, info.Fingerprint, o.MaxLeases, FormatSize(o.memoryBytes), o.CPUs)
	}
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	case err = <-tuiDone:
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
			mgr.Terminate(sctx, le.ID, "the provider is shutting down")
		}()
	}
	wg.Wait()
	billing.WaitSettled(sctx, 5*time.Second)
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
