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

// tapDev is one of the sandbox's taps, seen from the provider's side: the
// frames written into it are what the sandbox receives, those read from
// it what the sandbox sends, and its counters are that traffic.
type tapDev struct {
	f *os.File

	bytesIn, bytesOut     atomic.Uint64
	packetsIn, packetsOut atomic.Uint64
}

// write sends a frame into the sandbox; a frame the tap refuses (the
// sandbox not reading) is dropped, as on a wire.
func (d *tapDev) write(frame []byte) bool {
	n, err := d.f.Write(frame)
	if err != nil {
		return false
	}
	d.bytesIn.Add(uint64(n))
	d.packetsIn.Add(1)
	return true
}

// readLoop hands each frame the sandbox sends to fn (which must not keep
// it) until the tap is closed.
func (d *tapDev) readLoop(fn func(frame []byte)) {
	// A tap never delivers more than 64 KiB, whatever the MTU.
	buf := make([]byte, 1<<16+header.EthernetMinimumSize)
	for {
		n, err := d.f.Read(buf)
		if err != nil {
			return
		}
		d.bytesOut.Add(uint64(n))
		d.packetsOut.Add(1)
		fn(buf[:n])
	}
}

// tapPort joins the sandbox's tap to the gateway's link endpoint. It takes
// the place of gvisor-tap-vsock's tap.Switch, which multiplexes many virtual
// machines on one network: here a network has exactly one port, and the
// counters it keeps are the sandbox's traffic.
type tapPort struct {
	tapDev
	ep   *tap.LinkEndpoint
	gwIP tcpip.Address

	// agentIn and agentOut are the frames of the provider's connections
	// to the sandbox's resident SSH agent (DialGuest), also in tapDev's
	// counters: the renter's SSH, which is not the host's network use.
	agentIn, agentOut atomic.Uint64
}

// AgentPort is the port of the sandbox's resident SSH agent, which the
// provider reaches with DialGuest.
const AgentPort = 22

// agentFrame reports whether an Ethernet frame is TCP between the
// gateway's address and the sandbox's agent port: toGuest, a frame the
// gateway sends to port AgentPort; otherwise one the sandbox sends from it.
func (p *tapPort) agentFrame(frame []byte, toGuest bool) bool {
	if len(frame) < header.EthernetMinimumSize+header.IPv4MinimumSize+header.TCPMinimumSize ||
		header.Ethernet(frame).Type() != header.IPv4ProtocolNumber {
		return false
	}
	ip := header.IPv4(frame[header.EthernetMinimumSize:])
	if !ip.IsValid(len(ip)) || ip.TransportProtocol() != header.TCPProtocolNumber || ip.FragmentOffset() != 0 {
		return false
	}
	tcp := header.TCP(ip.Payload())
	if len(tcp) < header.TCPMinimumSize {
		return false
	}
	if toGuest {
		return ip.SourceAddress() == p.gwIP && tcp.DestinationPort() == AgentPort
	}
	return ip.DestinationAddress() == p.gwIP && tcp.SourcePort() == AgentPort
}

// DeliverNetworkPacket sends a frame from the gateway to the sandbox; it
// implements tap.NetworkSwitch.
func (p *tapPort) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	v := pkt.ToView()
	frame := v.AsSlice()
	// Counted after the write, which counts it in bytesIn: agentIn never
	// runs ahead of it.
	if p.write(frame) && p.agentFrame(frame, true) {
		p.agentIn.Add(uint64(len(frame)))
	}
	v.Release()
}

// run hands the frames the sandbox sends that are addressed to the gateway
// (or broadcast, for ARP) to its link endpoint, until the tap is closed.
// It drops ICMP to anywhere but the gateway's address: the netstack,
// promiscuous so that it can forward every connection, would answer pings
// for the whole internet, a lie to anyone measuring latency.
func (p *tapPort) run() {
	gw := p.ep.LinkAddress()
	p.readLoop(func(frame []byte) {
		if len(frame) < header.EthernetMinimumSize {
			return
		}
		if p.agentFrame(frame, false) {
			p.agentOut.Add(uint64(len(frame)))
		}
		eth := header.Ethernet(frame)
		if dst := eth.DestinationAddress(); dst != gw && dst != header.EthernetBroadcastAddress {
			return
		}
		if eth.Type() == header.IPv4ProtocolNumber {
			ip := header.IPv4(frame[header.EthernetMinimumSize:])
			if !ip.IsValid(len(ip)) {
				return
			}
			if ip.TransportProtocol() == header.ICMPv4ProtocolNumber && ip.DestinationAddress() != p.gwIP {
				return
			}
		}
		data := buffer.MakeWithData(frame[header.EthernetMinimumSize:])
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: data})
		p.ep.DeliverNetworkPacket(eth.Type(), pkt)
		pkt.DecRef()
	})
}

// clusterPort is the sandbox's cluster link (eth1): frames to and from its
// session's other hosts, through the provider's fabric.
type clusterPort struct{ tapDev }

// Deliver writes a frame into the sandbox (cluster.Port).
func (p *clusterPort) Deliver(frame []byte) { p.write(frame) }
