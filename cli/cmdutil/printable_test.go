package cmdutil

import "testing"

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
