package renter

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/session"
)

func TestClusterNet(t *testing.T) {
	seen := map[netip.Prefix]bool{}
	for range 40 {
		cn, err := newClusterNet(netip.Prefix{})
		if err != nil {
			t.Fatal(err)
		}
		if err := cluster.CheckSubnet(cn.subnet); err != nil || cn.subnet.Bits() != 16 || !cluster.DefaultPool.Contains(cn.subnet.Addr()) {
			t.Fatalf("subnet %v: %v", cn.subnet, err)
		}
		seen[cn.subnet] = true
	}
	if len(seen) < 10 {
		t.Errorf("40 sessions drew only %d subnets of 64", len(seen))
	}
	fixed := netip.MustParsePrefix("10.77.0.0/16")
	cn, err := newClusterNet(fixed)
	if err != nil || cn.subnet != fixed {
		t.Fatalf("fixed subnet: %v %v", cn.subnet, err)
	}
	if _, err := newClusterNet(netip.MustParsePrefix("192.168.0.0/16")); err == nil {
		t.Fatal("a subnet outside 10/8 was taken")
	}
	// Addresses are handed out once each, across accepts.
	j1, j2 := cn.join("s")(2), cn.join("s")(1)
	if strings.Join(j1.Addrs, " ") != "10.77.0.1 10.77.0.2" || strings.Join(j2.Addrs, " ") != "10.77.0.3" || j1.Subnet != "10.77.0.0/16" || !strings.HasPrefix(j1.Key, "ssh-ed25519 ") {
		t.Fatalf("joins %+v %+v", j1, j2)
	}
}

func TestClusterScript(t *testing.T) {
	m := cluster.Membership{Session: "s1", Subnet: netip.MustParsePrefix("10.77.0.0/16"), Seq: 3, Members: []cluster.Member{
		{Name: "zennet-1", Addr: netip.MustParseAddr("10.77.0.1"), Lease: "zn-a"},
		{Name: "zennet-2", Addr: netip.MustParseAddr("10.77.0.2"), Lease: "zn-b"},
	}}
	hosts := []session.Host{{Name: "zennet-1", LeaseID: "zn-a", HostKey: "ssh-ed25519 AAAA1", Limits: proto.Limits{CPUs: 2}},
		{Name: "zennet-2", LeaseID: "zn-b", HostKey: "ssh-ed25519 AAAA2", Limits: proto.Limits{CPUs: 0.5}}}
	s := ClusterScript(m, hosts, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"))
	for _, want := range []string{
		"zennet-1,10.77.0.1 ssh-ed25519 AAAA1\n", "zennet-2,10.77.0.2 ssh-ed25519 AAAA2\n",
		"zennet-1 slots=2\n", "zennet-2 slots=1\n", "2/ssh zennet-1\n",
		"Host zennet-1 10.77.0.1 zennet-2 10.77.0.2\n", "StrictHostKeyChecking yes", "IdentityFile /root/.ssh/id_zennet",
		"chmod 600 /root/.ssh/id_zennet.new",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
}
