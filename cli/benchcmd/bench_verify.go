package benchcmd

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/cli/cmdutil"
)

type benchVerifyOptions struct {
	IO       cmdutil.IOStreams
	G        *cmdutil.GlobalOptions
	Files    []string
	Unsigned bool
	JSON     bool
}

func newCmdBenchVerify(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &benchVerifyOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "verify FILE...",
		Short: "Check calibration sets: well formed, and signed by the key they name",
		Long: `verify decodes each calibration set and checks its signature against the key it
names. A truncated or modified file fails, and so does an unsigned one unless
--unsigned is given. It exits 1 if any file fails.`,
		Example: "  zennet bench verify calibration.json\n  zennet bench verify --json sets/*.json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmdutil.Usagef("want at least one FILE; see 'zennet bench verify --help'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Files = args
			return runBenchVerify(o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Unsigned, "unsigned", false, "accept sets that are well formed but not signed")
	f.BoolVar(&o.JSON, "json", false, "print the result of each file as JSON")
	return cmd
}

// checkSets checks files (bench.CheckFiles), saying how to sign a set
// where one is refused as unsigned.
func checkSets(files []string, allowUnsigned bool) ([]bench.Check, int) {
	checks, failed := bench.CheckFiles(files, allowUnsigned)
	for i, c := range checks {
		if errors.Is(c.Err, bench.ErrUnsigned) {
			checks[i].Error += " (sign it with 'zennet bench publish', or pass --unsigned)"
		}
	}
	return checks, failed
}

func runBenchVerify(o *benchVerifyOptions) error {
	checks, failed := checkSets(o.Files, o.Unsigned)
	printChecks(o.IO, o.JSON, cmdutil.KindCalibrationChecks, checks)
	if failed > 0 {
		return cmdutil.CauseError{Msg: fmt.Sprintf("%d of %d calibration sets failed verification", failed, len(checks))}
	}
	return nil
}

type benchImportOptions struct {
	IO       cmdutil.IOStreams
	G        *cmdutil.GlobalOptions
	Files    []string
	Unsigned bool
	JSON     bool
}

func newCmdBenchImport(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &benchImportOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Verify calibration sets and keep them in the config dir",
		Long: `import verifies each calibration set as 'zennet bench verify' does and, if all
pass, stores them under CONFIG_DIR/calibrations/, named by their digest (the
same set imported twice is kept once). If any fails, none is stored.`,
		Example: "  zennet bench import alice.json bob.json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmdutil.Usagef("want at least one FILE; see 'zennet bench import --help'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Files = args
			return runBenchImport(o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Unsigned, "unsigned", false, "accept sets that are well formed but not signed")
	f.BoolVar(&o.JSON, "json", false, "print the result of each file as JSON")
	return cmd
}

func runBenchImport(o *benchImportOptions) error {
	checks, failed := checkSets(o.Files, o.Unsigned)
	if failed > 0 {
		printChecks(o.IO, o.JSON, cmdutil.KindCalibrationImports, checks)
		return cmdutil.CauseError{Msg: fmt.Sprintf("%d of %d calibration sets failed verification; nothing imported", failed, len(checks))}
	}
	if err := bench.Import(filepath.Join(o.G.ConfigDir, bench.StoreDir), checks); err != nil {
		return err
	}
	printChecks(o.IO, o.JSON, cmdutil.KindCalibrationImports, checks)
	return nil
}

func printChecks(io cmdutil.IOStreams, asJSON bool, kind cmdutil.Kind, checks []bench.Check) {
	if asJSON {
		cmdutil.WriteJSON(io.Out, kind, checks)
		return
	}
	var rows [][]string
	for _, c := range checks {
		status := "ok"
		switch {
		case !c.OK:
			status = "FAILED"
		case !c.Signed:
			status = "unsigned"
		}
		signer, detail := c.Signer, c.Machine
		if signer == "" {
			signer = "-"
		}
		if !c.OK {
			detail = c.Error
		} else if c.StoredAs != "" {
			detail = c.StoredAs
		}
		rows = append(rows, []string{c.File, status, signer, strconv.Itoa(c.Steps), detail})
	}
	cmdutil.Table(io.Out, []string{"FILE", "STATUS", "SIGNER", "STEPS", "DETAIL"}, rows)
}
