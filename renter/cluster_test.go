package renter

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/zennet/zennet/cluster"
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
