package netsandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tapName is the name of the sandbox's interface, inside its namespace and,
// since runsc copies it, inside the sandbox.
const tapName = "eth0"

// namespace is a fresh network namespace holding one tap device configured
// the way runsc --network=sandbox scrapes it: link up, the sandbox's address,
// a default route via the gateway, the gateway's MAC as a permanent
// neighbour, no IPv6. Both files are the only references this process holds:
// closing them removes the tap and, once the sandbox has exited, the
// namespace. Nothing is mounted and nothing is written to disk, so a crash
// leaves nothing behind.
type namespace struct {
	ns  *os.File // the namespace, for runsc to open as /proc/PID/fd/N
	tap *os.File // the tap's queue: Ethernet frames to and from the sandbox
	fd  int      // ns's descriptor number
	// clusterTap is eth1's queue, the session's private network; nil
	// without one.
	clusterTap *os.File
}

func (n *namespace) path() string { return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), n.fd) }

type linkConfig struct {
	mtu        int
	addr       net.IPNet
	gateway    net.IP
	gatewayMAC net.HardwareAddr
	// cluster, if not nil, adds eth1 on the session's private network:
	// its address and subnet (on-link, no gateway) and its MAC.
	cluster *clusterLinkConfig
}

type clusterLinkConfig struct {
	addr net.IPNet
	mac  net.HardwareAddr
	mtu  int // 0: the tap's
}

// clusterTapName is the sandbox's interface on its session's network.
const clusterTapName = "eth1"

// newNamespace creates the namespace and its tap. It does the work on a
// goroutine locked to its thread that never unlocks, so the runtime
// discards the thread, the only one ever moved into the namespace.
func newNamespace(cfg linkConfig) (*namespace, error) {
	type result struct {
		ns  *namespace
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread: the runtime never discards it, it
			// would stay in the namespace (holding it, and changing
			// /proc/self/ns/net) for good. Keep it busy, so that
			// another goroutine must run on another thread.
			ns, err := newNamespace(cfg)
			runtime.UnlockOSThread()
			ch <- result{ns, err}
			return
		}
		ns, err := setupNamespace(cfg)
		ch <- result{ns, err}
	}()
	r := <-ch
	return r.ns, r.err
}

func setupNamespace(cfg linkConfig) (_ *namespace, err error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("new network namespace: %w", err)
	}
	nsf, err := os.OpenFile("/proc/thread-self/ns/net", os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	defer func() {
		if err != nil {
			nsf.Close()
		}
	}()
	// No IPv6: the kernel would otherwise give the tap a link-local
	// address (which runsc copies) and send router solicitations through
	// it, traffic the sandbox never asked for.
	for _, p := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
		if err := os.WriteFile(p, []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("disable ipv6: %w", err)
		}
	}
	// The cluster link's tap first: it takes the lower interface index,
	// and Open MPI's out-of-band transport looks only at the first
	// interface after loopback (with eth0 first, mpirun found no eth1).
	var clusterTap *os.File
	if cfg.cluster != nil {
		if clusterTap, err = openTap(clusterTapName); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				clusterTap.Close()
			}
		}()
	}
	tap, err := openTap(tapName)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tap.Close()
		}
	}()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("find lo: %w", err)
	}
	// runsc skips interfaces that are down, loopback included: the
	// sandbox would have no 127.0.0.1.
	if err := h.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("set lo up: %w", err)
	}
	link, err := h.LinkByName(tapName)
	if err != nil {
		return nil, fmt.Errorf("find tap: %w", err)
	}
	if err := h.LinkSetMTU(link, cfg.mtu); err != nil {
		return nil, fmt.Errorf("set tap mtu %d: %w", cfg.mtu, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set tap up: %w", err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: &cfg.addr}); err != nil {
		return nil, fmt.Errorf("add tap address: %w", err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: cfg.gateway}); err != nil {
		return nil, fmt.Errorf("add default route: %w", err)
	}
	// runsc copies permanent neighbours: the sandbox knows the gateway
	// without asking.
	if err := h.NeighAdd(&netlink.Neigh{
		LinkIndex: link.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: cfg.gateway, HardwareAddr: cfg.gatewayMAC,
	}); err != nil {
		return nil, fmt.Errorf("add gateway neighbour: %w", err)
	}
	ns := &namespace{ns: nsf, tap: tap, fd: int(nsf.Fd())}
	if cfg.cluster != nil {
		mtu := cfg.mtu
		if cfg.cluster.mtu != 0 {
			mtu = cfg.cluster.mtu
		}
		if err = setupClusterLink(h, mtu, *cfg.cluster); err != nil {
			return nil, err
		}
		ns.clusterTap = clusterTap
	}
	return ns, nil
}

// setupClusterLink makes eth1: the host's address on the session's subnet,
// the subnet on-link (the fabric answers ARP for the session's hosts), no
// gateway, no neighbours.
func setupClusterLink(h *netlink.Handle, mtu int, cfg clusterLinkConfig) error {
	link, err := h.LinkByName(clusterTapName)
	if err != nil {
		return fmt.Errorf("find cluster tap: %w", err)
	}
	if err := h.LinkSetHardwareAddr(link, cfg.mac); err != nil {
		return fmt.Errorf("set cluster tap address: %w", err)
	}
	if err := h.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("set cluster tap mtu %d: %w", mtu, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set cluster tap up: %w", err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: &cfg.addr}); err != nil {
		return fmt.Errorf("add cluster tap address: %w", err)
	}
	return nil
}

// openTap creates a non-persistent tap device in the calling thread's
// network namespace; it exists as long as the returned file is open.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap name: %w", err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tap: %w", err)
	}
	// Non-blocking, so reads go through the runtime's poller and Close
	// interrupts them.
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}
