package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/agent"
	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/cli/cmdutil"
)

// newCmdAgent is the side of zennet that runs inside a sandbox.
func newCmdAgent(io cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Run inside a sandbox (started by the provider)",
		Hidden: true,
	}
	var dir, listen string
	var asInit bool
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve one SSH connection on stdin/stdout (or every one to --listen)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if asInit && listen == "" {
				return cmdutil.Usagef("--init needs --listen")
			}
			cfg, err := agent.LoadConfig(dir)
			if err != nil {
				return err
			}
			if asInit {
				return agent.ServeInit(cfg, listen)
			}
			if listen != "" {
				return agent.ListenAndServe(cfg, listen)
			}
			agent.Serve(cfg, agent.Stdio{})
			return nil
		},
	}
	serve.Flags().StringVar(&dir, "config", agent.ConfigDir, "directory with host_key and authorized_keys")
	serve.Flags().StringVar(&listen, "listen", "", "serve every connection to this address (HOST:PORT)")
	serve.Flags().BoolVar(&asInit, "init", false, "with --listen: be the sandbox's first process (stdio on /dev/null, orphans reaped, signals ignored)")
	cmd.AddCommand(serve, newCmdAgentBench(io))
	return cmd
}

// newCmdAgentBench runs one workload of the canonical suite inside a
// sandbox (hidden under 'zennet agent'); the bench driver starts it with
// --sync.
func newCmdAgentBench(io cmdutil.IOStreams) *cobra.Command {
	var opts bench.RunOptions
	var params []string
	cmd := &cobra.Command{
		Use:   "bench WORKLOAD --seconds T --seed S [--param K=V]...",
		Short: "Run one benchmark workload at full load and print its result as a JSON line",
		Long: "Workloads: " + strings.Join(bench.WorkloadNames(), ", ") + `.
With --sync it prints a ready line once set up and waits for a line on stdin
before it starts, so that the driver meters only the run.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.Usagef("want one workload: %s", strings.Join(bench.WorkloadNames(), ", "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(params) > 0 {
				var err error
				if opts.Params, err = bench.ParseParams(params); err != nil {
					return cmdutil.Usagef("--param %w", err)
				}
			}
			if _, err := bench.RunWorkload(cmd.Context(), args[0], opts, io.In, io.Out); err != nil {
				return fmt.Errorf("bench %s: %w", args[0], err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Float64Var(&opts.Seconds, "seconds", 2, "how long to run at full load")
	f.Uint64Var(&opts.Seed, "seed", 0, "seed of the random parameters")
	f.IntVar(&opts.Workers, "workers", 0, "workers at once (default: one per CPU)")
	f.StringArrayVar(&params, "param", nil, "set a parameter, KEY=VALUE (repeatable)")
	f.BoolVar(&opts.Sync, "sync", false, "print a ready line once set up and wait for a line on stdin")
	return cmd
}
