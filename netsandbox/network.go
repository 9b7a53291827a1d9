package netsandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containers/gvisor-tap-vsock/pkg/services/dns"
	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"golang.org/x/time/rate"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Domain is the DNS zone under which published services have their names.
const Domain = "zennet.internal"

// The layout of every sandbox network. Each network is its own world, so
// they all use the same addresses.
var (
	subnet    = netip.MustParsePrefix("10.0.2.0/24")
	gatewayIP = netip.MustParseAddr("10.0.2.1") // also the DNS server
	sandboxIP = netip.MustParseAddr("10.0.2.2")

	firstVIP   = netip.MustParseAddr("10.0.2.100")
	lastVIP    = netip.MustParseAddr("10.0.2.199")
	gatewayMAC = net.HardwareAddr{0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd}
)

// Defaults for Config.
const (
	DefaultMTU      = 65520
	DefaultMaxFlows = 1024
	// DefaultFlowRate is the new flows a sandbox may open a second.
	DefaultFlowRate = 100
)

const (
	dialTimeout = 10 * time.Second
	dnsTimeout  = 5 * time.Second
	udpIdle     = 60 * time.Second
	// tcpInFlight bounds handshakes the gateway completes at once (the
	// provider dials before it accepts); further SYNs are dropped and
	// retransmitted by the sandbox.
	tcpInFlight = 64
)

// Config is what every network of a Manager gets.
type Config struct {
	// Policy is the egress policy; the zero value is PolicyPublic.
	Policy Policy
	// Services are published into every network.
	Services []Service
	// MTU of the sandbox's interface; 0 means DefaultMTU. The sandbox's
	// frames end at the gateway, which opens its own connections outside,
	// so a large MTU changes nothing outside and saves work: fewer, larger
	// frames through the tap.
	MTU int
	// MaxFlows bounds the TCP connections and UDP flows a sandbox has open
	// through the gateway at once; 0 means DefaultMaxFlows.
	MaxFlows int
	// FlowRate bounds the new flows a sandbox opens a second, after a
	// burst of twice as many (a port scan from the provider's address
	// is abuse it answers for); 0 means DefaultFlowRate.
	FlowRate int
	// Deny are further destinations no sandbox may reach under
	// PolicyPublic: the provider's public address behind a NAT, ranges of
	// its own (--egress-deny).
	Deny []netip.Prefix
	// AllowSMTP lets sandboxes reach SMTP ports (25, 465, 587), denied by
	// default.
	AllowSMTP bool
	// Log receives lifecycle events; nil discards them.
	Log *slog.Logger
}

// ServiceAddr is where a published service is reachable inside a sandbox.
type ServiceAddr struct {
	Service
	// Addr is the virtual IP and port inside the sandbox.
	Addr netip.AddrPort
}

// Manager creates sandbox networks that share a configuration.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	services []ServiceAddr
	vips     map[netip.AddrPort]ServiceAddr
	hosts    *hostNets
	upstream upstream

	// testPublic are addresses tests treat as public under PolicyPublic,
	// standing in for the internet; the provider's own addresses and
	// subnets stay denied.
	testPublic []netip.Prefix

	// dns caches the resolver's answers for every sandbox and bounds
	// its lookups in flight.
	dns *dnsCache

	mu     sync.Mutex
	nets   map[*Network]struct{}
	closed bool
}

// upstream is the resolver the DNS server asks; net.DefaultResolver but
// in tests.
type upstream interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupCNAME(ctx context.Context, host string) (string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupNS(ctx context.Context, name string) ([]*net.NS, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// ErrClosed is returned by Create after Close.
var ErrClosed = errors.New("sandbox networks closed")

// New checks cfg, gives each published service its virtual IP and returns
// a manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Policy != PolicyPublic && cfg.Policy != PolicyNone {
		return nil, fmt.Errorf("unknown egress policy %v", cfg.Policy)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 576 || cfg.MTU > 65520 {
		return nil, fmt.Errorf("mtu %d out of range 576..65520", cfg.MTU)
	}
	if cfg.MaxFlows == 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.FlowRate == 0 {
		cfg.FlowRate = DefaultFlowRate
	}
	if cfg.FlowRate < 0 {
		return nil, fmt.Errorf("flow rate %d is negative", cfg.FlowRate)
	}
	for i, p := range cfg.Deny {
		if !p.IsValid() {
			return nil, fmt.Errorf("deny prefix %d is not valid", i)
		}
	}
	if cfg.MaxFlows < 0 {
		return nil, fmt.Errorf("max flows %d is negative", cfg.MaxFlows)
	}
	services, err := assignVIPs(cfg.Services)
	if err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		cfg:      cfg,
		log:      log.With("subsystem", "netsandbox"),
		services: services,
		vips:     map[netip.AddrPort]ServiceAddr{},
		hosts:    newHostNets(2 * time.Second),
		upstream: net.DefaultResolver,
		dns:      newDNSCache(),
		nets:     map[*Network]struct{}{},
	}
	for _, s := range services {
		m.vips[s.Addr] = s
	}
	return m, nil
}

// assignVIPs gives every name, and every unnamed service, a virtual IP.
func assignVIPs(svcs []Service) ([]ServiceAddr, error) {
	var out []ServiceAddr
	byName := map[string]netip.Addr{}
	seen := map[netip.AddrPort]bool{}
	next := firstVIP
	for _, s := range svcs {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("published service %q: %w", s.String(), err)
		}
		vip, ok := byName[s.Name]
		if !ok || s.Name == "" {
			if next.Compare(lastVIP) > 0 {
				return nil, errNoVIPs
			}
			vip, next = next, next.Next()
			if s.Name != "" {
				byName[s.Name] = vip
			}
		}
		port := s.Port
		if port == 0 {
			port = s.targetPort()
		}
		ap := netip.AddrPortFrom(vip, port)
		if seen[ap] {
			return nil, fmt.Errorf("published service %q: port %d of %q published twice", s.String(), port, s.Name)
		}
		seen[ap] = true
		out = append(out, ServiceAddr{Service: s, Addr: ap})
	}
	return out, nil
}

// Services returns where each published service is reachable inside a
// sandbox.
func (m *Manager) Services() []ServiceAddr { return append([]ServiceAddr(nil), m.services...) }

// Close closes every network the manager created and refuses new ones.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	nets := make([]*Network, 0, len(m.nets))
	for n := range m.nets {
		nets = append(nets, n)
	}
	m.mu.Unlock()
	// In parallel: removing a tap waits for the kernel (some 20 ms).
	errs := make([]error, len(nets))
	var wg sync.WaitGroup
	for i, n := range nets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Counters are a network's cumulative traffic. They only grow.
type Counters struct {
	// BytesIn and PacketsIn are the Ethernet frames the sandbox received,
	// headers included, on eth0 and on its cluster link (eth1) alike.
	BytesIn, PacketsIn uint64
	// BytesOut and PacketsOut are the Ethernet frames the sandbox sent,
	// headers included, whether or not the policy (or the cluster
	// fabric) let them through.
	BytesOut, PacketsOut uint64
	// Refused counts the TCP connections and UDP datagrams the policy
	// refused.
	Refused uint64
	// DNSRefused counts the lookups refused for being over the sandbox's
	// (or the provider's) bounds on DNS; RateLimited the flows refused for
	// coming faster than the flow rate.
	DNSRefused, RateLimited uint64
	// AgentIn and AgentOut are the frames of the provider's connections
	// to the sandbox's resident SSH agent: the renter's SSH, left out of
	// BytesIn and BytesOut.
	AgentIn, AgentOut uint64
}

// Network is one sandbox's network: a network namespace holding a tap
// device, served in this process by a gVisor netstack acting as the
// sandbox's gateway, DNS server and policy-checking NAT.
type Network struct {
	id  string
	m   *Manager
	log *slog.Logger
	ns  *namespace

	port    *tapPort
	cluster *clusterPort // eth1, nil without one
	stack   *stack.Stack
	dnsUDP  *gonet.UDPConn
	dnsTCP  *gonet.TCPListener
	dns     dnsLimits
	// dnsRefused counts lookups refused for the sandbox's bounds.
	dnsRefused atomic.Uint64

	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	portRun sync.WaitGroup // the tap reader
	wg      sync.WaitGroup // DNS servers and flows
	refused atomic.Uint64

	// flowRate bounds new flows a second; rateLimited counts the flows
	// it refused.
	flowRate    *rate.Limiter
	rateLimited atomic.Uint64

	mu     sync.Mutex
	flows  int
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// ClusterLink is a sandbox's second interface, eth1, on its rental
// session's private network (package cluster). Its frames never reach the
// gateway, the egress policy or the internet: ServeCluster hands them to
// the provider's fabric, which delivers the session's frames back through
// ClusterPort.
type ClusterLink struct {
	// Addr is the sandbox's address with its session subnet's length.
	Addr netip.Prefix
	// MAC is eth1's hardware address.
	MAC net.HardwareAddr
	// MTU is eth1's; 0 means the sandbox network's own (Config.MTU).
	MTU int
}

// Create makes sandbox id's network. The sandbox must be started with
// runsc --network=sandbox and NetnsPath as its network namespace; see the
// package documentation. id names the network in logs only.
func (m *Manager) Create(ctx context.Context, id string) (*Network, error) {
	return m.CreateWith(ctx, id, nil)
}

// CreateWith is Create, with eth1 on a session's private network if cl is
// not nil.
func (m *Manager) CreateWith(ctx context.Context, id string, cl *ClusterLink) (_ *Network, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	lc := linkConfig{
		mtu:        m.cfg.MTU,
		addr:       net.IPNet{IP: sandboxIP.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)},
		gateway:    gatewayIP.AsSlice(),
		gatewayMAC: gatewayMAC,
	}
	if cl != nil {
		if !cl.Addr.Addr().Is4() || cl.Addr.Overlaps(subnet) || len(cl.MAC) != 6 {
			return nil, fmt.Errorf("sandbox network %s: cluster link %v (%v): an IPv4 address off %v and a MAC", id, cl.Addr, cl.MAC, subnet)
		}
		if cl.MTU != 0 && (cl.MTU < 576 || cl.MTU > 65520) {
			return nil, fmt.Errorf("sandbox network %s: cluster link mtu %d out of range 576..65520", id, cl.MTU)
		}
		lc.cluster = &clusterLinkConfig{addr: net.IPNet{IP: cl.Addr.Addr().AsSlice(), Mask: net.CIDRMask(cl.Addr.Bits(), 32)}, mac: cl.MAC, mtu: cl.MTU}
	}
	ns, err := newNamespace(lc)
	if err != nil {
		return nil, fmt.Errorf("sandbox network %s: %w", id, err)
	}
	n := &Network{id: id, m: m, log: m.log.With("net", id), ns: ns, dns: newDNSLimits(),
		flowRate: rate.NewLimiter(rate.Limit(m.cfg.FlowRate), 2*m.cfg.FlowRate)}
	if ns.clusterTap != nil {
		n.cluster = &clusterPort{tapDev{f: ns.clusterTap}}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := n.startStack(); err != nil {
		return nil, fmt.Errorf("sandbox network %s: %w", id, err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	m.nets[n] = struct{}{}
	m.mu.Unlock()
	n.log.Info("network created", "netns", ns.path(), "policy", m.cfg.Policy, "took", time.Since(start))
	return n, nil
}

func (n *Network) startStack() error {
	var vipStrs []string
	for _, s := range n.m.services {
		vipStrs = append(vipStrs, s.Addr.Addr().String())
	}
	ep, err := tap.NewLinkEndpoint(false, uint32(n.m.cfg.MTU), gatewayMAC.String(), gatewayIP.String(), vipStrs)
	if err != nil {
		return fmt.Errorf("link endpoint: %w", err)
	}
	n.port = &tapPort{tapDev: tapDev{f: n.ns.tap}, ep: ep, gwIP: tcpip.AddrFrom4(gatewayIP.As4())}
	ep.Connect(n.port)

	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	n.stack = s
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	if err := s.CreateNIC(1, ep); err != nil {
		return fmt.Errorf("create nic: %s", err)
	}
	if err := s.AddProtocolAddress(1, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(gatewayIP.As4()).WithPrefix(),
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("gateway address: %s", err)
	}
	// Spoofing and promiscuous mode let the gateway answer for every
	// destination: each connection the sandbox opens reaches the
	// forwarders below, which decide.
	s.SetSpoofing(1, true)
	s.SetPromiscuousMode(1, true)
	sn, err := tcpip.NewSubnet(tcpip.AddrFrom4(subnet.Addr().As4()), tcpip.MaskFromBytes(net.CIDRMask(subnet.Bits(), 32)))
	if err != nil {
		return fmt.Errorf("subnet: %w", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: sn, NIC: 1}})

	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tcp.NewForwarder(s, 0, tcpInFlight, n.forwardTCP).HandlePacket)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, udp.NewForwarder(s, n.forwardUDP).HandlePacket)
	if err := n.startDNS(); err != nil {
		return err
	}
	n.portRun.Add(1)
	go func() {
		defer n.portRun.Done()
		n.port.run()
	}()
	return nil
}

func (n *Network) startDNS() error {
	laddr := tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(gatewayIP.As4()), Port: 53}
	udpConn, err := gonet.DialUDP(n.stack, &laddr, nil, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	n.dnsUDP = udpConn
	tcpLn, err := gonet.ListenTCP(n.stack, laddr, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	n.dnsTCP = tcpLn
	zone := types.Zone{Name: Domain + "."}
	for _, s := range n.m.services {
		if s.Name != "" {
			zone.Records = append(zone.Records, types.Record{Name: s.Name, IP: s.Addr.Addr().AsSlice()})
		}
	}
	srv, err := dns.NewWithUpstreamResolver(udpConn, tcpLn, []types.Zone{zone}, &resolver{n: n})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		_ = srv.Serve() // returns when Close closes udpConn
	}()
	go func() {
		defer n.wg.Done()
		_ = srv.ServeTCP() // returns when Close closes tcpLn
	}()
	return nil
}

// ErrNoClusterLink is returned for a network made without one.
var ErrNoClusterLink = errors.New("no cluster link")

// ServeCluster hands every frame the sandbox sends on its cluster link to
// recv, on one goroutine, until Close; recv must not keep the frame.
func (n *Network) ServeCluster(recv func(frame []byte)) error {
	if n.cluster == nil {
		return ErrNoClusterLink
	}
	n.portRun.Add(1)
	go func() {
		defer n.portRun.Done()
		n.cluster.readLoop(recv)
	}()
	return nil
}

// ClusterPort is where frames for the sandbox's cluster link go in: its
// Deliver writes one (cluster.Port). Nil without a cluster link.
func (n *Network) ClusterPort() interface{ Deliver(frame []byte) } {
	if n.cluster == nil {
		return nil
	}
	return n.cluster
}

// ID returns the id the network was created with.
func (n *Network) ID() string { return n.id }

// NetnsPath is the network namespace to give runsc, as the path of the
// OCI spec's network namespace. It is valid until Close; runsc needs it
// only while it creates the sandbox, which then holds the namespace itself.
func (n *Network) NetnsPath() string { return n.ns.path() }

// Addr returns the sandbox's address and prefix on its network.
func (n *Network) Addr() netip.Prefix { return netip.PrefixFrom(sandboxIP, subnet.Bits()) }

// Gateway returns the sandbox's default gateway, also its DNS server.
func (n *Network) Gateway() netip.Addr { return gatewayIP }

// Counters returns the network's traffic so far.
func (n *Network) Counters() Counters {
	if n.port == nil {
		return Counters{Refused: n.refused.Load(), DNSRefused: n.dnsRefused.Load(), RateLimited: n.rateLimited.Load()}
	}
	// The agent's bytes first: they are counted after the totals that
	// include them, so they never exceed what is read of those.
	agentIn, agentOut := n.port.agentIn.Load(), n.port.agentOut.Load()
	c := Counters{
		BytesIn:     n.port.bytesIn.Load() - agentIn,
		PacketsIn:   n.port.packetsIn.Load(),
		BytesOut:    n.port.bytesOut.Load() - agentOut,
		PacketsOut:  n.port.packetsOut.Load(),
		Refused:     n.refused.Load(),
		DNSRefused:  n.dnsRefused.Load(),
		RateLimited: n.rateLimited.Load(),
		AgentIn:     agentIn,
		AgentOut:    agentOut,
	}
	if p := n.cluster; p != nil {
		c.BytesIn += p.bytesIn.Load()
		c.PacketsIn += p.packetsIn.Load()
		c.BytesOut += p.bytesOut.Load()
		c.PacketsOut += p.packetsOut.Load()
	}
	return c
}

// Services returns where each published service is reachable inside the
// sandbox.
func (n *Network) Services() []ServiceAddr { return n.m.Services() }

// ResolvConf is the /etc/resolv.conf the sandbox should see: the gateway
// as its only name server, and Domain searched so that published names
// resolve unqualified.
func (n *Network) ResolvConf() []byte {
	return []byte("nameserver " + gatewayIP.String() + "\nsearch " + Domain + "\n")
}

// Hosts is an /etc/hosts for the sandbox: localhost and the published
// names, so that they resolve without DNS too.
func (n *Network) Hosts() []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	done := map[string]bool{}
	for _, s := range n.m.services {
		if s.Name == "" || done[s.Name] {
			continue
		}
		done[s.Name] = true
		fmt.Fprintf(&b, "%s\t%s.%s %s\n", s.Addr.Addr(), s.Name, Domain, s.Name)
	}
	return []byte(b.String())
}

// Close stops the network's goroutines, closes every connection the
// sandbox has through it, and removes the tap; the namespace goes with the
// last process in it. Close is idempotent.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		n.cancel()
		// Closing the tap stops the reader, so no new packet reaches
		// the stack and no forwarder starts a new flow.
		var errs []error
		if n.ns != nil {
			errs = append(errs, n.ns.tap.Close())
			if n.ns.clusterTap != nil {
				errs = append(errs, n.ns.clusterTap.Close())
			}
		}
		n.portRun.Wait()
		if n.dnsUDP != nil {
			n.dnsUDP.Close()
		}
		if n.dnsTCP != nil {
			n.dnsTCP.Close()
		}
		if n.stack != nil {
			n.stack.Close()
		}
		n.wg.Wait()
		if n.stack != nil {
			n.stack.Wait()
		}
		if n.ns != nil {
			errs = append(errs, n.ns.ns.Close())
		}
		n.m.mu.Lock()
		delete(n.m.nets, n)
		n.m.mu.Unlock()
		n.closeErr = errors.Join(errs...)
		if n.closeErr != nil {
			n.closeErr = fmt.Errorf("close sandbox network %s: %w", n.id, n.closeErr)
		}
		c := n.Counters()
		n.log.Info("network closed", "bytes_in", c.BytesIn, "bytes_out", c.BytesOut, "refused", c.Refused, "dns_refused", c.DNSRefused)
	})
	return n.closeErr
}

// errDenied is the dial error for a destination the policy refuses.
var errDenied = errors.New("destination denied by egress policy")

// allowed reports whether the policy lets the sandbox reach addr, outside
// published services.
func (n *Network) allowed(addr netip.Addr) bool {
	p := n.m.cfg.Policy
	public := p.Allows(addr)
	for _, t := range n.m.testPublic {
		public = public || p == PolicyPublic && t.Contains(addr.Unmap())
	}
	for _, d := range n.m.cfg.Deny {
		if d.Contains(addr.Unmap().WithZone("")) {
			return false
		}
	}
	return public && !n.m.hosts.contains(addr)
}

// destination decides where a connection from the sandbox to dst goes:
// a published service's target, dst itself if the policy allows it, or
// nowhere.
func (n *Network) destination(dst netip.AddrPort) (target string, published, ok bool) {
	if s, ok := n.m.vips[dst]; ok {
		return s.Target, true, true
	}
	if !n.allowed(dst.Addr()) || !n.m.cfg.AllowSMTP && slices.Contains(smtpPorts, dst.Port()) {
		return "", false, false
	}
	return dst.String(), false, true
}

// dialer returns the dialer for one flow. Its Control hook checks the
// address the socket actually connects to, after any resolution, against
// the policy once more; published services are exempt, since the
// provider chose their targets.
func (n *Network) dialer(published bool) *net.Dialer {
	d := &net.Dialer{Timeout: dialTimeout}
	if !published {
		d.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			if !n.allowed(ap.Addr()) {
				return errDenied
			}
			return nil
		}
	}
	return d
}

// acquire reserves a flow; it fails if the network is full or closed.
func (n *Network) acquire() (ok, closed bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false, true
	}
	if n.flows >= n.m.cfg.MaxFlows {
		return false, false
	}
	if n.flowRate != nil && !n.flowRate.Allow() {
		n.rateLimited.Add(1)
		return false, false
	}
	n.flows++
	n.wg.Add(1)
	return true, false
}

func (n *Network) release() {
	n.mu.Lock()
	n.flows--
	n.mu.Unlock()
	n.wg.Done()
}

// DialGuest connects to port on the sandbox's own address from the
// gateway's side, as nothing outside the provider can: the provider
// reaches a server the sandbox runs (its resident SSH agent) with no
// process started in it.
func (n *Network) DialGuest(ctx context.Context, port uint16) (net.Conn, error) {
	addr := tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(sandboxIP.As4()), Port: port}
	return gonet.DialContextTCP(ctx, n.stack, addr, ipv4.ProtocolNumber)
}
