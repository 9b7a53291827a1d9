// Package cli is zennet's command line: renting hosts (the root command),
// providing them, releasing them, and the demo that does both on one machine.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
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
	io := IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := NewRootCmd(io)
	cmd.SetArgs(os.Args[1:])
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(io.ErrOut, "zennet: %s\n", sentence(err))
	}
	code := exitCode(err)
	if code != ExitOK && ctx.Err() != nil {
		return ExitInterrupted
	}
	return code
}

// sentence makes an error read as one sentence.
func sentence(err error) string {
	s := err.Error()
	if s == "" {
		return "unknown error"
	}
	return s
}

// globalOptions are flags every command shares.
type globalOptions struct {
	ConfigDir string
	LogLevel  string
}

func (g *globalOptions) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(g.LogLevel) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn", "":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, usagef("--log-level %q is not one of debug, info, warn, error", g.LogLevel)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// NewRootCmd builds the command tree. The root command itself rents hosts.
func NewRootCmd(io IOStreams) *cobra.Command {
	g := &globalOptions{}
	root := newCmdRent(io, g)
	root.PersistentFlags().StringVar(&g.ConfigDir, "config-dir", defaultConfigDir(), "renter state: keys, ssh_config, sessions (env ZENNET_CONFIG_DIR)")
	root.PersistentFlags().StringVar(&g.LogLevel, "log-level", envOr("ZENNET_LOG_LEVEL", "warn"), "log level on stderr: debug, info, warn, error")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.Version = Version()
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
		newCmdPrice(io),
		newCmdBench(io, g),
		newCmdDashboard(io, g),
		newCmdProvider(io, g),
		newCmdRun(io, g),
	)
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// noArgs rejects positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q for %q; see '%s --help'", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return nil
}

var errInterrupted = errors.New("interrupted")
