package cli

import "github.com/spf13/cobra"

// examples are the help's examples of the commands defined without one,
// by command path; addExamples gives each its own.
var examples = map[string]string{
	"zennet release": `  zennet release
  zennet release 0123456789ab --json`,
	"zennet usage": `  zennet usage
  zennet usage --json --jq '.data[] | {name, cpu_s: (.counters.cpu_ns / 1e9)}'`,
	"zennet price show": `  zennet price show ~/.cache/zennet/model.json
  zennet price show model.json --json --jq '.data.hash'`,
	"zennet provider status": `  zennet provider status
  zennet provider status --data-dir /var/lib/zennet/provider --json`,
	"zennet provider lease": `  zennet provider lease zn-0123456789abcdef0
  zennet provider lease zn-0123456789abcdef0 --json --jq '.data.state'`,
	"zennet provider pause":  `  zennet provider pause zn-0123456789abcdef0`,
	"zennet provider resume": `  zennet provider resume zn-0123456789abcdef0`,
	"zennet provider end":    `  zennet provider end zn-0123456789abcdef0 --json`,
	"zennet provider drain": `  zennet provider drain
  zennet provider drain --off`,
}

// addExamples sets the examples of the commands under root that have
// none.
func addExamples(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if ex, ok := examples[c.CommandPath()]; ok && c.Example == "" {
			c.Example = ex
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}
