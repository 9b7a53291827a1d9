// Command zennet-dashboard is the provider's terminal dashboard, which
// 'zennet dashboard' and 'zennet provide --tui' run (found next to zennet;
// 'make build' puts it there). It is a binary of its own so that no other
// zennet command loads the terminal UI: Bubble Tea v1 asks the terminal
// for its background colour when it is loaded, and a terminal that never
// answers held every command, --version included, for 5 s.
//
// Usage: zennet-dashboard --data-dir DIR [--interval 1s]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/tui"
)

func main() {
	fs := flag.NewFlagSet("zennet-dashboard", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "the provider's data dir")
	interval := fs.Duration("interval", time.Second, "how often to ask the provider for its status")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *dataDir == "" || fs.NArg() != 0 || *interval < 100*time.Millisecond {
		fmt.Fprintln(os.Stderr, "usage: zennet-dashboard --data-dir DIR [--interval D (at least 100ms)]; 'zennet dashboard' runs it")
		os.Exit(2)
	}
	// SIGTERM (the provider that runs it stopping) and a hang-up (the
	// terminal closed) end it cleanly, the terminal restored, as q does.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	c, err := control.Dial(*dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "zennet-dashboard: %v\n", err)
		os.Exit(1)
	}
	defer c.Close()
	if err := tui.Run(ctx, os.Stdin, os.Stdout, c, *interval); err != nil {
		fmt.Fprintf(os.Stderr, "zennet-dashboard: %v\n", err)
		os.Exit(1)
	}
}
