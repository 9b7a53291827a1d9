package cluster

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/proto"
)

// Tunnels reach a session's other providers: Ensure makes sure there is a
// path to each provider of peers (one member each) and says what it is.
type Tunnels interface {
	Ensure(key SessionKey, peers []Member) []proto.ClusterPeer
}

// Node is a provider's side of its renters' session networks. It takes
// each session's memberships, checked against the key that owns the
// session's hosts here; installs them in the Fabric; names the session's
// hosts in each local host's /etc/hosts; and keeps paths to the session's
// other providers. A membership it refuses changes nothing.
type Node struct {
	Fabric *Fabric
	// Self is this provider's host key fingerprint.
	Self string
	// Files writes a session's files onto its hosts here: /etc/hosts and
	// the session directory (SessionFiles).
	Files func(key SessionKey, f Files) error
	// Tunnels reach other providers; nil: none is reached.
	Tunnels Tunnels
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Update takes a renter's encoded membership of one of its sessions.
func (n *Node) Update(owner ssh.PublicKey, raw []byte) (proto.ClusterStatus, error) {
	m, err := Decode(raw)
	if err != nil {
		return proto.ClusterStatus{}, err
	}
	key := SessionKey{Renter: ssh.FingerprintSHA256(owner), Session: m.Session}
	var held *Membership
	if h, ok := n.Fabric.Membership(key); ok {
		held = &h
	}
	now := time.Now()
	if n.Now != nil {
		now = n.Now()
	}
	if err := Check(m, owner, held, now); err != nil {
		return proto.ClusterStatus{}, err
	}
	if err := n.Fabric.SetMembership(key, m); err != nil {
		return proto.ClusterStatus{}, err
	}
	st := proto.ClusterStatus{Session: m.Session, Seq: m.Seq}
	if n.Files != nil {
		if err := n.Files(key, SessionFiles(m)); err != nil {
			return st, fmt.Errorf("write the session's files in its hosts: %w", err)
		}
	}
	remote := n.Fabric.RemoteProviders(key, n.Self)
	if n.Tunnels != nil {
		st.Peers = n.Tunnels.Ensure(key, remote)
	} else {
		for _, mb := range remote {
			st.Peers = append(st.Peers, proto.ClusterPeer{Provider: mb.Provider, Path: proto.PathDown})
		}
	}
	return st, nil
}

// HostsLines are a session's lines of /etc/hosts: each member's address
// and name.
func HostsLines(m Membership) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# zennet session %s, membership %d\n", m.Session, m.Seq)
	for _, mb := range m.Members {
		fmt.Fprintf(&b, "%s\t%s\n", mb.Addr, mb.Name)
	}
	return []byte(b.String())
}
