package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/internal/peeraddr"
	"github.com/zennet/zennet/p2p"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/renter"
)

type rentOptions struct {
	IO           cmdutil.IOStreams
	G            *cmdutil.GlobalOptions
	Count        int
	Memory       string
	CPUs         float64
	Providers    []string
	ProviderKeys []string
	Identity     string
	Disk         string
	Interval     time.Duration
	JSON         bool
	Timeout      time.Duration
	Pay          []string
	LND          lndFlags
	NoSpotCheck  bool
	// TrustCalibration is nil unless --trust-calibration was given.
	TrustCalibration []string
	// The market: where to learn providers, and the rules of choice.
	Seeds    []string
	Explain  bool
	Min      int
	MaxPrice float64
	Bid      float64
	// Probe rents this many hosts more, probes them all and keeps the
	// best Count.
	Probe         int
	MinScore      float64
	MinReputation float64
	PowBits       uint
	// Subnet is the session network's subnet ("": drawn).
	Subnet string
	// Spend: --dry-run, --for, --max-spend, the estimate (spend.go).
	Spend spendOptions
	// Detach (-d) hands the hosts to a background holder (detach.go);
	// Holder (--holder) is set in that holder, holder its state there,
	// holderArgs its command line.
	Detach         bool
	Holder         bool
	HolderProgress bool
	holder         *holder
	holderArgs     []string
	// stream is the --json output's stream of documents (events.go).
	stream docStream

	memoryBytes int64
	diskBytes   int64
	subnet      netip.Prefix
}

func newCmdRent(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &rentOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "zennet -n N -m MEM --provider HOST:PORT",
		Short: "Rent N passwordless SSH hosts in gVisor sandboxes",
		Long: `zennet rents N hosts, each a gVisor sandbox on a provider's machine, and
forwards a local port to each. It writes an ssh_config, an MPI hostfile and a
GNU parallel --sshloginfile, prints the hosts, and holds the leases until you
press Ctrl-C (or run 'zennet release'), which ends them all. With -d it returns
once the hosts are ready, and a background holder keeps and pays for them
until 'zennet release' (its output in the session's holder.log).`,
		Example: `  zennet -n 3 -m 512M --provider 127.0.0.1:2222
  ssh -F ~/.config/zennet/ssh_config zennet-1
  zennet -n 2 -m 1G --provider a.example:2222 --json
  zennet -n 4 -m 1G --provider a.example:2222 -d && zennet status
  zennet -n 100 -m 512M --seed a.example:2222 --max-price 150 --explain`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("count") && !cmd.Flags().Changed("memory") && len(o.Providers) == 0 {
				return cmd.Help()
			}
			if err := o.Validate(); err != nil {
				return err
			}
			if o.Holder {
				h, err := newHolder(o)
				if err != nil {
					return err
				}
				o.holder = h
			} else if o.Detach {
				o.holderArgs = holderArgs(cmd, o)
			}
			return rentWithSpend(cmd.Context(), o)
		},
	}
	registerRentFlags(cmd.Flags(), o)
	addSpendFlags(cmd, o)
	addDetachFlags(cmd, o)
	cmd.Flags().IntVar(&o.Min, "min", 0, "accept as few as this many hosts when the market cannot give -n (default: all -n or nothing)")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkSeeds checks --seed values: HOST:PORT, or a market multiaddr
// ending in /p2p/ID.
func checkSeeds(seeds []string) error {
	if _, _, err := p2p.SplitAddrs(seeds); err != nil {
		return cmdutil.Usagef("--seed %v", err)
	}
	return nil
}

// Validate checks the options and fills the derived fields.
func (o *rentOptions) Validate() error {
	if o.Count < 1 || o.Count > proto.MaxHostsPerDemand {
		return cmdutil.Usagef("-n %d: the number of hosts must be between 1 and %d", o.Count, proto.MaxHostsPerDemand)
	}
	if o.Subnet != "" {
		p, err := netip.ParsePrefix(o.Subnet)
		if err == nil {
			err = cluster.CheckSubnet(p)
		}
		if err != nil {
			return cmdutil.Usagef("--subnet %s: %v", o.Subnet, err)
		}
		o.subnet = p
	}
	m, err := cmdutil.ParseSize(o.Memory)
	if err != nil {
		return cmdutil.Usagef("-m: %v", err)
	}
	if m < proto.MinMemory {
		return cmdutil.Usagef("-m %s: a host needs at least 64M of memory", o.Memory)
	}
	o.memoryBytes = m
	if o.Disk != "" {
		d, err := cmdutil.ParseSize(o.Disk)
		if err != nil {
			return cmdutil.Usagef("--disk: %v", err)
		}
		if d < proto.MinDisk {
			return cmdutil.Usagef("--disk %s: a host needs at least 64M of disk", o.Disk)
		}
		o.diskBytes = d
	}
	if !(o.CPUs > 0 && o.CPUs <= 4096) {
		return cmdutil.Usagef("--cpus %v: must be more than 0 (e.g. 0.5 or 2)", o.CPUs)
	}
	if err := checkSeeds(o.Seeds); err != nil {
		return err
	}
	if o.Probe < 0 || o.Probe > proto.MaxHostsPerDemand-o.Count {
		return cmdutil.Usagef("--probe %d: must be between 0 and %d (-n plus --probe hosts are rented)", o.Probe, proto.MaxHostsPerDemand-o.Count)
	}
	if o.Min < 0 || o.Min > o.Count {
		return cmdutil.Usagef("--min %d: must be between 1 and -n %d", o.Min, o.Count)
	}
	if !(o.MaxPrice >= 0) || !(o.MinScore >= 0) || !(o.MinReputation >= 0 && o.MinReputation <= 1) {
		return cmdutil.Usagef("--max-price and --min-score must not be negative, --min-reputation is between 0 and 1")
	}
	if !(o.Bid >= 0 && o.Bid <= proto.MaxPricePerWork) || (o.MaxPrice > 0 && o.Bid > o.MaxPrice) {
		return cmdutil.Usagef("--bid %v: must be between 0 and --max-price (a bid above what you would pay is no counter-offer)", o.Bid)
	}
	for _, p := range o.Providers {
		if peeraddr.Is(p) {
			// A provider behind a NAT: its market address (its announcement's).
			if _, err := p2p.ParsePeers([]string{p}); err != nil {
				return cmdutil.Usagef("--provider %v", err)
			}
		} else if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			return cmdutil.Usagef("--provider %q is not HOST:PORT (nor a market multiaddr /ip4/…/p2p/ID)", p)
		}
	}
	for _, k := range o.ProviderKeys {
		if err := renter.CheckProviderKey(k); err != nil {
			return cmdutil.Usagef("%v", err)
		}
	}
	if err := renter.CheckTrustCalibration(o.TrustCalibration); err != nil {
		return cmdutil.Usagef("%v", err)
	}
	if o.Timeout <= 0 {
		return cmdutil.Usagef("--timeout must be positive")
	}
	if o.Interval < proto.MinInterval*time.Second || o.Interval > proto.MaxInterval*time.Second || o.Interval%time.Second != 0 {
		return cmdutil.Usagef("--interval %s: must be whole seconds from %ds to %ds", o.Interval, proto.MinInterval, proto.MaxInterval)
	}
	for _, m := range o.Pay {
		if !slices.Contains(pay.Methods, m) {
			return cmdutil.Usagef("--pay %q: the payment methods are %s", m, strings.Join(pay.Methods, ", "))
		}
	}
	if len(o.Pay) == 0 {
		return cmdutil.Usagef("--pay: name at least one payment method (%s)", strings.Join(pay.Methods, ", "))
	}
	return nil
}

func (o *rentOptions) identity() (gossh.Signer, string, error) {
	return cmdutil.Identity(o.Identity, o.G.ConfigDir, "zennet renter")
}

// config is the renter's configuration from the flags (checked by
// Validate): the identity is loaded, and events go to stderr.
func (o *rentOptions) config() (renter.Config, error) {
	signer, keyPath, err := o.identity()
	if err != nil {
		return renter.Config{}, err
	}
	return renter.Config{
		ConfigDir: o.G.ConfigDir, Signer: signer, KeyPath: keyPath,
		Count: o.Count, Probe: o.Probe, Min: o.Min,
		Limits:    proto.Limits{MemoryBytes: o.memoryBytes, CPUs: o.CPUs, DiskBytes: o.diskBytes},
		Providers: o.Providers, ProviderKeys: o.ProviderKeys, Seeds: o.Seeds, Interval: o.Interval, Timeout: o.Timeout,
		Pay: o.Pay, DialLND: o.LND.dial, SpotCheck: !o.NoSpotCheck, TrustCalibration: o.TrustCalibration, Explain: o.Explain,
		MaxPrice: o.MaxPrice, Bid: o.Bid, MinScore: o.MinScore, MinReputation: o.MinReputation, PowBits: o.PowBits,
		Subnet: o.subnet, Events: o.printEvent,
	}, nil
}

// rent leases the hosts the options ask for.
func rent(ctx context.Context, o *rentOptions) (*renter.Rental, error) {
	cfg, err := o.config()
	if err != nil {
		return nil, err
	}
	return renter.Rent(ctx, cfg)
}

// hostsDoc is the rental's hosts as --json prints them.
func hostsDoc(r *renter.Rental) cmdutil.HostsDoc {
	doc := cmdutil.HostsDoc{Session: r.SessionID(), Files: r.Files()}
	for _, h := range r.Hosts() {
		doc.Hosts = append(doc.Hosts, cmdutil.HostJSON{Name: h.Name, LocalPort: h.LocalPort, Provider: h.Provider, LeaseID: h.LeaseID,
			MemoryBytes: h.Limits.MemoryBytes, CPUs: h.Limits.CPUs, DiskBytes: h.Limits.DiskBytes, HostKey: h.HostKey, PricePerWorkMsat: h.PricePerWorkMsat, ClusterAddr: h.ClusterAddr})
	}
	return doc
}

// printHosts prints the rented hosts: the hosts document with --json, else
// a table and, on a terminal, how to use them and how they end (holder is
// the background holder that keeps them, with -d).
func printHosts(o *rentOptions, doc cmdutil.HostsDoc, holder *holderReady) error {
	if o.JSON {
		return o.startStream(cmdutil.KindHosts, doc)
	}
	hosts, files := doc.Hosts, doc.Files
	rows := make([][]string, 0, len(hosts))
	for _, h := range hosts {
		rows = append(rows, []string{h.Name, strconv.Itoa(h.LocalPort), h.Provider, strconv.FormatFloat(h.CPUs, 'f', -1, 64),
			cmdutil.FormatSize(h.MemoryBytes), cmdutil.FormatSize(h.DiskBytes), h.LeaseID, h.ClusterAddr})
	}
	cmdutil.Table(o.IO.Out, []string{"HOST", "LOCAL PORT", "PROVIDER", "CPU", "MEM", "DISK", "LEASE", "CLUSTER ADDR"}, rows)
	if cmdutil.IsTerminal(o.IO.Out) && len(hosts) > 0 {
		fmt.Fprintf(o.IO.Out, "\nssh -F %s %s      # or: ssh -p %d root@localhost\n", files.SSHConfig, hosts[0].Name, hosts[0].LocalPort)
		fmt.Fprintf(o.IO.Out, "MPI hostfile: %s   GNU parallel: --sshloginfile %s\n", files.MPIHostfile, files.SSHLoginFile)
		if holder == nil {
			fmt.Fprintf(o.IO.Out, "Holding %d hosts; Ctrl-C or 'zennet release' ends the leases.\n", len(hosts))
		}
	}
	if holder != nil {
		fmt.Fprintf(o.IO.ErrOut, "zennet: holding %s in the background: session %s, holder pid %d, log %s; 'zennet release %s' ends the leases\n",
			cmdutil.Plural(len(hosts), "host"), doc.Session, holder.Pid, holder.Log, doc.Session)
	}
	return nil
}

func runRent(ctx context.Context, o *rentOptions) error {
	r, err := rent(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return cmdutil.ErrInterrupted
		}
		return err
	}
	if o.holder != nil {
		err = o.holder.ready(o, r)
	} else {
		err = printHosts(o, hostsDoc(r), nil)
	}
	if err != nil {
		r.Release(context.WithoutCancel(ctx), 30*time.Second)
		return err
	}
	hctx, stop := o.Spend.holdContext(ctx, o, r)
	herr := r.Hold(hctx)
	stop()
	n := len(r.Hosts())
	rerr := r.Release(context.WithoutCancel(ctx), 30*time.Second)
	if rerr != nil {
		fmt.Fprintf(o.IO.ErrOut, "zennet: release: %v\n", rerr)
	} else if !o.JSON {
		fmt.Fprintf(o.IO.ErrOut, "zennet: released %s\n", cmdutil.Plural(n, "host"))
	}
	if perr := printReceipts(o, r.Receipts()); perr != nil {
		rerr = errors.Join(rerr, perr)
	}
	return errors.Join(herr, rerr)
}
