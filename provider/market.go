package provider

import (
	"context"
	"log/slog"
	"net"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/sshgate"
)

// marketPeers asks the --peer providers given as HOST:PORT where their
// libp2p market nodes are, so that a provider given only those joins the
// libp2p market too. Peers that do not answer, or are not on it, are
// skipped.
func marketPeers(ctx context.Context, peers []string, signer gossh.Signer, log *slog.Logger) []peer.AddrInfo {
	out, errs := sshgate.MarketPeers(ctx, peers, signer)
	for _, err := range errs {
		log.Debug("--peer's market node", "err", err)
	}
	return out
}

// marketListen is where the market node listens: what was asked, else the
// gateway's host with ports chosen by the system.
func marketListen(asked []string, gateway net.Addr) []string {
	if len(asked) > 0 {
		return asked
	}
	ip := net.IPv4zero
	if tcp, ok := gateway.(*net.TCPAddr); ok && tcp.IP != nil {
		ip = tcp.IP
	}
	a, err := manet.FromIP(ip)
	if err != nil {
		return nil
	}
	return []string{a.String() + "/tcp/0", a.String() + "/udp/0/quic-v1"}
}

// multiaddrStrings are addrs as strings.
func multiaddrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
