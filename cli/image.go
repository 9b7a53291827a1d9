package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/sandbox"
)

func newCmdImage(io cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage the sandboxes' root filesystem image", Args: cmdutil.NoArgs}
	var dir, mirror string
	var packages []string
	var asJSON bool
	build := &cobra.Command{
		Use:   "build [--image DIR] [--packages P,...]",
		Short: "Build the root filesystem (minimal Debian bookworm, with extra packages) unless it is there",
		Long: `build makes the sandboxes' root filesystem at DIR with mmdebstrap: Debian bookworm's
minimal base, the packages every host has (` + strings.Join(sandbox.ImagePackages, ", ") + `)
and those of --packages. An image zennet built from an older recipe or with
other packages is rebuilt; a directory zennet did not build (no
/etc/zennet-image) is never touched: point 'zennet provide --image' at it to
use it as it is.`,
		Example: `  zennet image build
  zennet image build --image /srv/zennet/mpi --packages openmpi-bin,python3-mpi4py
  zennet provide --image /srv/zennet/mpi`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sandbox.CheckPackages(packages); err != nil {
				return cmdutil.Usagef("--packages: %v", err)
			}
			var want []string
			if cmd.Flags().Changed("packages") {
				want = append([]string{}, packages...)
			}
			state, _, err := sandbox.InspectImage(dir, want)
			if err != nil {
				return err
			}
			done := func(state string) error {
				if asJSON {
					return cmdutil.WriteJSON(io.Out, cmdutil.KindImage, cmdutil.ImageDoc{Path: dir, State: state, Packages: append([]string{}, want...)})
				}
				fmt.Fprintf(io.ErrOut, "zennet: image %s is %s\n", dir, state)
				return nil
			}
			switch state {
			case sandbox.ImageCurrent:
				return done("ready")
			case sandbox.ImageForeign:
				return cmdutil.ConflictError{Err: fmt.Errorf("%s: %w: zennet uses it as it is ('zennet provide --image %s') and never rebuilds or deletes it; build into another directory with --image", dir, sandbox.ErrForeignImage, dir)}
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("building the image needs root (mmdebstrap); run as root or 'sudo make image'")
			}
			fmt.Fprintf(io.ErrOut, "zennet: building image %s ...\n", dir)
			if err := sandbox.BuildImage(cmd.Context(), dir, sandbox.BuildOptions{Mirror: mirror, Packages: want}); err != nil {
				return err
			}
			return done("built")
		},
	}
	build.Flags().StringVar(&dir, "image", cmdutil.DefaultImage(), "where the image goes")
	build.Flags().BoolVar(&asJSON, "json", false, "print the image's path and state as JSON")
	build.Flags().StringVar(&mirror, "mirror", "http://deb.debian.org/debian", "Debian mirror")
	build.Flags().StringSliceVar(&packages, "packages", nil, "extra Debian packages to install (comma-separated; default: those of the image being rebuilt)")
	cmd.AddCommand(build)
	return cmd
}
