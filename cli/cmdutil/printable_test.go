package cmdutil

import (
	"bytes"
	"strings"
	"testing"
)

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		in      string
		oneLine bool
		want    string
	}{
		{"lease ended: the sandbox stopped", true, "lease ended: the sandbox stopped"},
		{"naïve → ok\ttab", true, "naïve → ok\ttab"},
		// A provider's end reason that clears the screen and forges a line.
		{"bye\x1b[2J\x1b[H\nzennet: payment confirmed", true, `bye\x1b[2J\x1b[H\nzennet: payment confirmed`},
		{"two\nlines\r", false, "two\nlines\\r"},
		{"bell\a and C1 \u009b31m", false, `bell\a and C1 \u009b31m`},
		{"bad utf-8 \xff here", true, `bad utf-8 \xff here`},
		{"line\u2028separator", true, `line\u2028separator`},
	} {
		if got := Printable(tc.in, tc.oneLine); got != tc.want {
			t.Errorf("Printable(%q, %v) = %q, want %q", tc.in, tc.oneLine, got, tc.want)
		}
	}
}

func FuzzPrintable(f *testing.F) {
	f.Add("bye\x1b[2J\nzennet: x", true)
	f.Add("\xff\u009b", false)
	f.Fuzz(func(t *testing.T, s string, oneLine bool) {
		out := Printable(s, oneLine)
		for _, r := range out {
			if isControl(r, oneLine) {
				t.Fatalf("Printable(%q) = %q keeps control %U", s, out, r)
			}
		}
	})
}

// A table row stays one row of its columns whatever its cells hold.
func TestTableCellsEscaped(t *testing.T) {
	var b bytes.Buffer
	Table(&b, []string{"a", "b", "c"}, [][]string{{"127.0.0.1:1\x1b[2J", "x\ty", "z\nzennet: forged"}, {"1", "2", "3"}})
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b.String())
	}
	if got := strings.Split(lines[0], "\t"); len(got) != 3 || got[0] != `127.0.0.1:1\x1b[2J` || got[1] != `x\ty` || got[2] != `z\nzennet: forged` {
		t.Fatalf("first row %q", got)
	}
}
