package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/proto"
)

const ctlLease = "zn-0123456789abcdef0"

// ctlProvider is a provider with one running lease.
type ctlProvider struct {
	mu       sync.Mutex
	state    control.LeaseState
	ended    bool
	draining bool
}

func (p *ctlProvider) Status(ctx context.Context) (control.Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	st := control.Status{Time: t,
		Identity: control.Identity{Fingerprint: "SHA256:prov", Address: "127.0.0.1:2222", DataDir: "/d", Started: t.Add(-time.Hour), Version: "test"},
		Capacity: control.Resources{Leases: 4, MemoryBytes: 4 << 30, CPUs: 4, DiskBytes: 10 << 30},
		Draining: p.draining, IntervalS: 5,
		Earnings: control.Earnings{SessionMsat: 1234, TodayMsat: 5678},
	}
	if !p.ended {
		st.Used = control.Resources{Leases: 1, MemoryBytes: 512 << 20, CPUs: 1, DiskBytes: 1 << 30}
		st.Leases = []control.LeaseStatus{{ID: ctlLease, Renter: "SHA256:renter", Started: t.Add(-time.Minute),
			Limits: proto.Limits{MemoryBytes: 512 << 20, CPUs: 1, DiskBytes: 1 << 30}, State: p.state,
			CPUNs: 2_500_000_000, MemoryBytes: 100 << 20, EarnedMsat: 1234, Method: "embedded"}}
	}
	return st, nil
}

func (p *ctlProvider) set(id string, from, to control.LeaseState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id != ctlLease || p.ended {
		return fmt.Errorf("no lease %s: %w", id, control.ErrNotFound)
	}
	if from != "" && p.state != from {
		return fmt.Errorf("lease %s is %s: %w", id, p.state, control.ErrConflict)
	}
	p.state = to
	return nil
}

func (p *ctlProvider) Pause(ctx context.Context, id string) error {
	return p.set(id, control.StateRunning, control.StatePaused)
}
func (p *ctlProvider) Resume(ctx context.Context, id string) error {
	return p.set(id, control.StatePaused, control.StateRunning)
}
func (p *ctlProvider) End(ctx context.Context, id string) error {
	if err := p.set(id, "", control.StateEnded); err != nil {
		return err
	}
	p.mu.Lock()
	p.ended = true
	p.mu.Unlock()
	return nil
}
func (p *ctlProvider) Drain(ctx context.Context, on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draining = on
	return nil
}

// zennet runs the command line and returns stdout, stderr and the exit code.
func zennet(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCmd(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err != nil {
		fmt.Fprintf(&errOut, "zennet: %s\n", sentence(err))
	}
	return out.String(), errOut.String(), cmdutil.ExitCode(err)
}

func TestProviderCommands(t *testing.T) {
	dir := t.TempDir()
	p := &ctlProvider{state: control.StateRunning}
	srv, err := control.Serve(context.Background(), control.SocketPath(dir), p)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	out, errOut, code := zennet(t, "provider", "status", "--data-dir", dir, "--json")
	if code != 0 {
		t.Fatalf("status: %d %s", code, errOut)
	}
	var doc struct {
		SchemaVersion int            `json:"schema_version"`
		Kind          string         `json:"kind"`
		Data          control.Status `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SchemaVersion != 1 || doc.Kind != "provider-status" || len(doc.Data.Leases) != 1 || doc.Data.Leases[0].CPUNs != 2_500_000_000 {
		t.Fatalf("status --json: %s", out)
	}

	out, _, code = zennet(t, "provider", "status", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "host key\tSHA256:prov\n") ||
		!strings.Contains(out, ctlLease+"\tSHA256:renter\trunning\t512M\t1\t2.50\t100M\t0\t0\t1234\t0\n") {
		t.Fatalf("status:\n%s", out)
	}

	out, _, code = zennet(t, "provider", "lease", ctlLease, "--data-dir", dir, "--json")
	if code != 0 || !strings.Contains(out, `"kind": "lease"`) || !strings.Contains(out, `"renter": "SHA256:renter"`) {
		t.Fatalf("lease --json: %d\n%s", code, out)
	}
	out, _, code = zennet(t, "provider", "lease", ctlLease, "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "state\trunning\n") || !strings.Contains(out, "cpu seconds\t2.50\n") {
		t.Fatalf("lease: %d\n%s", code, out)
	}

	out, _, code = zennet(t, "provider", "pause", ctlLease, "--data-dir", dir)
	if code != 0 || out != "paused "+ctlLease+"\n" {
		t.Fatalf("pause: %d %q", code, out)
	}
	_, errOut, code = zennet(t, "provider", "pause", ctlLease, "--data-dir", dir)
	if code != cmdutil.ExitConflict || !strings.Contains(errOut, "is paused") {
		t.Fatalf("pause a paused lease: %d %q", code, errOut)
	}
	out, _, code = zennet(t, "provider", "resume", ctlLease, "--data-dir", dir, "--json")
	if code != 0 || !strings.Contains(out, `"kind": "lease-action"`) || !strings.Contains(out, `"state": "running"`) {
		t.Fatalf("resume --json: %d\n%s", code, out)
	}

	out, _, code = zennet(t, "provider", "drain", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "draining: taking no new leases; current leases go on: 1") {
		t.Fatalf("drain: %d %q", code, out)
	}
	out, _, code = zennet(t, "provider", "drain", "--off", "--data-dir", dir, "--json")
	if code != 0 || !strings.Contains(out, `"kind": "provider-drain"`) || !strings.Contains(out, `"draining": false`) {
		t.Fatalf("drain --off: %d %q", code, out)
	}

	out, _, code = zennet(t, "provider", "end", ctlLease, "--data-dir", dir, "--json")
	if code != 0 || !strings.Contains(out, `"action": "end"`) || !strings.Contains(out, `"lease": null`) {
		t.Fatalf("end --json: %d\n%s", code, out)
	}
	_, errOut, code = zennet(t, "provider", "end", ctlLease, "--data-dir", dir)
	if code != cmdutil.ExitError || !strings.Contains(errOut, "no lease "+ctlLease) {
		t.Fatalf("end an ended lease: %d %q", code, errOut)
	}
	_, errOut, code = zennet(t, "provider", "end", "zn-bogus", "--data-dir", dir)
	if code != cmdutil.ExitUsage || !strings.Contains(errOut, "is not a lease id") {
		t.Fatalf("bad id: %d %q", code, errOut)
	}
	_, _, code = zennet(t, "provider", "end", "--data-dir", dir)
	if code != cmdutil.ExitUsage {
		t.Fatalf("no id: %d", code)
	}
	_, _, code = zennet(t, "provider", "stauts", "--data-dir", dir)
	if code != cmdutil.ExitUsage {
		t.Fatalf("unknown subcommand: %d", code)
	}
}

func TestProviderCommandsNoProvider(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prov")
	for _, args := range [][]string{{"provider", "status"}, {"provider", "drain"}} {
		_, errOut, code := zennet(t, append(args, "--data-dir", dir)...)
		want := "zennet: no provider is running on data dir " + dir + ": start one with 'zennet provide --data-dir " + dir + "'\n"
		if code != cmdutil.ExitUnreachable || errOut != want {
			t.Fatalf("%v: %d %q", args, code, errOut)
		}
	}
}

func TestDashboardNeedsTerminal(t *testing.T) {
	_, errOut, code := zennet(t, "dashboard", "--data-dir", t.TempDir())
	if code != cmdutil.ExitUsage || !strings.Contains(errOut, "needs a terminal") {
		t.Fatalf("%d %q", code, errOut)
	}
}

func TestDefaultProviderDataDir(t *testing.T) {
	t.Setenv("ZENNET_DATA_DIR", "/srv/zn")
	if got := cmdutil.DefaultProviderDataDir(); got != "/srv/zn/provider" {
		t.Fatal(got)
	}
	// The same default as 'zennet provide'.
	cmd := NewRootCmd(cmdutil.IOStreams{})
	for _, name := range []string{"provide", "dashboard", "provider"} {
		c, _, err := cmd.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		f := c.Flags().Lookup("data-dir")
		if f == nil {
			f = c.PersistentFlags().Lookup("data-dir")
		}
		if f == nil || f.DefValue != "/srv/zn/provider" {
			t.Fatalf("%s --data-dir default: %v", name, f)
		}
	}
}
