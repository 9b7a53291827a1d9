// Command zennet rents and provides SSH hosts in gVisor sandboxes.
package main

import (
	"os"

	"github.com/zennet/zennet/cli"
)

func main() { os.Exit(cli.Main()) }
