package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
	ma "github.com/multiformats/go-multiaddr"
)

// SSHProtocol is the stream on which a provider's node serves its SSH
// gateway: the same SSH as on its TCP port (host key, negotiation,
// reports, payments, lease streams), for renters that cannot reach that
// port (a provider behind a NAT, reached through a relay or a punched
// hole).
const SSHProtocol = protocol.ID("/zennet/ssh/1")

// directWait bounds how long a dialer that reached a provider only
// through a relay waits for hole punching to give it a direct connection
// before it settles for the relay.
const directWait = 5 * time.Second

// ListenSSH serves SSHProtocol: each stream a peer opens is a connection
// accepted from the listener. Once it listens, the node announces
// SSHAddress where it has one (Config.Announce's address otherwise).
func (n *Node) ListenSSH() (net.Listener, error) {
	l, err := gostream.Listen(n.h, SSHProtocol)
	if err != nil {
		return nil, err
	}
	n.sshOn.Store(true)
	return l, nil
}

// Dialer reaches providers' SSH gateways over libp2p: a renter's host of
// its own (a fresh key each run: the renter's identity is its SSH key,
// shown inside the SSH connection), which listens so that providers
// behind NATs can punch a hole to it, and dials through relays.
type Dialer struct {
	h host.Host

	mu    sync.Mutex
	paths map[peer.ID]Path
}

// Path is how a dialer reached a provider.
type Path struct {
	// Relay is the relay the connection goes through; empty when it is
	// direct (the provider's address was, or hole punching made it so).
	Relay peer.ID
	// Punched says a relayed address was made direct by hole punching.
	Punched bool
}

func (p Path) String() string {
	switch {
	case p.Relay != "":
		return "relayed through " + p.Relay.String()
	case p.Punched:
		return "direct (hole punched)"
	}
	return "direct"
}

// NewDialer starts a dialer's host, listening on every interface at
// ports the system chooses.
func NewDialer() (*Dialer, error) {
	_, raw, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := Key(raw)
	if err != nil {
		return nil, err
	}
	rm, err := resourceManager()
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"),
		libp2p.EnableHolePunching(), libp2p.UserAgent("zennet"), libp2p.ResourceManager(rm))
	if err != nil {
		return nil, fmt.Errorf("start the market's libp2p host: %w", err)
	}
	return &Dialer{h: h, paths: map[peer.ID]Path{}}, nil
}

// Dial connects to the SSH gateway at addr, a multiaddr ending in the
// provider's /p2p/ID (directly or through a relay's /p2p-circuit). When
// only the relay answers, it waits up to directWait for hole punching to
// connect the two directly, and rides the relay otherwise (Path says
// which).
func (d *Dialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	// A provider already found unreachable but through its relay is not
	// waited for again (each lease stream is a dial).
	c, id, path, err := dialSSH(ctx, d.h, addr, func(id peer.ID) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.paths[id].Relay == ""
	})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.paths[id] = path
	d.mu.Unlock()
	return c, nil
}

// DialSSH connects to the SSH gateway of the provider at addr, a market
// multiaddr, as Dialer.Dial does: another provider's, for the tunnels of
// a session network.
func (n *Node) DialSSH(ctx context.Context, addr string) (net.Conn, error) {
	c, _, _, err := dialSSH(ctx, n.h, addr, func(peer.ID) bool { return true })
	return c, err
}

// dialSSH opens SSHProtocol to the peer at addr, first waiting for a
// direct connection if it is reached through a relay and wait says so.
func dialSSH(ctx context.Context, h host.Host, addr string, wait func(peer.ID) bool) (net.Conn, peer.ID, Path, error) {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return nil, "", Path{}, fmt.Errorf("market address %q: %v", addr, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return nil, "", Path{}, fmt.Errorf("market address %q: %v (it ends in /p2p/ID)", addr, err)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		return nil, "", Path{}, fmt.Errorf("reach %s: %w", addr, err)
	}
	path := awaitDirect(ctx, h, ai.ID, wait(ai.ID))
	// The stream takes the best connection: the direct one if there is.
	// A relay may bound what it carries (a limited connection): SSH goes
	// over it all the same, the relay resetting it past its bound.
	c, err := gostream.Dial(network.WithAllowLimitedConn(ctx, "zennet ssh"), h, ai.ID, SSHProtocol)
	if err != nil {
		return nil, "", Path{}, fmt.Errorf("open SSH to %s: %w", addr, err)
	}
	return c, ai.ID, path, nil
}

// awaitDirect waits, for a peer reached only through a relay, until it
// is connected directly too (hole punching: the provider starts it on
// the relayed connection), or directWait passes.
func awaitDirect(ctx context.Context, h host.Host, id peer.ID, wait bool) Path {
	var relayed peer.ID
	// Half the time left at most: the rest is for SSH over the relay.
	deadline := time.Now().Add(directWait)
	if !wait {
		deadline = time.Now()
	}
	if dl, ok := ctx.Deadline(); ok {
		if half := time.Now().Add(time.Until(dl) / 2); half.Before(deadline) {
			deadline = half
		}
	}
	for {
		for _, c := range h.Network().ConnsToPeer(id) {
			if !isRelayed(c.RemoteMultiaddr()) {
				return Path{Punched: relayed != ""}
			}
			relayed = relayOf(c.RemoteMultiaddr())
		}
		if relayed == "" || time.Now().After(deadline) || ctx.Err() != nil {
			return Path{Relay: relayed}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// relayOf is the relay of a relayed address.
func relayOf(a ma.Multiaddr) peer.ID {
	relay, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Protocol().Code == ma.P_CIRCUIT })
	id, _ := peer.IDFromP2PAddr(relay)
	return id
}

// Path is how the provider at addr was last reached.
func (d *Dialer) Path(addr string) (Path, bool) {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return Path{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.paths[ai.ID]
	return p, ok
}

// Close closes the dialer's host and every connection on it.
func (d *Dialer) Close() error { return d.h.Close() }

// resourceManager is libp2p's default resource manager with room for the
// gateway's SSH: a renter keeps a stream per SSH connection to a host (the
// gateway allows 512 per renter key), past the 64 streams of one protocol
// that libp2p allows one peer by default. The rest of libp2p's limits
// (connections per address, streams per peer) stand.
func resourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.AddProtocolPeerLimit(SSHProtocol, rcmgr.BaseLimit{StreamsInbound: 1024, StreamsOutbound: 1024, Streams: 1024, Memory: 256 << 20},
		rcmgr.BaseLimitIncrease{})
	limits.AddProtocolLimit(SSHProtocol, rcmgr.BaseLimit{StreamsInbound: 8192, StreamsOutbound: 8192, Streams: 8192, Memory: 1 << 30},
		rcmgr.BaseLimitIncrease{})
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
}
