package netsandbox

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/cluster"
)

// clusterHost is a sandbox with a cluster link attached to a fabric.
type clusterHost struct {
	*sandbox
	n    *Network
	addr netip.Addr
}

func startClusterHost(t *testing.T, m *Manager, fab *cluster.Fabric, key cluster.SessionKey, subnet netip.Prefix, lease string, addr netip.Addr) clusterHost {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := m.CreateWith(ctx, lease, &ClusterLink{Addr: netip.PrefixFrom(addr, subnet.Bits()), MAC: cluster.MAC(addr)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if _, err := fab.Attach(lease, key, subnet, addr, n.ClusterPort()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fab.Detach(lease) })
	if err := n.ServeCluster(func(f []byte) { fab.FromHost(lease, f) }); err != nil {
		t.Fatal(err)
	}
	return clusterHost{sandbox: startSandbox(t, n), n: n, addr: addr}
}

// TestClusterLink: sandboxes of one session reach each other on their
// session's addresses, any port, TCP and UDP, both ways, with frames as
// large as the link takes; a sandbox of another session with the same
// subnet and addresses reaches none of them, and none reaches anything
// else through the link.
func TestClusterLink(t *testing.T) {
	runscEnv(t)
	m := newManager(t, Config{})
	fab := cluster.NewFabric(nil)
	subnet := netip.MustParsePrefix("10.77.0.0/16")
	addr := func(i int) netip.Addr { a, _ := cluster.HostAddr(subnet, i); return a }
	provider := "SHA256:" + strings.Repeat("A", 43)
	mine := cluster.SessionKey{Renter: "SHA256:renter", Session: "s1"}
	theirs := cluster.SessionKey{Renter: "SHA256:stranger", Session: "s1"}
	h1 := startClusterHost(t, m, fab, mine, subnet, "zn-cl1", addr(1))
	h2 := startClusterHost(t, m, fab, mine, subnet, "zn-cl2", addr(2))
	other := startClusterHost(t, m, fab, theirs, subnet, "zn-cl3", addr(2))
	member := func(name, lease string, a netip.Addr) cluster.Member {
		return cluster.Member{Name: name, Addr: a, Lease: lease, Provider: provider, Endpoint: "127.0.0.1:1"}
	}
	ms := cluster.Membership{Session: "s1", Subnet: subnet, Seq: 1, Expires: time.Now().Add(time.Minute),
		Members: []cluster.Member{member("zennet-1", "zn-cl1", addr(1)), member("zennet-2", "zn-cl2", addr(2))}}
	if err := fab.SetMembership(mine, ms); err != nil {
		t.Fatal(err)
	}
	ms.Members = []cluster.Member{member("zennet-1", "zn-cl3", addr(2))}
	if err := fab.SetMembership(theirs, ms); err != nil {
		t.Fatal(err)
	}

	// eth1 carries the session's address; eth0 is as before.
	if out, code := h2.exec("ip", "-4", "-o", "addr", "show", "dev", "eth1"); code != 0 || !strings.Contains(out, addr(2).String()+"/16") {
		t.Fatalf("eth1 in host 2: %d %s", code, out)
	}

	const port = 9000
	server := fmt.Sprintf(`python3 -c 'import socket, threading
def tcp():
    s = socket.create_server(("0.0.0.0", %[1]d))
    while True:
        c, _ = s.accept()
        c.sendall(b"x" * (8 << 20)); c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", %[1]d))
    while True:
        b, a = s.recvfrom(65535); s.sendto(b"pong", a)
threading.Thread(target=udp, daemon=True).start()
tcp()' </dev/null >/dev/null 2>&1 &`, port)
	for _, h := range []clusterHost{h1, h2} {
		if out, code := h.exec("/bin/bash", "-c", server); code != 0 {
			t.Fatalf("start server: %d %s", code, out)
		}
	}
	to := func(h clusterHost, proto string) string { return fmt.Sprintf("%s:%s:%d", proto, h.addr, port) }
	want := "ok 8388608 "
	var res map[string]string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if res = h2.probe(to(h1, "tcp")); strings.HasPrefix(res[to(h1, "tcp")], want) {
			break
		}
	}
	// Both ways, TCP (8 MiB) and UDP.
	for _, c := range []struct {
		from   clusterHost
		target string
		want   string
	}{
		{h2, to(h1, "tcp"), want}, {h1, to(h2, "tcp"), want},
		{h2, to(h1, "udp"), "ok pong"}, {h1, to(h2, "udp"), "ok pong"},
	} {
		if got := c.from.probe(c.target)[c.target]; !strings.HasPrefix(got, c.want) {
			t.Errorf("from %v, %s: %s", c.from.addr, c.target, got)
		}
	}
	// The other session's host, at host 2's address, reaches nobody of
	// this session; nor does anyone reach anything else through eth1.
	for _, c := range []struct {
		from   clusterHost
		target string
	}{
		{other, to(h1, "tcp")}, {other, to(h1, "udp")},
		{h1, fmt.Sprintf("tcp:%s:%d", addr(3), port)},
		{h1, fmt.Sprintf("tcp:%s:%d", lastHost(subnet), port)},
	} {
		if got := c.from.probe(c.target)[c.target]; strings.HasPrefix(got, "ok") {
			t.Errorf("from %v (%s), %s: %s", c.from.addr, c.from.n.id, c.target, got)
		}
	}
	if fab.Dropped() == 0 {
		t.Error("the fabric dropped nothing")
	}
	// The link's bytes are the network's.
	if c := h1.n.Counters(); c.BytesOut < 8<<20 {
		t.Errorf("host 1's network counted %d bytes out, want at least the 8 MiB it sent", c.BytesOut)
	}
}

func lastHost(p netip.Prefix) netip.Addr {
	a, _ := cluster.HostAddr(p, 1<<(32-p.Bits())-2)
	return a
}
