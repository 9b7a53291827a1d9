package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/zennet/zennet/cli/cmdutil"
)

type configOptions struct {
	IO   cmdutil.IOStreams
	G    *cmdutil.GlobalOptions
	JSON bool
}

func newCmdConfig(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &configOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "config [COMMAND...]",
		Short: "Show the effective value of every flag of a command, and where it comes from",
		Long: `config shows, for COMMAND (default: renting, 'zennet -n'), each flag's value and
its source: env (a ZENNET_* variable its help names), file (the config file) or
default. The command line wins over all of them when it gives a flag.

The config file is CONFIG_DIR/config.toml (~/.config/zennet/config.toml). Its
top-level keys are long flag names, for every command that has the flag; a
table named after a command holds keys for that command alone:

    memory = "1G"
    seed = ["192.0.2.7:2222"]
    max-price = 150

    [provide]
    listen = ":2222"

    [provider.status]
    data-dir = "/var/lib/zennet/provider"

A key that is no command's flag, or not the flag of its table's command, is an
error naming it.`,
		Example: `  zennet config
  zennet config provide
  zennet config --json --jq '.data[] | select(.source == "file")'`,
		RunE: func(cmd *cobra.Command, args []string) error { return runConfig(o, cmd.Root(), args) },
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the flags as JSON")
	return cmd
}

func runConfig(o *configOptions, root *cobra.Command, args []string) error {
	target, rest, err := root.Find(args)
	if err != nil || len(rest) > 0 {
		return cmdutil.Usagef("%v is not a zennet command; see 'zennet --help'", args)
	}
	cf, err := cmdutil.LoadConfigFile(filepath.Join(o.G.ConfigDir, cmdutil.ConfigFileName))
	if err != nil {
		return err
	}
	// The target's own flags, and those it inherits, as they would be
	// with nothing on the command line.
	target.InheritedFlags()
	fromFile, err := cf.Apply(target, cmdutil.KnownFlags(root))
	if err != nil {
		return err
	}
	rows := []cmdutil.ConfigRow{}
	target.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		src := "default"
		if env := cmdutil.FlagEnv(f); env != "" && os.Getenv(env) != "" {
			src = "env " + env
		}
		if slices.Contains(fromFile, f.Name) {
			src = "file"
		}
		rows = append(rows, cmdutil.ConfigRow{Flag: f.Name, Value: f.Value.String(), Source: src})
	})
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindConfig, rows)
	}
	t := make([][]string, 0, len(rows))
	for _, r := range rows {
		t = append(t, []string{"--" + r.Flag, r.Value, r.Source})
	}
	cmdutil.Table(o.IO.Out, []string{"FLAG", "VALUE", "SOURCE"}, t)
	if cmdutil.IsTerminal(o.IO.ErrOut) {
		fmt.Fprintf(o.IO.ErrOut, "zennet: config file %s\n", cf.Path)
	}
	return nil
}
