package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/idle"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/netsandbox"
	"github.com/zennet/zennet/provider"
)

// The provider's events print as they always did: scripts match on them.
func TestPrintProviderEvent(t *testing.T) {
	for _, tc := range []struct {
		e    provider.Event
		want string
	}{
		{provider.ImageBuilding{Path: "/img"}, "zennet: building the sandbox root filesystem at /img (once; about a minute) ...\n"},
		{provider.Recovered{Sandboxes: 2}, "zennet: removed 2 sandboxes left by an earlier run\n"},
		{provider.CalibrationWaiting{}, "zennet: waiting for another provider calibrating this machine ...\n"},
		{provider.Calibrating{Steps: 16}, "zennet: calibrating this machine: 16 steps of the canonical benchmark suite in a sandbox, once per machine (about a minute) ...\n"},
		{provider.Calibrated{Took: 61400 * time.Millisecond}, "zennet: calibrated in 1m1s\n"},
		{provider.FlatRates{Reason: "it misses"}, "zennet: offering flat rates (--rate): renters would refuse a price per unit of work from this calibration: it misses\n"},
	} {
		var out, errOut bytes.Buffer
		printProviderEvent(cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, tc.e)
		if errOut.String() != tc.want || out.Len() != 0 {
			t.Errorf("%T: stderr %q, stdout %q; want stderr %q", tc.e, errOut.String(), out.String(), tc.want)
		}
	}
}

// Validate makes the provider's Config of the flags.
func TestProvideConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		flags func(o *provideOptions)
		check func(t *testing.T, c provider.Config)
	}{
		{"defaults", func(o *provideOptions) {}, func(t *testing.T, c provider.Config) {
			def := provider.DefaultConfig()
			if c.MaxLeases != def.MaxLeases || c.CPUs != def.CPUs || c.Pids != def.Pids || c.PricePerWork != def.PricePerWork ||
				c.Grace != def.Grace || c.UnpaidTimeout != def.UnpaidTimeout || c.PowBits != def.PowBits || c.AnnounceEvery != def.AnnounceEvery ||
				c.Calibration != "auto" || c.Egress != netsandbox.PolicyPublic || c.Idle != nil || c.FlatRates {
				t.Errorf("config %+v is not the default %+v", c, def)
			}
			if c.Memory <= 0 || c.Disk < provider.MinDisk || c.DataDir != filepath.Join(dir, "prov") || c.CacheDir == "" {
				t.Errorf("memory %d, disk %d, data dir %q, cache dir %q", c.Memory, c.Disk, c.DataDir, c.CacheDir)
			}
			if got := c.Rates.String(meter.CPU); got != provider.DefaultRates[meter.CPU] {
				t.Errorf("cpu rate %s, want %s", got, provider.DefaultRates[meter.CPU])
			}
		}},
		{"sizes and flat rates", func(o *provideOptions) {
			o.Memory, o.Disk, o.Rates, o.Egress = "2G", "1G", []string{"cpu_ns=1/1000"}, "none"
		}, func(t *testing.T, c provider.Config) {
			if c.Memory != 2<<30 || c.Disk != 1<<30 || !c.FlatRates || c.Rates.String(meter.CPU) != "1/1000" || c.Egress != netsandbox.PolicyNone {
				t.Errorf("memory %d, disk %d, flat %v, cpu rate %s, egress %v", c.Memory, c.Disk, c.FlatRates, c.Rates.String(meter.CPU), c.Egress)
			}
		}},
		{"when idle", func(o *provideOptions) {
			o.WhenIdle, o.BusyAbove, o.IdleBelow, o.Throttle = true, "25%", "0.1", 0.5
		}, func(t *testing.T, c provider.Config) {
			want := idle.Policy{BusyAbove: idle.Threshold{Value: 0.25, Fraction: true}, IdleBelow: idle.Cores(0.1),
				BusyFor: idle.DefaultBusyFor, IdleFor: idle.DefaultIdleFor, ThrottleFactor: 0.5}
			if c.Idle == nil || *c.Idle != want {
				t.Errorf("idle policy %+v, want %+v", c.Idle, want)
			}
		}},
		{"a stranger's caps", func(o *provideOptions) {
			o.cfg.Accept, o.cfg.MaxLeasesPerRenter, o.RenterShare = []string{"embedded"}, 4, "25%"
			o.EgressDeny = []string{"203.0.113.9", "198.51.100.0/24"}
		}, func(t *testing.T, c provider.Config) {
			if len(c.EgressDeny) != 2 || c.EgressDeny[0].String() != "203.0.113.9/32" || c.EgressDeny[1].String() != "198.51.100.0/24" {
				t.Errorf("egress deny %v", c.EgressDeny)
			}
			if len(c.Accept) != 1 || c.Accept[0] != "embedded" || c.MaxLeasesPerRenter != 4 || c.MaxSharePerRenter != 0.25 {
				t.Errorf("accept %v, per renter %d leases and %v of the rest", c.Accept, c.MaxLeasesPerRenter, c.MaxSharePerRenter)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newProvideOptions(cmdutil.IOStreams{}, &cmdutil.GlobalOptions{})
			o.cfg.DataDir = filepath.Join(dir, "prov")
			tc.flags(o)
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			tc.check(t, o.cfg)
		})
	}
}

func TestProvideFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "nowhere"}, `--listen "nowhere" is not HOST:PORT`},
		{[]string{"--disk", "1M"}, "--disk: 1M is too little to sell (at least 64M)"},
		{[]string{"--max-leases", "0"}, "--max-leases must be at least 1"},
		{[]string{"--when-idle", "--idle-below", "2", "--busy-above", "1"}, "--when-idle: idle: idle-below 2 is above busy-above 1"},
		{[]string{"--accept", "paypal"}, `--accept "paypal": not a payment method (say embedded, lightning)`},
		{[]string{"--accept", "lightning"}, "--accept lightning needs --lightning"},
		{[]string{"--accept", "embedded,embedded"}, "--accept names embedded twice"},
		{[]string{"--max-leases-per-renter", "-1"}, "--max-leases-per-renter must be at least 0"},
		{[]string{"--max-share-per-renter", "0"}, `--max-share-per-renter: "0": a share is more than 0 and at most 100%`},
		{[]string{"--max-share-per-renter", "150%"}, `a share is more than 0 and at most 100%`},
		{[]string{"--max-share-per-renter", "half"}, `"half" is not a share`},
		{[]string{"--egress-deny", "example.com"}, `--egress-deny: "example.com" is not an address or CIDR prefix`},
	} {
		_, errOut, code := zennet(t, append([]string{"provide", "--data-dir", t.TempDir()}, tc.args...)...)
		if code != cmdutil.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("provide %s: exit %d, %q; want %d, %q", strings.Join(tc.args, " "), code, errOut, cmdutil.ExitUsage, tc.want)
		}
	}
}

// 'zennet reputation --forgive' lets a provider take a renter key its book
// records as a non-payer again; a key it never met, or no provider data
// dir, is a usage error.
func TestReputationForgive(t *testing.T) {
	dir := t.TempDir()
	book := market.OpenBook(market.BookPath(dir))
	const key = "SHA256:ObUoxHC4b2MPgi9UBlmZEYl8mIt6vnxzHQdvmLv0lFE"
	if _, err := book.Note(key, market.EndedUnpaid("unpaid: 5 msat due"), time.Now()); err != nil {
		t.Fatal(err)
	}
	out, _, code := zennet(t, "reputation", "--provider-data-dir", dir)
	if f := strings.Split(strings.TrimSpace(out), "\t"); code != 0 || len(f) != 9 || f[6] != "1" {
		t.Fatalf("reputation: exit %d, %q; want the key's row with 1 in its UNPAID column", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--forgive", key}, "--forgive is a provider's"},
		{[]string{"--provider-data-dir", dir, "--forgive", "nobody"}, "by its SHA256:... fingerprint"},
		{[]string{"--provider-data-dir", dir, "--forgive", "SHA256:unknown"}, "has no record of this key"},
	} {
		if _, errOut, code := zennet(t, append([]string{"reputation"}, tc.args...)...); code != cmdutil.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("reputation %v: exit %d, %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
	_, errOut, code := zennet(t, "reputation", "--provider-data-dir", dir, "--forgive", key)
	if r, _, _ := book.Get(key); code != 0 || r.Unpaid != 0 || r.Dropped != 1 || !strings.Contains(errOut, "forgiven: "+key) {
		t.Fatalf("forgive: exit %d, %q; record %+v", code, errOut, r)
	}
}
