package cmdutil

// --jq and --template, as gh has them: every command that takes --json
// takes them too, and each document it prints goes through the jq
// expression (gojq) or the Go template instead of being printed as it is.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/template"

	"github.com/itchyny/gojq"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// DocWriter is a command's standard output: it passes writes through, and
// WriteJSON formats documents written to it with its format, if any.
// Commands share one, made by NewDocWriter; the command that runs sets
// its format from its flags (AddFormatFlags).
type DocWriter struct {
	W      io.Writer
	format *docFormat
}

// NewDocWriter wraps w; IsTerminal sees through it.
func NewDocWriter(w io.Writer) *DocWriter { return &DocWriter{W: w} }

func (d *DocWriter) Write(p []byte) (int, error) { return d.W.Write(p) }

// docFormat is a compiled --jq expression or --template.
type docFormat struct {
	jq   *gojq.Code
	tmpl *template.Template
}

// AddFormatFlags gives every command under root that has a --json flag
// --jq and --template, which imply --json and format each document the
// command prints on out.
func AddFormatFlags(root *cobra.Command, out *DocWriter) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		switch {
		case c.PersistentFlags().Lookup("json") != nil:
			// A --json its subcommands share (zennet provider ...): so
			// are --jq and --template, and the hook that reads them.
			addFormatFlags(c, c.PersistentFlags(), &c.PersistentPreRunE, out)
			return
		case c.Flags().Lookup("json") != nil:
			addFormatFlags(c, c.Flags(), &c.PreRunE, out)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func addFormatFlags(c *cobra.Command, fs *pflag.FlagSet, hook *func(*cobra.Command, []string) error, out *DocWriter) {
	var jq, tmpl string
	fs.StringVar(&jq, "jq", "", "filter the JSON output with a jq expression (implies --json), e.g. --jq '.data'")
	fs.StringVar(&tmpl, "template", "", "format the JSON output with a Go template (implies --json), e.g. --template '{{.kind}}'")
	prev := *hook
	*hook = func(cmd *cobra.Command, args []string) error {
		if jq != "" || tmpl != "" {
			f, err := compileFormat(jq, tmpl)
			if err != nil {
				return err
			}
			if err := cmd.Flags().Set("json", "true"); err != nil {
				return err
			}
			out.format = f
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}

// templateFuncs are the functions --template has beyond text/template's.
var templateFuncs = template.FuncMap{
	// json is v as compact JSON.
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	// join joins a list's elements, each printed as by {{.}}.
	"join": func(sep string, v []any) string {
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = fmt.Sprint(e)
		}
		return strings.Join(s, sep)
	},
}

func compileFormat(jq, tmpl string) (*docFormat, error) {
	if jq != "" && tmpl != "" {
		return nil, Usagef("--jq and --template: pass one of them")
	}
	if tmpl != "" {
		t, err := template.New("--template").Funcs(templateFuncs).Option("missingkey=zero").Parse(tmpl)
		if err != nil {
			return nil, Usagef("--template: %v (a Go template over the document, e.g. '{{range .data}}{{.session}}{{\"\\n\"}}{{end}}')", err)
		}
		return &docFormat{tmpl: t}, nil
	}
	q, err := gojq.Parse(jq)
	if err != nil {
		return nil, Usagef("--jq %s: %v (a jq expression over the document, e.g. '.data')", jq, err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, Usagef("--jq %s: %v", jq, err)
	}
	return &docFormat{jq: code}, nil
}

// write formats one document, its JSON in doc, on w.
func (f *docFormat) write(w io.Writer, doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	v = plainNumbers(v)
	if f.tmpl != nil {
		var b bytes.Buffer
		if err := f.tmpl.Execute(&b, v); err != nil {
			return fmt.Errorf("--template: %w", err)
		}
		_, err := w.Write(b.Bytes())
		return err
	}
	var b bytes.Buffer
	iter := f.jq.Run(v)
	for {
		r, ok := iter.Next()
		if !ok {
			break
		}
		if err, ok := r.(error); ok {
			var halt *gojq.HaltError
			if errors.As(err, &halt) && halt.Value() == nil {
				break
			}
			w.Write(b.Bytes())
			return fmt.Errorf("--jq: %w", err)
		}
		if s, ok := r.(string); ok {
			b.WriteString(s) // strings raw, as gh and jq -r print them
		} else {
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			if IsTerminal(w) {
				enc.SetIndent("", "  ")
			}
			if err := enc.Encode(r); err != nil {
				return err
			}
			continue // Encode ends the line
		}
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}

// plainNumbers turns the json.Numbers of a decoded document into ints
// where they are whole and fit, floats otherwise: what gojq computes with,
// and what a template prints without an exponent.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = plainNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = plainNumbers(x[k])
		}
	}
	return v
}

// unwrap is w itself, or what a DocWriter writes to.
func unwrap(w io.Writer) io.Writer {
	if d, ok := w.(*DocWriter); ok {
		return d.W
	}
	return w
}

// formatted writes a document through w's format, and reports whether w
// has one.
func formatted(w io.Writer, doc []byte) (bool, error) {
	d, ok := w.(*DocWriter)
	if !ok || d.format == nil {
		return false, nil
	}
	return true, d.format.write(d.W, doc)
}
