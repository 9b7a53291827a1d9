package renter

import (
	"context"
	"os/exec"
	"strings"

	"github.com/zennet/zennet/bench"
)

// SSH is the one way zennet runs a command on a rented host: OpenSSH's
// client over the session's ssh_config, never asking for a password, the
// remote command line given as it is (a shell runs it there).
func SSH(ctx context.Context, sshConfig, host, remote string) *exec.Cmd {
	return exec.CommandContext(ctx, "ssh", "-F", sshConfig, "-T", "-o", "BatchMode=yes", host, "--", remote)
}

// Commander runs argv on host over the session's ssh_config, each
// argument quoted for the remote shell.
func Commander(sshConfig, host string) bench.Commander {
	return func(ctx context.Context, argv ...string) *exec.Cmd {
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = ShellQuote(a)
		}
		return SSH(ctx, sshConfig, host, strings.Join(quoted, " "))
	}
}

// ShellQuote quotes s as one word for a POSIX shell.
func ShellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_@%+=:,./-", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
