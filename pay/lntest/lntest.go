// Package lntest runs a real Lightning network on loopback for tests: btcd
// in simnet and lnd nodes, from the pinned binaries that
// scripts/build-lnd.sh builds and caches under $ZENNET_CACHE_DIR (default
// ~/.cache/zennet). Tests that need the network call Require, which skips
// them, saying how to build the binaries, when they are missing.
//
// NewNetwork starts btcd and the nodes, mines 400 blocks to the first node
// (btcd has no generatetoaddress: it is restarted with --miningaddr), and
// OpenChannel opens a channel and waits until a probe payment crosses it.
// Every process runs in the test's temporary directory on ports of its own
// and is stopped by the test's cleanup.
package lntest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/zennet/zennet/pay"
)

// The pinned versions: scripts/build-lnd.sh builds these.
const (
	LNDVersion  = "v0.21.3-beta"
	BTCDVersion = "v0.26.2"
)

// Binaries are the paths of the network's programs.
type Binaries struct {
	LND, LNCLI, BTCD, BTCCTL string
}

// CacheDir is $ZENNET_CACHE_DIR, or ~/.cache/zennet.
func CacheDir() string {
	if d := os.Getenv("ZENNET_CACHE_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "zennet-cache")
	}
	return filepath.Join(home, ".cache", "zennet")
}

// ErrNotBuilt means the pinned binaries are not in the cache.
var ErrNotBuilt = errors.New("lightning test network binaries not built")

// FindBinaries returns the cached binaries, or an error wrapping ErrNotBuilt
// that says how to build them.
func FindBinaries() (Binaries, error) {
	c := CacheDir()
	b := Binaries{
		LND:    filepath.Join(c, "lnd", LNDVersion, "lnd"),
		LNCLI:  filepath.Join(c, "lnd", LNDVersion, "lncli"),
		BTCD:   filepath.Join(c, "btcd", BTCDVersion, "btcd"),
		BTCCTL: filepath.Join(c, "btcd", BTCDVersion, "btcctl"),
	}
	for _, p := range []string{b.LND, b.LNCLI, b.BTCD, b.BTCCTL} {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			return Binaries{}, fmt.Errorf("%w: no %s (build them with scripts/build-lnd.sh, about 5 minutes once)", ErrNotBuilt, p)
		}
	}
	return b, nil
}

// Require returns the binaries, or skips the test with a message saying
// what is missing and how to build it.
func Require(t testing.TB) Binaries {
	t.Helper()
	b, err := FindBinaries()
	if err != nil {
		t.Skipf("SKIP lightning: %v", err)
	}
	return b
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a running program whose output goes to a log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(t testing.TB, name, log, bin string, args ...string) *process {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p
}

// stop ends the process: SIGTERM, then SIGKILL after 20 s.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the end of the process's log.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// Network is btcd in simnet and lnd nodes on loopback.
type Network struct {
	t    testing.TB
	Bins Binaries
	Dir  string

	btcd     *process
	btcdRPC  string
	btcdP2P  string
	btcdCert string
	Nodes    []*Node
}

// Node is one lnd node of the network.
type Node struct {
	Name string
	Dir  string
	// Config reaches the node's gRPC interface, lncli style.
	Config pay.LNDConfig
	// LND is a connection to the node.
	LND     *pay.LND
	P2P     string
	proc    *process
	network *Network
}

const rpcUser, rpcPass = "zennet", "zennet"

// NewNetwork starts btcd and one lnd node per name, and mines 400 blocks to
// the first node, so that it has coins to open channels with. Everything
// stops when the test ends.
func NewNetwork(t testing.TB, names ...string) *Network {
	t.Helper()
	bins := Require(t)
	dir, err := os.MkdirTemp("", "zennet-lntest-")
	if err != nil {
		t.Fatal(err)
	}
	n := &Network{t: t, Bins: bins, Dir: dir}
	t.Cleanup(n.stop)
	n.startBTCD("")
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		node := &Node{Name: name, Dir: filepath.Join(dir, name), network: n}
		n.Nodes = append(n.Nodes, node)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = node.start()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		n.fail("start lnd: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr, err := n.Nodes[0].LND.Lightning().NewAddress(ctx, &lnrpc.NewAddressRequest{Type: lnrpc.AddressType_WITNESS_PUBKEY_HASH})
	if err != nil {
		n.fail("new address: %v", err)
	}
	n.btcd.stop()
	n.startBTCD(addr.Address)
	n.Mine(400)
	for _, node := range n.Nodes {
		node.waitSynced(ctx)
	}
	n.waitFor(ctx, "confirmed coins on "+n.Nodes[0].Name, func() (bool, error) {
		b, err := n.Nodes[0].LND.Lightning().WalletBalance(ctx, &lnrpc.WalletBalanceRequest{})
		return err == nil && b.ConfirmedBalance > 0, err
	})
	return n
}

func (n *Network) fail(format string, args ...any) {
	n.t.Helper()
	var logs strings.Builder
	if n.btcd != nil {
		fmt.Fprintf(&logs, "\n--- btcd log tail:\n%s", n.btcd.tail())
	}
	for _, node := range n.Nodes {
		if node.proc != nil {
			fmt.Fprintf(&logs, "\n--- %s log tail:\n%s", node.Name, node.proc.tail())
		}
	}
	n.t.Fatalf("lntest: "+format+"%s", append(args, logs.String())...)
}

func (n *Network) stop() {
	var wg sync.WaitGroup
	for _, node := range n.Nodes {
		if node.LND != nil {
			node.LND.Close()
		}
		if node.proc != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				node.proc.stop()
			}()
		}
	}
	wg.Wait()
	if n.btcd != nil {
		n.btcd.stop()
	}
	if n.t.Failed() {
		for _, p := range append([]*Node{{Name: "btcd", proc: n.btcd}}, n.Nodes...) {
			if p.proc != nil {
				n.t.Logf("lntest: %s log tail:\n%s", p.Name, p.proc.tail())
			}
		}
	}
	os.RemoveAll(n.Dir)
}

// startBTCD starts btcd, mining to miningAddr if set; the first start
// picks its ports, which restarts keep.
func (n *Network) startBTCD(miningAddr string) {
	n.t.Helper()
	if n.btcdRPC == "" {
		n.btcdRPC = fmt.Sprintf("127.0.0.1:%d", FreePort(n.t))
		n.btcdP2P = fmt.Sprintf("127.0.0.1:%d", FreePort(n.t))
	}
	appdata := filepath.Join(n.Dir, "btcd")
	n.btcdCert = filepath.Join(appdata, "rpc.cert")
	args := []string{"--simnet", "--datadir=" + filepath.Join(appdata, "data"), "--logdir=" + filepath.Join(appdata, "logs"),
		"--rpccert=" + n.btcdCert, "--rpckey=" + filepath.Join(appdata, "rpc.key"), "--rpcuser=" + rpcUser, "--rpcpass=" + rpcPass,
		"--rpclisten=" + n.btcdRPC, "--listen=" + n.btcdP2P, "--txindex", "--nobanning", "--debuglevel=info"}
	if miningAddr != "" {
		args = append(args, "--miningaddr="+miningAddr)
	}
	if err := os.MkdirAll(appdata, 0o755); err != nil {
		n.t.Fatal(err)
	}
	n.btcd = start(n.t, "btcd", filepath.Join(n.Dir, fmt.Sprintf("btcd-%d.log", time.Now().UnixNano())), n.Bins.BTCD, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n.waitFor(ctx, "btcd RPC", func() (bool, error) {
		if n.btcd.exited() {
			n.fail("btcd exited: %v", n.btcd.err)
		}
		_, err := n.btcdCall(ctx, "getblockcount")
		return err == nil, nil
	})
}

// btcdCall makes one JSON-RPC call to btcd.
func (n *Network) btcdCall(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	pem, err := os.ReadFile(n.btcdCert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "https://"+n.btcdRPC, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(rpcUser, rpcPass)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 2 * time.Minute}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("btcd %s: %s: %.200s", method, resp.Status, b)
	}
	if out.Error != nil {
		return nil, fmt.Errorf("btcd %s: %s", method, out.Error.Message)
	}
	return out.Result, nil
}

// Mine mines blocks and waits until every node has seen them.
func (n *Network) Mine(blocks int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := n.btcdCall(ctx, "generate", blocks); err != nil {
		n.fail("mine %d blocks: %v", blocks, err)
	}
	raw, err := n.btcdCall(ctx, "getblockcount")
	if err != nil {
		n.fail("block count: %v", err)
	}
	var height uint32
	if err := json.Unmarshal(raw, &height); err != nil {
		n.fail("block count %s: %v", raw, err)
	}
	for _, node := range n.Nodes {
		n.waitFor(ctx, node.Name+" at height "+fmt.Sprint(height), func() (bool, error) {
			info, err := node.LND.Lightning().GetInfo(ctx, &lnrpc.GetInfoRequest{})
			return err == nil && info.BlockHeight >= height, nil
		})
	}
}

// waitFor polls cond every 100 ms until it holds, fails or ctx ends.
func (n *Network) waitFor(ctx context.Context, what string, cond func() (bool, error)) {
	n.t.Helper()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			n.fail("waiting for %s: %v (last error: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// start starts the node and connects to it. Its ports are picked free a
// moment before lnd binds them, so another process may take one first:
// then it starts again, afresh, on other ports.
func (node *Node) start() error {
	for attempt := 1; ; attempt++ {
		err := node.startOnce()
		if err == nil || attempt == 3 || node.proc == nil || !node.proc.exited() {
			return err
		}
		if b, _ := os.ReadFile(node.proc.log); !strings.Contains(string(b), "address already in use") {
			return err
		}
		node.network.t.Logf("lntest: %s lost a port to another process; starting it again on other ports", node.Name)
		if err := os.RemoveAll(node.Dir); err != nil {
			return err
		}
	}
}

func (node *Node) startOnce() error {
	n := node.network
	rpc := fmt.Sprintf("127.0.0.1:%d", FreePort(n.t))
	node.P2P = fmt.Sprintf("127.0.0.1:%d", FreePort(n.t))
	node.Config = pay.LNDConfig{LndDir: node.Dir, RPCServer: rpc, Network: "simnet"}
	args := []string{
		"--lnddir=" + node.Dir, "--bitcoin.simnet", "--bitcoin.node=btcd",
		"--btcd.rpchost=" + n.btcdRPC, "--btcd.rpcuser=" + rpcUser, "--btcd.rpcpass=" + rpcPass, "--btcd.rpccert=" + n.btcdCert,
		"--rpclisten=" + rpc, "--listen=" + node.P2P, "--norest", "--nobootstrap",
		"--noseedbackup", "--bitcoin.defaultchanconfs=1", "--trickledelay=50", "--accept-keysend",
		"--alias=" + node.Name, "--debuglevel=info",
	}
	if err := os.MkdirAll(node.Dir, 0o755); err != nil {
		return err
	}
	node.proc = start(n.t, node.Name, filepath.Join(n.Dir, node.Name+".log"), n.Bins.LND, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := node.Config.WithDefaults()
	if err != nil {
		return err
	}
	for {
		if node.proc.exited() {
			return fmt.Errorf("%s exited: %v", node.Name, node.proc.err)
		}
		if _, err := os.Stat(cfg.MacaroonPath); err == nil {
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			node.LND, err = pay.DialLND(dctx, node.Config)
			dcancel()
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not start: %w", node.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (node *Node) waitSynced(ctx context.Context) {
	node.network.t.Helper()
	node.network.waitFor(ctx, node.Name+" synced to chain", func() (bool, error) {
		info, err := node.LND.Lightning().GetInfo(ctx, &lnrpc.GetInfoRequest{})
		return err == nil && info.SyncedToChain, nil
	})
}

// ChannelBalance returns the node's local and remote balances over all
// its channels, in msat, once no HTLC is pending on them: a payment that
// has settled moves the payee's balance only when the settlement is
// committed, a moment later.
func (node *Node) ChannelBalance(t testing.TB) (local, remote uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node.network.waitFor(ctx, "no pending HTLCs on "+node.Name, func() (bool, error) {
		chans, err := node.LND.Lightning().ListChannels(ctx, &lnrpc.ListChannelsRequest{})
		if err != nil {
			return false, err
		}
		for _, c := range chans.Channels {
			if len(c.PendingHtlcs) > 0 {
				return false, nil
			}
		}
		return true, nil
	})
	b, err := node.LND.Lightning().ChannelBalance(ctx, &lnrpc.ChannelBalanceRequest{})
	if err != nil {
		t.Fatalf("%s channel balance: %v", node.Name, err)
	}
	return b.LocalBalance.GetMsat(), b.RemoteBalance.GetMsat()
}

// OpenChannel connects from to to, opens a channel of sat satoshis from
// from's coins, mines it, and waits until a probe can cross it: a payment
// of 1000 msat to a random payment hash, which the other end refuses as
// unknown, so the probe moves no money.
func (n *Network) OpenChannel(from, to *Node, sat int64) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := from.LND.Lightning().ConnectPeer(ctx, &lnrpc.ConnectPeerRequest{
		Addr: &lnrpc.LightningAddress{Pubkey: to.LND.Pubkey(), Host: to.P2P}, Perm: false, Timeout: 30})
	if err != nil && !strings.Contains(err.Error(), "already connected") {
		n.fail("connect %s to %s: %v", from.Name, to.Name, err)
	}
	n.waitFor(ctx, from.Name+" peers with "+to.Name, func() (bool, error) {
		peers, err := from.LND.Lightning().ListPeers(ctx, &lnrpc.ListPeersRequest{})
		if err != nil {
			return false, err
		}
		for _, p := range peers.Peers {
			if p.PubKey == to.LND.Pubkey() {
				return true, nil
			}
		}
		return false, nil
	})
	if _, err := from.LND.Lightning().OpenChannelSync(ctx, &lnrpc.OpenChannelRequest{
		NodePubkey: mustHex(to.LND.Pubkey()), LocalFundingAmount: sat}); err != nil {
		n.fail("open channel %s -> %s: %v", from.Name, to.Name, err)
	}
	n.Mine(6)
	for _, node := range []*Node{from, to} {
		n.waitFor(ctx, "active channel on "+node.Name, func() (bool, error) {
			chans, err := node.LND.Lightning().ListChannels(ctx, &lnrpc.ListChannelsRequest{ActiveOnly: true})
			return err == nil && len(chans.Channels) > 0, err
		})
	}
	n.waitFor(ctx, "a probe from "+from.Name+" to "+to.Name, func() (bool, error) {
		return from.probe(ctx, to)
	})
}

// probe sends 1000 msat to a random payment hash: the destination's refusal
// (incorrect payment details) proves the route works.
func (node *Node) probe(ctx context.Context, to *Node) (bool, error) {
	hash := make([]byte, 32)
	rand.Read(hash)
	stream, err := node.LND.Router().SendPaymentV2(ctx, &routerrpc.SendPaymentRequest{
		Dest: mustHex(to.LND.Pubkey()), AmtMsat: 1000, PaymentHash: hash,
		TimeoutSeconds: 10, FeeLimitMsat: 1000, NoInflightUpdates: true})
	if err != nil {
		return false, err
	}
	for {
		pm, err := stream.Recv()
		if err != nil {
			return false, err
		}
		switch pm.Status {
		case lnrpc.Payment_FAILED:
			return pm.FailureReason == lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS,
				fmt.Errorf("probe: %s", pm.FailureReason)
		case lnrpc.Payment_SUCCEEDED:
			return true, nil
		}
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("lntest: node pubkey " + s + " is not hex")
	}
	return b
}
