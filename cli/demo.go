package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/provider"
	"github.com/zennet/zennet/renter"
	"github.com/zennet/zennet/sandbox"
)

type demoOptions struct {
	rent      rentOptions
	provide   provideOptions
	Providers int
	Exec      string
}

func newCmdDemo(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &demoOptions{rent: rentOptions{IO: io, G: g}, provide: *newProvideOptions(io, g)}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start providers on this machine and rent hosts from them",
		Long: `demo is the whole product on one machine: it starts local providers on
loopback, rents -n hosts from them exactly as 'zennet -n' would from remote
ones, prints them, and holds them until Ctrl-C. With --exec it runs a command
on every host over ssh, then releases them and exits.`,
		Example: "  zennet demo -n 4\n  zennet demo -n 2 --exec 'uname -a; dmesg | head -1'",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.rent.Count, "count", "n", 4, "number of hosts")
	f.StringVarP(&o.rent.Memory, "memory", "m", "256M", "memory per host")
	f.Float64Var(&o.rent.CPUs, "cpus", 1, "CPU quota per host, in cores")
	f.BoolVar(&o.rent.JSON, "json", false, "print the hosts as one JSON document")
	f.IntVar(&o.Providers, "providers", 2, "local providers to start")
	f.DurationVar(&o.rent.Timeout, "timeout", 2*time.Minute, "give up leasing after this long")
	f.DurationVar(&o.rent.Interval, "interval", 5*time.Second, "how often providers report usage")
	f.StringVar(&o.Exec, "exec", "", "run this command on every host, then release and exit")
	f.StringVar(&o.provide.cfg.Runsc, "runsc", o.provide.cfg.Runsc, "runsc binary")
	f.StringVar(&o.provide.cfg.Image, "image", o.provide.cfg.Image, "root filesystem of the sandboxes")
	f.StringVar(&o.provide.cfg.AgentBinary, "agent-binary", o.provide.cfg.AgentBinary, "static zennet binary bound into sandboxes")
	f.StringVar(&o.provide.cfg.Platform, "platform", o.provide.cfg.Platform, "runsc platform")
	return cmd
}

func runDemo(ctx context.Context, o *demoOptions) error {
	if o.Providers < 1 || o.Providers > 16 {
		return cmdutil.Usagef("--providers must be between 1 and 16")
	}
	if o.rent.Count < 1 {
		return cmdutil.Usagef("-n %d: the number of hosts must be at least 1", o.rent.Count)
	}
	// Every flag is checked before a provider starts (-m 12XB was found
	// wrong only once two providers had started).
	if len(o.rent.Pay) == 0 {
		o.rent.Pay = []string{pay.DefaultMethod}
	}
	if err := o.rent.Validate(); err != nil {
		return err
	}
	per := (o.rent.Count + o.Providers - 1) / o.Providers
	pctx, stopProviders := context.WithCancel(context.WithoutCancel(ctx))
	var g errgroup.Group
	defer func() {
		stopProviders()
		g.Wait()
	}()
	ready := make(chan provider.Info, o.Providers)
	failed := make(chan error, o.Providers)
	for i := range o.Providers {
		po := o.provide
		po.cfg.Listen = "127.0.0.1:0"
		po.cfg.DataDir = filepath.Join(cmdutil.DefaultDataDir(), "demo", "provider-"+strconv.Itoa(i+1))
		po.cfg.MaxLeases = per
		po.cfg.CPUs = float64(per) * o.rent.CPUs
		guest := o.rent.memoryBytes
		po.Memory = strconv.FormatInt(int64(per)*(guest+sandbox.MemoryOverhead(guest)), 10)
		// Local providers on loopback: no market of the environment's.
		po.cfg.Peers, po.cfg.Announce = nil, ""
		if err := po.Validate(); err != nil {
			return err
		}
		g.Go(func() error {
			err := runProvide(pctx, &po, ready)
			if err != nil {
				failed <- err
			}
			return err
		})
	}
	for range o.Providers {
		select {
		case info := <-ready:
			o.rent.Providers = append(o.rent.Providers, info.Address)
		case err := <-failed:
			return err
		case <-ctx.Done():
			return cmdutil.ErrInterrupted
		}
	}
	if err := o.rent.Validate(); err != nil {
		return err
	}
	if o.Exec == "" {
		return runRent(ctx, &o.rent)
	}
	r, err := rent(ctx, &o.rent)
	if err != nil {
		return err
	}
	if err := printHosts(&o.rent, hostsDoc(r), nil); err != nil {
		r.Release(context.WithoutCancel(ctx), 30*time.Second)
		return err
	}
	var errs []error
	for _, h := range r.Hosts() {
		c := renter.SSH(ctx, r.Files().SSHConfig, h.Name, o.Exec)
		c.Stdout, c.Stderr = o.rent.IO.Out, o.rent.IO.ErrOut
		fmt.Fprintf(o.rent.IO.ErrOut, "== %s\n", h.Name)
		if err := c.Run(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
		}
	}
	errs = append(errs, r.Release(context.WithoutCancel(ctx), 30*time.Second))
	errs = append(errs, printReceipts(&o.rent, r.Receipts()))
	return errors.Join(errs...)
}
