// Package peeraddr checks the market addresses that announcements and
// session memberships carry: a libp2p multiaddr that ends in the peer's
// /p2p/ID (a provider behind a NAT, its gateway served over libp2p).
package peeraddr

import (
	"fmt"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
)

// Is reports whether s is written as a market multiaddr (it begins with
// "/") rather than HOST:PORT.
func Is(s string) bool { return strings.HasPrefix(s, "/") }

// Check checks that s parses as a multiaddr and ends in /p2p/ID.
func Check(s string) error {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	if _, last := ma.SplitLast(m); last == nil || last.Protocol().Code != ma.P_P2P {
		return fmt.Errorf("%q does not end in /p2p/ID", s)
	}
	return nil
}
