package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/sandbox"
)

func newCmdImage(io cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage the sandboxes' root filesystem image"}
	var dir, mirror string
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the root filesystem (minimal Debian bookworm) if it is missing",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if sandbox.CheckImage(dir) == nil {
				fmt.Fprintf(io.ErrOut, "zennet: image %s is ready\n", dir)
				return nil
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("building the image needs root (mmdebstrap); run as root or 'sudo make image'")
			}
			fmt.Fprintf(io.ErrOut, "zennet: building image %s ...\n", dir)
			return sandbox.BuildImage(cmd.Context(), dir, mirror)
		},
	}
	build.Flags().StringVar(&dir, "image", cmdutil.DefaultImage(), "where the image goes")
	build.Flags().StringVar(&mirror, "mirror", "http://deb.debian.org/debian", "Debian mirror")
	cmd.AddCommand(build)
	return cmd
}
