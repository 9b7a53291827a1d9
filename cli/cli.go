// Package cli is zennet's command line: renting hosts (the root command),
// providing them, releasing them, and the demo that does both on one machine.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/benchcmd"
	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/cli/pricecmd"
)

// version is set with -ldflags "-X github.com/zennet/zennet/cli.version=...".
var version = ""

// Version returns the build's version.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Main runs zennet with os.Args and returns the exit code.
//
// Ctrl-C and SIGTERM cancel the context every command runs under (the one
// place that catches them): a command ends what it started and returns.
// One that still fails once interrupted exits ExitInterrupted, whatever
// its error, so that an interrupted command has one exit code however the
// signal raced its work.
func Main() int {
	io := cmdutil.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := NewRootCmd(io)
	cmd.SetArgs(os.Args[1:])
	ran, err := cmd.ExecuteContextC(ctx)
	code := cmdutil.ExitCode(err)
	if code != cmdutil.ExitOK && ctx.Err() != nil {
		code = cmdutil.ExitInterrupted
	}
	if err != nil && !errors.As(err, new(cmdutil.ReportedError)) {
		if wantsJSON(ran) {
			// Under --json the failure is a document too, on stderr:
			// stdout holds only results.
			cmdutil.WriteJSONLine(io.ErrOut, cmdutil.KindError, cmdutil.ErrorDoc{Message: sentence(err), ExitCode: code})
		} else {
			fmt.Fprintf(io.ErrOut, "zennet: %s\n", cmdutil.Printable(sentence(err), false))
		}
	}
	return code
}

// wantsJSON tells whether the command that ran was given --json.
func wantsJSON(c *cobra.Command) bool {
	if c == nil {
		return false
	}
	f := c.Flag("json")
	return f != nil && f.Value.String() == "true"
}

// sentence makes an error read as one sentence.
func sentence(err error) string {
	s := err.Error()
	if s == "" {
		return "unknown error"
	}
	return s
}

// NewRootCmd builds the command tree. The root command itself rents hosts.
func NewRootCmd(io cmdutil.IOStreams) *cobra.Command {
	g := &cmdutil.GlobalOptions{}
	out := cmdutil.NewDocWriter(io.Out)
	io.Out = out
	root := newCmdRent(io, g)
	root.PersistentFlags().StringVar(&g.ConfigDir, "config-dir", cmdutil.DefaultConfigDir(), "renter state: keys, ssh_config, sessions (env ZENNET_CONFIG_DIR)")
	root.PersistentFlags().StringVar(&g.LogLevel, "log-level", cmdutil.EnvOr("ZENNET_LOG_LEVEL", "warn"), "log level on stderr: debug, info, warn, error")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return cmdutil.UsageError{Err: err} })
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.Version = Version()
	// zennet bench fairness measures the price model: pricecmd has it.
	bench := benchcmd.NewCmdBench(io, g)
	bench.AddCommand(pricecmd.NewCmdBenchFairness(io, g))
	root.AddCommand(
		newCmdProvide(io, g),
		newCmdRelease(io, g),
		newCmdDemo(io, g),
		newCmdAgent(io),
		newCmdImage(io),
		newCmdUsage(io, g),
		newCmdLedger(io, g),
		newCmdProviders(io, g),
		newCmdReputation(io, g),
		pricecmd.NewCmdPrice(io),
		bench,
		newCmdDashboard(io, g),
		newCmdProvider(io, g),
		newCmdRun(io, g),
		newCmdStatus(io, g),
		newCmdSSH(io, g),
		newCmdSSHConfig(io, g),
		newCmdOffers(io, g),
		newCmdDoctor(io),
		newCmdConfig(io, g),
		newCmdMan(io),
	)
	cmdutil.AddFormatFlags(root, out)
	addExamples(root)
	cmdutil.AddConfigFile(root, func() string { return g.ConfigDir })
	return root
}
