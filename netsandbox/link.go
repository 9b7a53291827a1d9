package netsandbox

import (
	"os"
	"sync/atomic"

	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// tapPort joins the sandbox's tap to the gateway's link endpoint. It takes
// the place of gvisor-tap-vsock's tap.Switch, which multiplexes many virtual
// machines on one network: here a network has exactly one port, and the
// counters it keeps are the sandbox's traffic.
type tapPort struct {
	f    *os.File
	ep   *tap.LinkEndpoint
	gwIP tcpip.Address

	bytesIn, bytesOut     atomic.Uint64
	packetsIn, packetsOut atomic.Uint64
}

// DeliverNetworkPacket sends a frame from the gateway to the sandbox; it
// implements tap.NetworkSwitch.
func (p *tapPort) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	v := pkt.ToView()
	n, err := p.f.Write(v.AsSlice())
	v.Release()
	if err == nil {
		p.bytesIn.Add(uint64(n))
		p.packetsIn.Add(1)
	}
}

// run reads the frames the sandbox sends and hands those addressed to the
// gateway (or broadcast, for ARP) to its link endpoint, until the tap is
// closed. It drops ICMP to anywhere but the gateway's address: the
// netstack, promiscuous so that it can forward every connection, would
// answer pings for the whole internet, a lie to anyone measuring latency.
func (p *tapPort) run() {
	// A tap never delivers more than 64 KiB, whatever the MTU.
	buf := make([]byte, 1<<16+header.EthernetMinimumSize)
	gw := p.ep.LinkAddress()
	for {
		n, err := p.f.Read(buf)
		if err != nil {
			return
		}
		p.bytesOut.Add(uint64(n))
		p.packetsOut.Add(1)
		if n < header.EthernetMinimumSize {
			continue
		}
		eth := header.Ethernet(buf[:n])
		if dst := eth.DestinationAddress(); dst != gw && dst != header.EthernetBroadcastAddress {
			continue
		}
		if eth.Type() == header.IPv4ProtocolNumber {
			ip := header.IPv4(buf[header.EthernetMinimumSize:n])
			if !ip.IsValid(len(ip)) {
				continue
			}
			if ip.TransportProtocol() == header.ICMPv4ProtocolNumber && ip.DestinationAddress() != p.gwIP {
				continue
			}
		}
		data := buffer.MakeWithData(buf[header.EthernetMinimumSize:n])
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: data})
		p.ep.DeliverNetworkPacket(eth.Type(), pkt)
		pkt.DecRef()
	}
}

// clusterPort is the sandbox's cluster link (eth1): frames to and from its
// session's other hosts, through the provider's fabric.
type clusterPort struct {
	f *os.File

	bytesIn, bytesOut     atomic.Uint64
	packetsIn, packetsOut atomic.Uint64
}

// Deliver writes a frame into the sandbox; a frame the tap refuses (the
// sandbox not reading) is dropped, as on a wire.
func (p *clusterPort) Deliver(frame []byte) {
	n, err := p.f.Write(frame)
	if err == nil {
		p.bytesIn.Add(uint64(n))
		p.packetsIn.Add(1)
	}
}

// run hands the frames the sandbox sends to recv until the tap is closed.
func (p *clusterPort) run(recv func([]byte)) {
	buf := make([]byte, 1<<16+header.EthernetMinimumSize)
	for {
		n, err := p.f.Read(buf)
		if err != nil {
			return
		}
		p.bytesOut.Add(uint64(n))
		p.packetsOut.Add(1)
		recv(buf[:n])
	}
}
