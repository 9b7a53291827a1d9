package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/zennet/zennet/cli/cmdutil"
)

// dashboardBinary is the terminal dashboard's own binary, zennet-dashboard
// (cmd/zennet-dashboard): ZENNET_DASHBOARD_BINARY, else the one next to
// this zennet (where 'make build' puts it), next to ZENNET_AGENT_BINARY,
// or on PATH. zennet itself does not load the terminal UI, so no other
// command waits on a terminal that does not answer its colour query.
func dashboardBinary() (string, error) {
	if p := os.Getenv("ZENNET_DASHBOARD_BINARY"); p != "" {
		return p, nil
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	if a := os.Getenv("ZENNET_AGENT_BINARY"); a != "" {
		dirs = append(dirs, filepath.Dir(a))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "zennet-dashboard")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("zennet-dashboard"); err == nil {
		return p, nil
	}
	return "", errors.New("the dashboard's binary, zennet-dashboard, is neither next to zennet nor on PATH: 'make build' puts it in bin/ beside zennet (or set ZENNET_DASHBOARD_BINARY)")
}

// runDashboard runs the dashboard of the provider on dataDir on the
// terminal until the user quits or ctx ends (then it is asked to end,
// restoring the terminal).
func runDashboard(ctx context.Context, io cmdutil.IOStreams, dataDir string, interval time.Duration) error {
	bin, err := dashboardBinary()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "--data-dir", dataDir, "--interval", interval.String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = io.In, io.Out, io.ErrOut
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil
	}
	return err
}
