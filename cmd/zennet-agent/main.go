// Command zennet-agent is the SSH server inside zennet's sandboxes: the
// provider runs 'zennet-agent serve' once per SSH connection, on the
// connection's stdin and stdout. It is 'zennet agent serve' without the rest
// of zennet, so that each session starts faster and takes less of the
// renter's memory (docs/architecture.md, "The agent").
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/zennet/zennet/agent"
)

const usage = `usage: zennet-agent serve [--config DIR] [--listen ADDR [--init]]

Serves one SSH connection on stdin and stdout inside a sandbox, with the host
key and authorized keys in DIR (default ` + agent.ConfigDir + `); with --listen,
every connection to ADDR (HOST:PORT) instead, until killed; with --init too,
as the sandbox's first process (stdio on /dev/null, orphans reaped, signals
ignored), for good.
`

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	dir := fs.String("config", agent.ConfigDir, "directory with host_key and authorized_keys")
	listen := fs.String("listen", "", "serve every connection to this address (HOST:PORT) instead of stdin and stdout")
	asInit := fs.Bool("init", false, "with --listen: be the sandbox's first process")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zennet-agent: unexpected argument %q\n%s", fs.Arg(0), usage)
		return 2
	}
	if *asInit && *listen == "" {
		fmt.Fprintf(stderr, "zennet-agent: --init needs --listen\n%s", usage)
		return 2
	}
	cfg, err := agent.LoadConfig(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "zennet-agent: %v\n", err)
		return 1
	}
	if *asInit {
		// It returns only if it could not become the first process.
		err := agent.ServeInit(cfg, *listen)
		fmt.Fprintf(stderr, "zennet-agent: %v\n", err)
		return 1
	}
	if *listen != "" {
		if err := agent.ListenAndServe(cfg, *listen); err != nil {
			fmt.Fprintf(stderr, "zennet-agent: %v\n", err)
			return 1
		}
		return 0
	}
	agent.Serve(cfg, agent.Stdio{})
	return 0
}
