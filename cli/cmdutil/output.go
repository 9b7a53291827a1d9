package cmdutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/zennet/zennet/internal/atomicfile"
)

// IOStreams are a command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// SchemaVersion is the version of every --json document's envelope.
const SchemaVersion = 1

// envelope wraps every --json document.
type envelope struct {
	SchemaVersion int  `json:"schema_version"`
	Kind          Kind `json:"kind"`
	Data          any  `json:"data"`
}

// WriteJSON prints one --json document.
func WriteJSON(w io.Writer, kind Kind, data any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(envelope{SchemaVersion: SchemaVersion, Kind: kind, Data: data})
}

// Table prints rows aligned on a terminal and tab-separated (no header)
// elsewhere, so scripts get stable columns.
func Table(w io.Writer, header []string, rows [][]string) {
	if !IsTerminal(w) {
		for _, r := range rows {
			fmt.Fprintln(w, strings.Join(r, "\t"))
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// WriteFileJSON writes v as an indented --json envelope of kind to path,
// atomically.
func WriteFileJSON(path string, kind Kind, v any) error {
	var b bytes.Buffer
	if err := WriteJSON(&b, kind, v); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b.Bytes(), 0o600)
}

// Plural returns "1 host", "2 hosts".
func Plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}
