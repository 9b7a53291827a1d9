// Package p2p is the market's peer-to-peer network on libp2p
// (docs/market.md): each node is a libp2p host whose identity is its SSH
// key, announcements spread over a gossipsub topic whose validator checks
// them before anything is forwarded, and a node answers for its own
// announcement on a stream of its own.
package p2p

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/ssh"
)

// Key is the libp2p identity of an ed25519 SSH key: the same key, so a
// node's peer ID is bound to its SSH host key and anyone holding either
// can derive the other (PeerID).
func Key(priv ed25519.PrivateKey) (crypto.PrivKey, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 key of %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	k, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("libp2p identity: %w", err)
	}
	return k, nil
}

// PeerID is the peer ID of the node whose SSH key is k (an ed25519 key).
func PeerID(k ssh.PublicKey) (peer.ID, error) {
	ck, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return "", fmt.Errorf("%s key has no peer ID", k.Type())
	}
	pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("%s key has no peer ID: the market needs ed25519 keys", k.Type())
	}
	lk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(lk)
}
