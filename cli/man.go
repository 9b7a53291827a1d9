package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/zennet/zennet/cli/cmdutil"
)

// newCmdMan writes a man page for every command, from the same text as
// their help ('make man' puts them in man/man1).
func newCmdMan(io cmdutil.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write zennet's man pages (section 1) into DIR",
		Long: `man writes a page for zennet and for each of its commands into DIR (made if
need be): zennet.1, zennet-provide.1, zennet-provider-status.1, ... Read them
with 'man -l DIR/zennet.1', or put DIR under a MANPATH directory as man1.`,
		Example: "  zennet man ./man/man1\n  make man",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{Title: "ZENNET", Section: "1", Source: "zennet " + Version(), Manual: "zennet manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			fmt.Fprintf(io.ErrOut, "zennet: man pages in %s\n", args[0])
			return nil
		},
	}
}
