package sshgate_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net/netip"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
)

// sessionKey is a session's own key pair, as the renter makes it.
func sessionKey(t *testing.T) (pub, pemKey string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.PublicKey()))), string(pem.EncodeToMemory(block))
}

// TestClusterMembershipOverTheWire: a renter puts a host on its session's
// network and sends memberships; forged, stale, foreign and oversized ones
// get a clear error and change nothing; the provider's tunnel endpoint
// refuses a stranger provider and a stranger's relay.
func TestClusterMembershipOverTheWire(t *testing.T) {
	p := startBilledProvider(t, lease.Capacity{Leases: 4, Memory: 4 << 30, CPUs: 4, Disk: 16 << 30}, nil)
	renter, stranger, peerKey := newSigner(t), newSigner(t), newSigner(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := sshgate.Dial(ctx, p.addr, sshgate.ClientConfig{Signer: renter, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	subnet := netip.MustParsePrefix("10.77.0.0/16")
	pub, priv := sessionKey(t)
	_, leases, err := c.RentJoin(ctx, proto.Demand{Count: 1, Limits: proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}}, payEmbedded,
		func(n int) *proto.ClusterJoin {
			return &proto.ClusterJoin{Session: "s1", Subnet: subnet.String(), Addrs: []string{"10.77.0.1"}, Key: pub, PrivateKey: priv}
		})
	if err != nil {
		t.Fatal(err)
	}
	if leases[0].ClusterAddr != "10.77.0.1" {
		t.Fatalf("lease's cluster address %q", leases[0].ClusterAddr)
	}
	self := gossh.FingerprintSHA256(c.HostKey)
	member := cluster.Member{Name: "zennet-1", Addr: netip.MustParseAddr("10.77.0.1"), Lease: leases[0].ID, Provider: self,
		Endpoint: p.addr, HostKey: leases[0].HostKey, Slots: 1}
	other := cluster.Member{Name: "zennet-2", Addr: netip.MustParseAddr("10.77.0.2"), Lease: "zn-elsewhere", Provider: gossh.FingerprintSHA256(peerKey.PublicKey()),
		Endpoint: "127.0.0.1:1", HostKey: leases[0].HostKey, Slots: 1}
	signed := func(signer gossh.Signer, seq uint64, members ...cluster.Member) []byte {
		m := cluster.Membership{Session: "s1", Subnet: subnet, Seq: seq, Expires: time.Now().Add(5 * time.Minute), Members: members}
		if err := m.Sign(signer); err != nil {
			t.Fatal(err)
		}
		b, err := cluster.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	held := signed(renter, 2, member, other)
	st, err := c.SetMembership(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	// The other provider cannot be reached (nothing listens there).
	if st.Seq != 2 || len(st.Peers) != 1 || st.Peers[0].Path != proto.PathDown {
		t.Fatalf("status %+v", st)
	}
	for _, tt := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"signed by a stranger", signed(stranger, 3, member), "not signed by the session's renter"},
		{"stale", signed(renter, 1, member), "stale"},
		{"a host here at another address", signed(renter, 3, cluster.Member{Name: "zennet-1", Addr: netip.MustParseAddr("10.77.0.9"), Lease: leases[0].ID,
			Provider: self, Endpoint: p.addr, HostKey: leases[0].HostKey, Slots: 1}), "is at 10.77.0.1"},
		{"oversized", []byte(`{"v":1,"pad":"` + strings.Repeat("x", cluster.MaxSize) + `"}` + "\n"), "too big"},
		{"not a membership", []byte(`{"v":1}` + "\n"), "rejected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.SetMembership(ctx, tt.raw); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SetMembership: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	// Nothing changed: the same membership again is still the one held.
	if st, err := c.SetMembership(ctx, held); err != nil || st.Seq != 2 {
		t.Fatalf("after the refusals: %+v, %v; want the membership of sequence 2 still held", st, err)
	}

	// A stranger's relay for the session, and a provider the membership
	// does not name, are refused.
	sc, err := sshgate.Dial(ctx, p.addr, sshgate.ClientConfig{Signer: stranger, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.OpenClusterRelay(ctx, "s1", other.Provider); err == nil {
		t.Fatal("a stranger opened a relay into the session")
	}
	intruder := newSigner(t)
	conn, err := gossh.Dial("tcp", p.addr, &gossh.ClientConfig{User: "zennet", Auth: []gossh.AuthMethod{gossh.PublicKeys(intruder)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	extra := gossh.Marshal(struct{ Renter, Session, Peer string }{gossh.FingerprintSHA256(renter.PublicKey()), "s1", ""})
	if _, _, err := conn.OpenChannel(sshgate.ChannelCluster, extra); err == nil {
		t.Fatal("a provider not in the session opened a tunnel into it")
	}
	// The session's other provider (by its key) is let in.
	peer, err := gossh.Dial("tcp", p.addr, &gossh.ClientConfig{User: "zennet", Auth: []gossh.AuthMethod{gossh.PublicKeys(peerKey)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	ch, _, err := peer.OpenChannel(sshgate.ChannelCluster, extra)
	if err != nil {
		t.Fatalf("the session's other provider was refused: %v", err)
	}
	ch.Close()
}
