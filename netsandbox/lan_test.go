package netsandbox

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// lan stands in for the provider's LAN: a network namespace the test
// creates, joined to this one by a veth pair, with a routed subnet behind
// it.
//
//	host (this namespace)  veth 10.213.7.1/30
//	lan namespace          veth 10.213.7.2/30, 10.213.8.1/32 on lo,
//	                       reached from here by a route via 10.213.7.2
//
// 10.213.7.0/30 is directly connected, so PolicyPublic denies it even when
// a test treats 10.0.0.0/8 as public; 10.213.8.0/24 is routed.
type lan struct {
	hostVeth string
	hostAddr netip.Addr // this side of the veth
	peerAddr netip.Addr // the namespace's side
	routed   netip.Addr // behind the namespace
	routedNet,
	linkNet netip.Prefix
	// listen creates a listener inside the namespace.
	listen func(network, addr string) (net.Listener, error)
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	l := &lan{
		hostVeth:  fmt.Sprintf("znlan%d", os.Getpid()%1000000),
		hostAddr:  netip.MustParseAddr("10.213.7.1"),
		peerAddr:  netip.MustParseAddr("10.213.7.2"),
		routed:    netip.MustParseAddr("10.213.8.1"),
		linkNet:   netip.MustParsePrefix("10.213.7.0/30"),
		routedNet: netip.MustParsePrefix("10.213.8.0/24"),
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := netipx(r.Dst); ok && p.Bits() > 0 && (p.Overlaps(l.linkNet) || p.Overlaps(l.routedNet)) {
			t.Fatalf("route %v exists; the LAN test needs 10.213.7.0/30 and 10.213.8.0/24 unused", r)
		}
	}
	rootNS, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer rootNS.Close()

	// The namespace's side is set up on a thread of its own, which ends
	// with its goroutine; a request channel lets the test open listeners
	// there (a socket stays in the namespace it was made in).
	type listenReq struct {
		network, addr string
		reply         chan any
	}
	reqs := make(chan listenReq)
	ready := make(chan error, 1)
	var lanThread func()
	lanThread = func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if unix.Gettid() == unix.Getpid() {
			// Not the main thread, which would never die (see
			// newNamespace): hold it while another thread does it.
			done := make(chan struct{})
			go func() { defer close(done); lanThread() }()
			<-done
			runtime.UnlockOSThread()
			return
		}
		ready <- setupLANNamespace(l, int(rootNS.Fd()))
		for r := range reqs {
			ln, err := net.Listen(r.network, r.addr)
			if err != nil {
				r.reply <- err
			} else {
				r.reply <- ln
			}
		}
	}
	go lanThread()
	if err := <-ready; err != nil {
		close(reqs)
		l.teardown()
		t.Fatalf("set up lan namespace: %v", err)
	}
	t.Cleanup(func() {
		close(reqs)
		l.teardown()
	})
	l.listen = func(network, addr string) (net.Listener, error) {
		reply := make(chan any)
		reqs <- listenReq{network, addr, reply}
		switch v := (<-reply).(type) {
		case net.Listener:
			return v, nil
		case error:
			return nil, v
		}
		panic("unreachable")
	}
	// This side: address the veth, route the LAN's subnet through it.
	link, err := netlink.LinkByName(l.hostVeth)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: l.hostAddr.AsSlice(), Mask: net.CIDRMask(30, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteAdd(&netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: l.routedNet.Addr().AsSlice(), Mask: net.CIDRMask(24, 32)},
		Gw:        l.peerAddr.AsSlice(),
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

func setupLANNamespace(l *lan, rootNS int) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return err
	}
	if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: l.routed.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "lan0"},
		PeerName:      l.hostVeth,
		PeerNamespace: netlink.NsFd(rootNS),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth: %w", err)
	}
	link, err := netlink.LinkByName("lan0")
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: l.peerAddr.AsSlice(), Mask: net.CIDRMask(30, 32)}}); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return err
	}
	return netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: l.hostAddr.AsSlice()})
}

func netipx(n *net.IPNet) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	p, err := ip.Unmap().Prefix(ones)
	return p, err == nil
}

// teardown deletes the veth pair (its route goes with it); the namespace
// goes when its thread has exited and its listeners are closed.
func (l *lan) teardown() {
	if link, err := netlink.LinkByName(l.hostVeth); err == nil {
		netlink.LinkDel(link)
	}
}
