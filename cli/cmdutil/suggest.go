package cmdutil

import (
	"strings"

	"github.com/spf13/cobra"
)

// didYouMean is " (did you mean 'zennet status'?)" when arg is close to a
// subcommand of cmd (cobra's SuggestionsFor: a Levenshtein distance of at
// most 2, or a prefix), else "".
func didYouMean(cmd *cobra.Command, arg string) string {
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default, which SuggestionsFor leaves at 0
	}
	s := cmd.SuggestionsFor(arg)
	if len(s) == 0 {
		return ""
	}
	for i, name := range s {
		s[i] = "'" + cmd.CommandPath() + " " + name + "'"
	}
	return "; did you mean " + strings.Join(s, " or ") + "?"
}
