package p2p

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Providers behind a NAT (docs/market.md, "Behind a home router"): every
// provider's node asks its peers to dial it back (AutoNAT) and helps them
// likewise; one found unreachable reserves a slot on a relay (circuit
// relay v2: any provider started with --relay) and announces the relayed
// address; a renter that connects through the relay is then offered a
// direct connection by hole punching (DCUtR), and its SSH rides whichever
// it got (SSHProtocol).

// Relay is what a node gives others as a circuit relay (zennet provide
// --relay). A relay must be reachable from the internet: its node takes
// itself to be, without waiting for AutoNAT.
type Relay struct {
	// Reservations bounds the peers holding a slot at once (default 128);
	// CircuitsPerPeer the relayed connections to or from one peer (16).
	Reservations, CircuitsPerPeer int
	// Data bounds the bytes relayed each way over one connection, and
	// Duration its life: past either the relay resets it. Zero is no bound:
	// a renter's SSH to a provider lasts the renter's session, and a cut
	// connection ends its leases.
	Data     int64
	Duration time.Duration
}

// resources are the relay service's limits.
func (r *Relay) resources() relay.Resources {
	rc := relay.DefaultResources()
	rc.Limit = nil
	if r.Data > 0 || r.Duration > 0 {
		// The relay's own limit applies a zero field as "none at all": give
		// the unbounded one a bound no connection reaches.
		rc.Limit = &relay.RelayLimit{Data: r.Data, Duration: r.Duration}
		if rc.Limit.Data <= 0 {
			rc.Limit.Data = 1 << 62
		}
		if rc.Limit.Duration <= 0 {
			rc.Limit.Duration = 100 * 365 * 24 * time.Hour
		}
	}
	if r.Reservations > 0 {
		rc.MaxReservations = r.Reservations
	}
	if r.CircuitsPerPeer > 0 {
		rc.MaxCircuits = r.CircuitsPerPeer
	}
	// Bulk SSH through the relay: 2 KiB buffers copy it in tiny pieces.
	rc.BufferSize = 32 << 10
	return rc
}

// natOptions are the libp2p options of a node that sells or serves: it
// runs AutoNAT for others and itself, takes part in hole punching, finds
// a relay among its peers when it is unreachable, and relays for others
// when cfg.Relay says so. self is set to the host once it exists (the
// relay finder asks it for candidates).
func natOptions(cfg Config, self *atomic.Pointer[host.Host]) []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.EnableNATService(),
		libp2p.EnableHolePunching(),
		libp2p.EnableAutoRelayWithPeerSource(func(ctx context.Context, num int) <-chan peer.AddrInfo {
			var h host.Host
			if p := self.Load(); p != nil {
				h = *p
			}
			return relayCandidates(ctx, h, num)
		}, autorelay.WithMinCandidates(1), autorelay.WithBootDelay(0), autorelay.WithMinInterval(5*time.Second),
			autorelay.WithBackoff(time.Minute)),
	}
	if cfg.Relay != nil {
		opts = append(opts, libp2p.EnableRelayService(relay.WithResources(cfg.Relay.resources())),
			libp2p.ForceReachabilityPublic())
	}
	return opts
}

// relayCandidates are the connected peers that serve as relays.
func relayCandidates(ctx context.Context, h host.Host, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, max(num, 0))
	defer close(out)
	if h == nil {
		return out
	}
	for _, id := range h.Network().Peers() {
		if len(out) == cap(out) || ctx.Err() != nil {
			break
		}
		if ps, err := h.Peerstore().SupportsProtocols(id, circuit.ProtoIDv2Hop); err != nil || len(ps) == 0 {
			continue
		}
		out <- peer.AddrInfo{ID: id, Addrs: h.Peerstore().Addrs(id)}
	}
	return out
}

// Reachability is what AutoNAT last found of the node: public (peers
// dialled it back), private (they could not: behind a NAT or a firewall)
// or unknown (nobody asked yet, or the node has no public address: on a
// LAN or loopback).
func (n *Node) Reachability() network.Reachability {
	return network.Reachability(n.reach.Load())
}

// watchAddrs follows the node's reachability and addresses until ctx
// ends, and calls changed after each change.
func (n *Node) watchAddrs(ctx context.Context, changed func()) {
	sub, err := n.h.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtLocalAddressesUpdated)})
	if err != nil {
		n.log.Warn("address events", "err", err)
		return
	}
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			if r, ok := e.(event.EvtLocalReachabilityChanged); ok {
				n.reach.Store(int32(r.Reachability))
				n.log.Info("market reachability", "reachability", r.Reachability.String())
			}
			changed()
		}
	}
}

// SSHAddress is where renters reach the node's SSH gateway over libp2p
// (ListenSSH), as a multiaddr ending in /p2p/ID, or "" if nowhere: when
// AutoNAT found the node unreachable, a relayed address (once a relay
// gave it a slot); else its first public direct address (a node on a LAN
// or loopback has none, and announces its gateway's HOST:PORT).
func (n *Node) SSHAddress() string {
	var relayed, direct ma.Multiaddr
	for _, a := range n.h.Addrs() {
		if isRelayed(a) {
			if relayed == nil {
				relayed = a
			}
		} else if direct == nil && manet.IsPublicAddr(a) {
			direct = a
		}
	}
	pick := direct
	if n.Reachability() == network.ReachabilityPrivate {
		pick = relayed
	}
	if pick == nil {
		return ""
	}
	return pick.Encapsulate(ma.StringCast("/p2p/" + n.h.ID().String())).String()
}

// isRelayed reports whether a is a relayed (/p2p-circuit) address.
func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// checkAddress checks that addr, a provider's announced multiaddr, ends
// in the provider's own peer ID: the address is then the provider's to
// give, whatever relay it goes through.
func checkAddress(addr string, id peer.ID) error {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return fmt.Errorf("address %q: %v", addr, err)
	}
	last, err := peer.IDFromP2PAddr(a)
	if err != nil {
		return fmt.Errorf("address %q: %v", addr, err)
	}
	if last != id {
		return fmt.Errorf("address %q is peer %s's, not the provider's (%s)", addr, last, id)
	}
	return nil
}
