package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/agent"
	"github.com/zennet/zennet/lease"
)

// newCmdAgent is the side of zennet that runs inside a sandbox.
func newCmdAgent(io IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Run inside a sandbox (started by the provider)",
		Hidden: true,
	}
	var dir string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve one SSH connection on stdin/stdout",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := agent.LoadConfig(dir)
			if err != nil {
				return err
			}
			agent.Serve(cfg, agent.Stdio{})
			return nil
		},
	}
	serve.Flags().StringVar(&dir, "config", agent.ConfigDir, "directory with host_key and authorized_keys")
	cmd.AddCommand(serve, newCmdAgentBench(io))
	return cmd
}

// agentBinary is the static zennet binary bound into sandboxes: flag (an
// --agent-binary) if set, else this one; it must be statically linked.
func agentBinary(flag string) (string, error) {
	path := flag
	if path == "" {
		var err error
		if path, err = os.Executable(); err != nil {
			return "", err
		}
	}
	return path, lease.CheckAgentBinary(path)
}
