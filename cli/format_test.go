package cli

import (
	"bytes"
	"testing"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
)

// Every command that takes --json takes --jq and --template too.
func TestEveryJSONCommandFormats(t *testing.T) {
	var b bytes.Buffer
	root := NewRootCmd(cmdutil.IOStreams{In: &b, Out: &b, ErrOut: &b})
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		has := func(name string) bool { return c.Flags().Lookup(name) != nil || c.InheritedFlags().Lookup(name) != nil }
		if has("json") {
			n++
			for _, f := range []string{"jq", "template"} {
				if !has(f) {
					t.Errorf("%q has --json but no --%s", c.CommandPath(), f)
				}
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if n < 10 {
		t.Errorf("only %d commands with --json found", n)
	}
}
