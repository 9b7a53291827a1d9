package cli

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
)

// TestEveryCommandTakesJSON: every command that prints a result takes
// --json (docs/user-guide.md, "Scripts"); 'zennet image build' did not.
// The exceptions draw a terminal or run inside a sandbox.
func TestEveryCommandTakesJSON(t *testing.T) {
	exempt := map[string]string{
		"zennet dashboard": "a terminal UI; 'zennet provider status --json' is its script form",
		"zennet ssh":       "OpenSSH runs in its place: what it prints is the remote command's",
		"zennet man":       "it writes man pages into a directory and prints no result",
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return // zennet agent (inside sandboxes), zennet bench fairness
		}
		if c.Runnable() && c.Flag("json") == nil && exempt[c.CommandPath()] == "" {
			t.Errorf("%s takes no --json", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(NewRootCmd(cmdutil.IOStreams{}))
}
