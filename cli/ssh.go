package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/internal/sshinclude"
	"github.com/zennet/zennet/session"
)

type sshOptions struct {
	IO      cmdutil.IOStreams
	G       *cmdutil.GlobalOptions
	Session string
}

func newCmdSSH(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &sshOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "ssh [--session ID] [HOST [CMD [ARG...]]]",
		Short: "Log into a rented host with OpenSSH, or run a command there",
		Long: `ssh runs OpenSSH's ssh with the ssh_config of the session that holds HOST:
no -F, no password, no host-key prompt. Without HOST it logs into the first
host of the latest running session (or of --session ID). CMD and ARGs go to
ssh as they are: ssh joins them with spaces for the host's shell, so quote a
pipeline as one argument. The exit code is ssh's (the command's, or 255 when
ssh cannot reach the host).

Host names are never shared by two running sessions, so HOST names one
session's host; --session only checks that it is that session's.`,
		Example: `  zennet ssh zennet-1
  zennet ssh zennet-2 nproc
  zennet ssh zennet-1 'cd /root && make -j$(nproc)'
  zennet ssh --session 0123456789ab zennet-3 uptime`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runSSH(o, args) },
	}
	// Everything after HOST is the remote command's, flags included.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&o.Session, "session", "", "the session whose host to log into (default: the one that has HOST, or the latest)")
	return cmd
}

// sshTarget finds the session config and host that HOST (or, with no
// HOST, the latest session's first host) names.
func sshTarget(configDir, sessionID, host string) (config, name string, err error) {
	live, err := session.Live(configDir)
	if err != nil {
		return "", "", err
	}
	if len(live) == 0 {
		return "", "", errors.New("no running sessions: rent hosts first ('zennet -n 2 -m 512M --provider HOST:PORT'), then log in")
	}
	var ids, names []string
	var found *session.Record
	for i := range live {
		r := &live[i]
		ids = append(ids, r.ID)
		if sessionID != "" && r.ID != sessionID {
			continue
		}
		if sessionID != "" || host == "" {
			found = r // the one named, or the latest so far (Live is oldest first)
		}
		for _, h := range r.Hosts {
			names = append(names, h.Name)
			if h.Name == host {
				found = r
			}
		}
	}
	switch {
	case sessionID != "" && found == nil:
		return "", "", cmdutil.Usagef("--session %s is not running; the running sessions are %s ('zennet status')", sessionID, strings.Join(ids, ", "))
	case found == nil || host != "" && !slices.ContainsFunc(found.Hosts, func(h session.Host) bool { return h.Name == host }):
		where := "no running session has"
		if sessionID != "" {
			where = "session " + sessionID + " has no"
		}
		return "", "", cmdutil.Usagef("%s host %q; the hosts are %s ('zennet status')", where, host, strings.Join(names, ", "))
	case len(found.Hosts) == 0:
		return "", "", fmt.Errorf("session %s has no hosts yet: wait until 'zennet -n' prints them", found.ID)
	}
	if host == "" {
		host = found.Hosts[0].Name
	}
	config = filepath.Join(session.Dir(configDir, found.ID), "ssh_config")
	if _, err := os.Stat(config); err != nil {
		return "", "", fmt.Errorf("session %s: %w (it may be ending; 'zennet status' shows it)", found.ID, err)
	}
	return config, host, nil
}

func runSSH(o *sshOptions, args []string) error {
	var host string
	if len(args) > 0 {
		host = args[0]
	}
	config, host, err := sshTarget(o.G.ConfigDir, o.Session, host)
	if err != nil {
		return err
	}
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		return fmt.Errorf("ssh not found: install the OpenSSH client (Debian: apt install openssh-client): %w", err)
	}
	argv := []string{"ssh", "-F", config, "--", host}
	if len(args) > 1 {
		argv = append(argv, args[1:]...)
	}
	// ssh takes this process's place: its terminal, its signals, its exit
	// code are the user's, as if they had typed it.
	return syscall.Exec(ssh, argv, os.Environ())
}

type sshConfigOptions struct {
	IO        cmdutil.IOStreams
	G         *cmdutil.GlobalOptions
	Install   bool
	Uninstall bool
	File      string
	JSON      bool
}

func newCmdSSHConfig(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &sshConfigOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "ssh-config [--install | --uninstall]",
		Short: "Print the running hosts' ssh_config, or include it in ~/.ssh/config",
		Long: `ssh-config prints the ssh_config entries of every running session's hosts.

--install adds one line to ~/.ssh/config, first in the file so that it applies
to every host: 'Include CONFIG_DIR/ssh_config', zennet's own ssh_config, which
includes every running session's. Then 'ssh zennet-1', scp, rsync and VS Code
Remote-SSH reach the hosts without -F. The file is created (mode 0600) if it
does not exist; no other line of it is changed, and a second --install changes
nothing. --uninstall removes the line.

Host names are never shared by two running sessions (each session reserves its
names), so every name zennet-N the Include brings in is one host. Once a
session ends, its names are free again: the next session's zennet-1 is another
host, with its own pinned host key, and ssh says nothing of the change.`,
		Example: `  zennet ssh-config --install
  ssh zennet-1
  rsync -a ./src/ zennet-1:/root/src/
  zennet ssh-config --uninstall`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runSSHConfig(o) },
	}
	home, _ := os.UserHomeDir()
	cmd.Flags().BoolVar(&o.Install, "install", false, "add an Include of zennet's ssh_config to --file")
	cmd.Flags().BoolVar(&o.Uninstall, "uninstall", false, "remove that Include from --file")
	cmd.Flags().StringVar(&o.File, "file", filepath.Join(home, ".ssh", "config"), "the OpenSSH client config to change")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the result as JSON: the file, the Include line, whether it is there, whether this changed it, the entries")
	return cmd
}

func runSSHConfig(o *sshConfigOptions) error {
	dir, err := filepath.Abs(o.G.ConfigDir)
	if err != nil {
		return err
	}
	if o.Install && o.Uninstall {
		return cmdutil.Usagef("--install and --uninstall: pass one of them")
	}
	target := filepath.Join(dir, "ssh_config")
	line := sshinclude.Line(target)
	doc := cmdutil.SSHConfigDoc{File: o.File, Include: line}
	say := func(format string, a ...any) {
		if !o.JSON {
			fmt.Fprintf(o.IO.ErrOut, "zennet: "+format+"\n", a...)
		}
	}
	switch {
	case o.Install:
		added, err := sshinclude.Install(o.File, target)
		if err != nil {
			return fmt.Errorf("add %q to %s: %w", line, o.File, err)
		}
		doc.Changed = added
		if added {
			say("added %q to %s: 'ssh zennet-1' works without -F ('zennet ssh-config --uninstall' removes it)", line, o.File)
		} else {
			say("%s already includes %s", o.File, target)
		}
	case o.Uninstall:
		removed, err := sshinclude.Uninstall(o.File, target)
		if err != nil {
			return fmt.Errorf("remove %q from %s: %w", line, o.File, err)
		}
		doc.Changed = removed
		if removed {
			say("removed %q from %s", line, o.File)
		} else {
			say("%s does not include %s: nothing to remove", o.File, target)
		}
	}
	installed, err := sshinclude.Installed(o.File, target)
	if err != nil {
		return err
	}
	doc.Installed = installed
	if o.Install || o.Uninstall {
		if o.JSON {
			return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindSSHConfig, doc)
		}
		return nil
	}
	live, err := session.Live(o.G.ConfigDir)
	if err != nil {
		return err
	}
	var entries strings.Builder
	for _, r := range live {
		b, err := os.ReadFile(filepath.Join(session.Dir(o.G.ConfigDir, r.ID), "ssh_config"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // no hosts yet, or ending
		}
		if err != nil {
			return err
		}
		entries.Write(b)
	}
	if o.JSON {
		doc.Config = entries.String()
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindSSHConfig, doc)
	}
	io.WriteString(o.IO.Out, entries.String())
	if cmdutil.IsTerminal(o.IO.ErrOut) {
		if len(live) == 0 {
			fmt.Fprintln(o.IO.ErrOut, "zennet: no running sessions")
		}
		if !installed {
			fmt.Fprintf(o.IO.ErrOut, "zennet: 'zennet ssh-config --install' makes 'ssh zennet-1' work without -F\n")
		}
	}
	return nil
}
