// Package cmdutil is what zennet's commands share, as gh's pkg/cmdutil:
// the streams, the --json envelope and every document type (documents.go,
// a golden file per kind), the exit codes and the errors that choose them,
// the default paths, sizes, the global flags, the user's key and the agent
// binary. The commands live in cli and its subpackages; nothing below the
// command line imports this.
package cmdutil

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/sshkey"
	"github.com/zennet/zennet/lease"
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
