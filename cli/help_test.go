package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
)

// Every command a user runs shows examples in its help (the hidden agent,
// which runs inside sandboxes, aside).
func TestEveryCommandHasExamples(t *testing.T) {
	var b bytes.Buffer
	root := NewRootCmd(cmdutil.IOStreams{In: &b, Out: &b, ErrOut: &b})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		if c.Runnable() && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no examples", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

// A mistyped command gets a suggestion, and stays a usage error.
func TestDidYouMean(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stauts"}, `unknown command "stauts" for "zennet"; did you mean 'zennet status'?`},
		{[]string{"provider", "stauts"}, `did you mean 'zennet provider status'?`},
		{[]string{"ledgr"}, `did you mean 'zennet ledger'?`},
		{[]string{"xyzzy"}, `unexpected argument "xyzzy" for "zennet"; see 'zennet --help'`},
	} {
		var b bytes.Buffer
		root := NewRootCmd(cmdutil.IOStreams{In: &b, Out: &b, ErrOut: &b})
		root.SetArgs(tc.args)
		err := root.Execute()
		var ue cmdutil.UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}
