// Package cmdutil is what zennet's commands share, as gh's pkg/cmdutil:
// the streams, the --json envelope and every document type (documents.go,
// a golden file per kind), the exit codes and the errors that choose them,
// the default paths, sizes, the global flags, the user's key and the agent
// binary. The commands live in cli and its subpackages; nothing below the
// command line imports this.
package cmdutil

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/sshkey"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/sandbox"
)

// GlobalOptions are flags every command shares.
type GlobalOptions struct {
	ConfigDir string
	LogLevel  string
}

func (g *GlobalOptions) Logger(w io.Writer) (*slog.Logger, error) {
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
		return nil, Usagef("--log-level %q is not one of debug, info, warn, error", g.LogLevel)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

func EnvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// NoArgs rejects positional arguments with a usage error.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if s := didYouMean(cmd, args[0]); s != "" {
			return Usagef("unknown command %q for %q%s", args[0], cmd.CommandPath(), s)
		}
		return Usagef("unexpected argument %q for %q; see '%s --help'", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return nil
}

var ErrInterrupted = errors.New("interrupted")

// AgentBinary is the static zennet binary bound into sandboxes: flag (an
// --agent-binary) if set, else this one; it must be statically linked.
func AgentBinary(flag string) (string, error) {
	path := flag
	if path == "" {
		var err error
		if path, err = os.Executable(); err != nil {
			return "", err
		}
	}
	return path, lease.CheckAgentBinary(path)
}

// Identity loads the user's key named by --identity (path), which must
// exist, or the default one (sshkey.Identity).
func Identity(path, configDir, comment string) (gossh.Signer, string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, "", Usagef("--identity %s: %v", path, err)
		}
	}
	return sshkey.Identity(path, configDir, comment)
}

// Sandboxes are the flags of a command that runs sandboxes itself (bench
// run, bench fairness): which runsc, which root filesystem, which static
// zennet to bind in.
type Sandboxes struct{ Runsc, Image, AgentBinary string }

// Register adds --runsc, --image and --agent-binary; agentHelp says what
// the agent binary is for.
func (s *Sandboxes) Register(f *pflag.FlagSet, agentHelp string) {
	f.StringVar(&s.Runsc, "runsc", EnvOr("ZENNET_RUNSC", ""), "runsc binary (default: the pinned build in the cache, then PATH)")
	f.StringVar(&s.Image, "image", DefaultImage(), "root filesystem of the sandboxes")
	f.StringVar(&s.AgentBinary, "agent-binary", EnvOr("ZENNET_AGENT_BINARY", ""), agentHelp)
}

// Resolve finds runsc and checks the image and the agent binary, each
// error naming its fix.
func (s *Sandboxes) Resolve() (runsc, agent string, err error) {
	if runsc, err = sandbox.FindRunsc(s.Runsc, DefaultCacheDir()); err != nil {
		return "", "", err
	}
	if err := sandbox.CheckImage(s.Image); err != nil {
		return "", "", fmt.Errorf("%w (or build it with 'zennet image build')", err)
	}
	if agent, err = AgentBinary(s.AgentBinary); err != nil {
		return "", "", err
	}
	return runsc, agent, nil
}
