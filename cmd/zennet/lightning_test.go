package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/pay/lntest"
	"github.com/zennet/zennet/session"
)

// envelope is the --json output's wrapper.
type envelope struct {
	Kind string          `json:"kind"`
	Data json.RawMessage `json:"data"`
}

// TestLightningRent rents two hosts paid over a real Lightning network
// (btcd simnet, the renter's and the provider's own lnd, one channel) for a
// few intervals of work, releases them, and checks that the channel
// balances moved by exactly what the ledgers say was paid.
func TestLightningRent(t *testing.T) {
	testenv.Runtime(t)
	zennet := testenv.AgentBinary(t) // the built zennet binary
	net := lntest.NewNetwork(t, "renter", "provider")
	rn, pn := net.Nodes[0], net.Nodes[1]
	net.OpenChannel(rn, pn, 1_000_000)
	renter0, _ := rn.ChannelBalance(t)
	provider0, _ := pn.ChannelBalance(t)

	dir := t.TempDir()
	config, pdir := filepath.Join(dir, "config"), filepath.Join(dir, "provider")
	env := append(os.Environ(), "HOME="+filepath.Join(dir, "home"), "ZENNET_CONFIG_DIR="+config, "ZENNET_DATA_DIR="+filepath.Join(dir, "data"))
	lnd := func(n *lntest.Node) []string {
		return []string{"--lnddir", n.Dir, "--rpcserver", n.Config.RPCServer, "--network", "simnet"}
	}
	start := func(name string, args ...string) (*exec.Cmd, *json.Decoder, *strings.Builder) {
		cmd := exec.Command(zennet, args...)
		cmd.Env = env
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Signal(syscall.SIGINT)
				cmd.Wait()
			}
			if t.Failed() {
				t.Logf("%s stderr:\n%s", name, stderr.String())
			}
		})
		return cmd, json.NewDecoder(bufio.NewReader(stdout)), &stderr
	}
	// next reads the next document of kind; the events of a renter's
	// stream between its hosts and its receipts are skipped.
	next := func(dec *json.Decoder, kind string, v any) {
		t.Helper()
		var e envelope
		for e.Kind == "" || (e.Kind == "event" && kind != "event") {
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("reading the %s document: %v", kind, err)
			}
		}
		if e.Kind != kind {
			t.Fatalf("got a %q document, want %q", e.Kind, kind)
		}
		if err := json.Unmarshal(e.Data, v); err != nil {
			t.Fatal(err)
		}
	}

	// 1 msat per µs of CPU: every interval's bill is above lnd's 1000 msat
	// minimum HTLC as soon as the hosts work.
	prov, pout, _ := start("provider", append([]string{"provide", "--listen", "127.0.0.1:0", "--data-dir", pdir,
		"--rate", "cpu_ns=1/1000", "--calibration", "off", "--lightning", "--json"}, lnd(pn)...)...)
	var info struct{ Address string }
	next(pout, "provider", &info)

	rent, rout, rerr := start("renter", append([]string{"-n", "2", "-m", "256M", "--interval", "1s", "--provider", info.Address,
		"--pay", "lightning", "--json"}, lnd(rn)...)...)
	var hosts struct{ Hosts []struct{ Name string } }
	next(rout, "hosts", &hosts)
	if len(hosts.Hosts) != 2 {
		t.Fatalf("got %d hosts, want 2", len(hosts.Hosts))
	}
	for _, h := range hosts.Hosts {
		// A fixed amount of work: about a CPU-second here, however loaded
		// the machine is.
		ssh := exec.Command("ssh", "-F", filepath.Join(config, "ssh_config"), h.Name, `head -c 300000000 /dev/zero | sha256sum`)
		ssh.Env = env
		if out, err := ssh.CombinedOutput(); err != nil {
			t.Fatalf("ssh %s: %v\n%s", h.Name, err, out)
		}
	}
	// A few intervals, each paid: wait until every host has had five
	// reports and the provider has acknowledged all it was paid, with less
	// than lnd's minimum payment left due.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		settled := 0
		var last []session.Usage
		recs, _ := session.Live(config)
		for _, r := range recs {
			us, _ := session.ReadUsage(config, r.ID)
			last = append(last, us...)
			for _, u := range us {
				if u.Method != pay.MethodLightning {
					t.Fatalf("%s pays by %q, want lightning", u.Name, u.Method)
				}
				if u.Accepted >= 5 && u.CreditedMsat >= 100_000 && u.CreditedMsat == u.PaidMsat && u.DueMsat < 1000 {
					settled++
				}
			}
		}
		if settled == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after two minutes: %+v", last)
		}
		time.Sleep(200 * time.Millisecond)
	}

	rent.Process.Signal(syscall.SIGINT)
	var receipts struct {
		Hosts []struct {
			Name         string      `json:"name"`
			CreditedMsat uint64      `json:"credited_msat"`
			Receipt      pay.Receipt `json:"receipt"`
		} `json:"hosts"`
		Total pay.Totals `json:"total"`
	}
	next(rout, "receipts", &receipts)
	io.Copy(io.Discard, rout.Buffered())
	if err := rent.Wait(); err != nil {
		t.Fatalf("renter: %v", err)
	}
	if s := rerr.String(); strings.Contains(s, "refused") || strings.Contains(s, "dropped") || strings.Contains(s, "rejected") {
		t.Fatalf("renter's stderr:\n%s", s)
	}
	prov.Process.Signal(syscall.SIGINT)
	if err := prov.Wait(); err != nil {
		t.Fatalf("provider: %v", err)
	}

	// The renter's receipts: everything payable was paid and acknowledged.
	for _, h := range receipts.Hosts {
		st := h.Receipt.Status
		t.Logf("%s: %d reports, billed %d msat, paid %d msat, fees %d msat, unpaid %d msat", h.Name, st.Reports, st.Billed, st.Paid, st.Fees, st.Unpaid)
		if st.Method != pay.MethodLightning || st.Paid != h.CreditedMsat || st.Unpaid >= st.MinPayable || st.Pending != 0 {
			t.Fatalf("%s: receipt %+v, acknowledged %d msat", h.Name, st, h.CreditedMsat)
		}
	}
	// The provider's ledger counted exactly that.
	l, err := pay.Open(filepath.Join(pdir, "ledger.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	prs, err := l.Receipts()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	ptotal := pay.Total(prs, pay.RoleProvider)
	if ptotal.Paid != receipts.Total.Paid || ptotal.Billed != receipts.Total.Billed || ptotal.Leases != 2 {
		t.Fatalf("provider's ledger: %+v; renter's receipts: %+v", ptotal, receipts.Total)
	}
	// And the channel moved by exactly the ledgers' totals.
	renter1, _ := rn.ChannelBalance(t)
	provider1, _ := pn.ChannelBalance(t)
	spent, earned := renter0-renter1, provider1-provider0
	t.Logf("renter's channel balance -%d msat, provider's +%d msat; ledgers: paid %d msat, fees %d msat",
		spent, earned, receipts.Total.Paid, receipts.Total.Fees)
	if spent != receipts.Total.Paid+receipts.Total.Fees || earned != ptotal.Paid {
		t.Fatal(fmt.Sprintf("channel balances moved -%d/+%d msat; ledgers say paid %d + fees %d, counted %d",
			spent, earned, receipts.Total.Paid, receipts.Total.Fees, ptotal.Paid))
	}
}
