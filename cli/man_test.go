package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
)

// TestManPages: 'zennet man DIR' writes a page for every command, from its
// help: its flags are there.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	root := NewRootCmd(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	root.SetArgs([]string{"man", dir})
	if err := root.Execute(); err != nil {
		t.Fatalf("zennet man: %v\n%s", err, errOut.String())
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root {
			return
		}
		page := filepath.Join(dir, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		if _, err := os.Stat(page); err != nil {
			t.Errorf("no man page for %q: %v", c.CommandPath(), err)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	b, err := os.ReadFile(filepath.Join(dir, "zennet-provide.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".SH NAME", "zennet-provide", `\fB--listen\fP`, "address of the SSH gateway"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("zennet-provide.1 has no %q", want)
		}
	}
}
