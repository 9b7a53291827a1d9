package cmdutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

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
	f, ok := unwrap(w).(*os.File)
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
// Written to a DocWriter with a --jq or --template, the document goes
// through it.
func WriteJSON(w io.Writer, kind Kind, data any) error { return writeDoc(w, kind, data, "  ") }

// WriteJSONLine prints one --json document on one line (JSON Lines): the
// form of the documents a long-running command prints one after another
// as a stream (zennet -n: hosts, events, receipts). Written to a DocWriter
// with a --jq or --template, the document goes through it.
func WriteJSONLine(w io.Writer, kind Kind, data any) error { return writeDoc(w, kind, data, "") }

// writeDoc writes kind's envelope around data, indented by indent ("" for
// one line), through w's --jq or --template if it has one.
func writeDoc(w io.Writer, kind Kind, data any, indent string) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", indent)
	if err := enc.Encode(envelope{SchemaVersion: SchemaVersion, Kind: kind, Data: data}); err != nil {
		return err
	}
	if ok, err := formatted(w, b.Bytes()); ok {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Table prints rows aligned on a terminal and tab-separated (no header)
// elsewhere, so scripts get stable columns.
func Table(w io.Writer, header []string, rows [][]string) {
	if !IsTerminal(w) {
		for _, r := range rows {
			fmt.Fprintln(w, joinCells(r))
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, joinCells(r))
	}
	tw.Flush()
}

// joinCells joins a row's cells with tabs, each cell printable (a
// provider's address or key comes from the network) and free of tabs and
// line breaks, so that a row stays one row of as many columns.
func joinCells(r []string) string {
	cells := make([]string, len(r))
	for i, c := range r {
		cells[i] = strings.ReplaceAll(Printable(c, true), "\t", `\t`)
	}
	return strings.Join(cells, "\t")
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

// Printable is s with every control character but newline (and, with
// oneLine, newline too) written as its Go escape: text from a provider or
// a peer (an end reason, an error message) reaches the user's terminal,
// and an escape sequence in it could rewrite the screen, and a line break
// forge a line of zennet's own.
func Printable(s string, oneLine bool) string {
	clean := true
	for _, r := range s {
		if isControl(r, oneLine) {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, size := utf8.DecodeRuneInString(s[i:])
		w = size
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case isControl(r, oneLine):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune, oneLine bool) bool {
	switch r {
	case '\n':
		return oneLine
	case '\t':
		return false
	}
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029'
}
