package cmdutil

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

type sample struct {
	Session string   `json:"session"`
	Hosts   []string `json:"hosts"`
	Billed  uint64   `json:"billed_msat"`
	Rate    float64  `json:"rate"`
}

var samples = []sample{{"a1", []string{"zennet-1", "zennet-2"}, 12345678901, 0.5}, {"b2", []string{}, 7, 2}}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		name, jq, tmpl, want string
	}{
		{"strings raw", `.data[].session`, "", "a1\nb2\n"},
		{"values compact off a terminal", `.data[0].hosts`, "", "[\"zennet-1\",\"zennet-2\"]\n"},
		{"whole numbers stay whole", `.data[0].billed_msat, .data[0].rate`, "", "12345678901\n0.5\n"},
		{"computed", `[.data[].billed_msat] | add`, "", "12345678908\n"},
		{"the envelope", `.kind, .schema_version`, "", "status\n1\n"},
		{"nothing", `.data[] | select(.session == "zz")`, "", ""},
		{"template", "", `{{range .data}}{{.session}} {{.billed_msat}} {{join "," .hosts}}{{"\n"}}{{end}}`, "a1 12345678901 zennet-1,zennet-2\nb2 7 \n"},
		{"template json", "", `{{json (index .data 1)}}`, `{"billed_msat":7,"hosts":[],"rate":2,"session":"b2"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := compileFormat(tc.jq, tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			d := &DocWriter{W: &b, format: f}
			if err := WriteJSON(d, KindStatus, samples); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}

// Without a format a DocWriter prints the document as WriteJSON always has.
func TestDocWriterPlain(t *testing.T) {
	var plain, wrapped bytes.Buffer
	WriteJSON(&plain, KindStatus, samples)
	WriteJSON(NewDocWriter(&wrapped), KindStatus, samples)
	if plain.String() != wrapped.String() || !strings.Contains(plain.String(), `"kind": "status"`) {
		t.Fatalf("wrapped %q, plain %q", wrapped.String(), plain.String())
	}
}

func TestFormatErrors(t *testing.T) {
	var ue UsageError
	for _, tc := range []struct{ jq, tmpl, want string }{
		{".data[", "", "--jq .data[: unexpected EOF"},
		{"nosuchfn(1)", "", "function not defined"},
		{"", "{{.data", "--template: "},
		{".", "{{.}}", "pass one of them"},
	} {
		_, err := compileFormat(tc.jq, tc.tmpl)
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("jq %q template %q: got %v, want a usage error saying %q", tc.jq, tc.tmpl, err, tc.want)
		}
	}
	// An error while running says so, after what was printed before it.
	f, _ := compileFormat(`.data[] | .session, error("boom")`, "")
	var b bytes.Buffer
	err := WriteJSON(&DocWriter{W: &b, format: f}, KindStatus, samples)
	if err == nil || !strings.Contains(err.Error(), "--jq: error: boom") || b.String() != "a1\n" {
		t.Errorf("got %q, %v; want a1 then the error", b.String(), err)
	}
}

// AddFormatFlags gives --jq and --template to the commands with --json
// only; either turns --json on and formats what the command prints.
func TestAddFormatFlags(t *testing.T) {
	var b bytes.Buffer
	out := NewDocWriter(&b)
	var asJSON bool
	root := &cobra.Command{Use: "root", SilenceErrors: true, SilenceUsage: true, RunE: func(*cobra.Command, []string) error { return nil }}
	withJSON := &cobra.Command{Use: "list", RunE: func(*cobra.Command, []string) error {
		if !asJSON {
			_, err := out.Write([]byte("table\n"))
			return err
		}
		return WriteJSON(out, KindStatus, samples)
	}}
	withJSON.Flags().BoolVar(&asJSON, "json", false, "")
	root.AddCommand(withJSON, &cobra.Command{Use: "other", RunE: func(*cobra.Command, []string) error { return nil }})
	AddFormatFlags(root, out)
	if root.Flags().Lookup("jq") != nil || root.Commands()[1].Flags().Lookup("jq") != nil {
		t.Fatal("--jq on a command without --json")
	}
	root.SetArgs([]string{"list", "--jq", ".data[1].session"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !asJSON || b.String() != "b2\n" {
		t.Fatalf("list --jq: json %v, printed %q", asJSON, b.String())
	}
	root.SetArgs([]string{"list", "--jq", ".", "--template", "x"})
	if err := root.Execute(); err == nil {
		t.Fatal("--jq with --template: no error")
	}
}
