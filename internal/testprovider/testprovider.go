// Package testprovider starts a real provider for tests, wired as 'zennet
// provide' wires one: runsc sandboxes each with its own user-mode network,
// a lease manager, the provider's billing, and the SSH gateway on loopback.
package testprovider

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/billing"
	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/netsandbox"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/sandbox"
	"github.com/zennet/zennet/sshgate"
)

// Provider is a running provider; the test's cleanup stops it and checks
// that it leaves no sandbox behind.
type Provider struct {
	Addr    string
	HostKey gossh.Signer
	Runtime *sandbox.Runtime
	Leases  *lease.Manager
	Billing *billing.Billing
	Ledger  *pay.Ledger
	Gateway *sshgate.Gateway
}

// Start runs a provider with capacity c whose billing configure may adjust
// (nil: a CPU rate of 1 msat per µs and the default grace and timeout).
func Start(t testing.TB, c lease.Capacity, configure func(*billing.Config), opts ...sshgate.GatewayOption) Provider {
	t.Helper()
	return StartWith(t, Options{Capacity: c, Billing: configure, Gateway: opts})
}

// Options are what StartWith sets up.
type Options struct {
	Capacity, PerRenter lease.Capacity
	// Billing, if not nil, adjusts the billing's configuration.
	Billing func(*billing.Config)
	Gateway []sshgate.GatewayOption
}

// StartWith is Start with a per-renter cap.
func StartWith(t testing.TB, o Options) Provider {
	t.Helper()
	c, configure, opts := o.Capacity, o.Billing, o.Gateway
	runsc, image := testenv.Runtime(t)
	dir := t.TempDir()
	nets, err := netsandbox.New(netsandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := sandbox.New(sandbox.Config{Runsc: runsc, Image: image, StateDir: filepath.Join(dir, "sb"), Networks: nets})
	if err != nil {
		t.Fatal(err)
	}
	hostKey := testenv.Signer(t)
	fabric := cluster.NewFabric(nil)
	// As a provider does: zennet-agent, next to the agent binary, serves
	// SSH in the sandboxes when it is there ('make build' builds both).
	agentBin := testenv.AgentBinary(t)
	mgr, err := lease.New(lease.Config{Runtime: rt, AgentBinary: agentBin, ServeBinary: lease.FindServeBinary(agentBin),
		Dir: filepath.Join(dir, "leases"), Signer: hostKey, Capacity: c, PerRenter: o.PerRenter, Fabric: fabric})
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := pay.Open(filepath.Join(dir, "ledger.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	bc := billing.Config{Ledger: ledger, Leases: mgr, HostKey: hostKey}
	if err := bc.Rates.Set(meter.CPU, "1/1000"); err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(&bc)
	}
	b, err := billing.New(bc)
	if err != nil {
		t.Fatal(err)
	}
	tunnels := sshgate.NewClusterTransport(hostKey, fabric, nil)
	t.Cleanup(tunnels.Close)
	node := &cluster.Node{Fabric: fabric, Self: gossh.FingerprintSHA256(hostKey.PublicKey()), Files: mgr.SetClusterFiles, Tunnels: tunnels}
	gw := sshgate.NewGateway(hostKey, mgr, b, append([]sshgate.GatewayOption{sshgate.WithCluster(node, tunnels)}, opts...)...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gw.Serve(l)
	t.Cleanup(func() {
		gw.Shutdown(context.Background())
		if err := mgr.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := rt.Close(); err != nil {
			t.Errorf("close runtime: %v", err)
		}
		nets.Close()
		ledger.Close()
	})
	return Provider{Addr: l.Addr().String(), HostKey: hostKey, Runtime: rt, Leases: mgr, Billing: b, Ledger: ledger, Gateway: gw}
}
