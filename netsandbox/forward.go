package netsandbox

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip, port)
}

// forwardTCP handles a SYN from the sandbox to any destination: it checks
// the policy, dials the destination from the provider and only then
// completes the handshake, so that a refused or unreachable destination
// looks like one (a reset) from inside. It runs on its own goroutine,
// started by the stack's TCP forwarder.
func (n *Network) forwardTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	dst := addrPort(id.LocalAddress, id.LocalPort)
	target, published, ok := n.destination(dst)
	if !ok {
		n.refused.Add(1)
		n.log.Debug("connection refused by policy", "proto", "tcp", "dst", dst)
		r.Complete(true)
		return
	}
	if ok, closed := n.acquire(); !ok {
		r.Complete(!closed)
		return
	}
	defer n.release()
	ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
	out, err := n.dialer(published).DialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		if errors.Is(err, errDenied) {
			n.refused.Add(1)
		}
		n.log.Debug("dial", "proto", "tcp", "dst", dst, "target", target, "err", err)
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, tcpErr := r.CreateEndpoint(&wq)
	r.Complete(false)
	if tcpErr != nil {
		out.Close()
		return
	}
	n.relayTCP(gonet.NewTCPConn(&wq, ep), out)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// relayTCP copies both ways until both sides are done or the network
// closes, passing half-closes on.
func (n *Network) relayTCP(in, out net.Conn) {
	closeBoth := func() { in.Close(); out.Close() }
	stop := context.AfterFunc(n.ctx, closeBoth)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyHalf(out, in, closeBoth)
	}()
	copyHalf(in, out, closeBoth)
	<-done
	closeBoth()
}

// copyHalf copies src to dst and closes dst for writing at src's end; on
// an error rather than an end it tears both down.
func copyHalf(dst, src net.Conn, closeBoth func()) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// Plain Reader and Writer, so io.CopyBuffer uses the buffer rather
	// than ReadFrom/WriteTo.
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	if err != nil {
		closeBoth()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	closeBoth()
}

// forwardUDP handles the first datagram of a flow (source and destination
// address and port) from the sandbox. It runs on the goroutine that reads
// the tap, so it only checks the policy and starts the flow's own
// goroutine.
func (n *Network) forwardUDP(r *udp.ForwarderRequest) {
	id := r.ID()
	dst := addrPort(id.LocalAddress, id.LocalPort)
	target, published, ok := n.destination(dst)
	if !ok {
		n.refused.Add(1)
		n.log.Debug("datagram refused by policy", "proto", "udp", "dst", dst)
		return
	}
	if ok, _ := n.acquire(); !ok {
		return
	}
	var wq waiter.Queue
	ep, tcpErr := r.CreateEndpoint(&wq)
	if tcpErr != nil {
		n.release()
		return
	}
	in := gonet.NewUDPConn(&wq, ep)
	go func() {
		defer n.release()
		ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
		out, err := n.dialer(published).DialContext(ctx, "udp", target)
		cancel()
		if err != nil {
			if errors.Is(err, errDenied) {
				n.refused.Add(1)
			}
			in.Close()
			return
		}
		n.relayUDP(in, out)
	}()
}

// relayUDP copies datagrams both ways until the flow has been idle for
// udpIdle or the network closes.
func (n *Network) relayUDP(in, out net.Conn) {
	closeBoth := func() { in.Close(); out.Close() }
	stop := context.AfterFunc(n.ctx, closeBoth)
	defer stop()
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pumpUDP(out, in, &last)
		closeBoth()
	}()
	pumpUDP(in, out, &last)
	closeBoth()
	<-done
}

func pumpUDP(dst, src net.Conn, last *atomic.Int64) {
	buf := make([]byte, 1<<16)
	for {
		_ = src.SetReadDeadline(time.Now().Add(udpIdle))
		k, err := src.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				if time.Since(time.Unix(0, last.Load())) < udpIdle {
					continue
				}
				return
			case errors.Is(err, syscall.ECONNREFUSED):
				// An ICMP error for an earlier datagram: the
				// flow goes on, as it would for the sandbox.
				continue
			}
			return
		}
		last.Store(time.Now().UnixNano())
		_, _ = dst.Write(buf[:k])
	}
}
