package cmdutil

import (
	"strings"
	"testing"
)

var sizeTests = []struct {
	in      string
	want    int64
	wantErr string
}{
	{"512M", 512 << 20, ""},
	{"512m", 512 << 20, ""},
	{"512MiB", 512 << 20, ""},
	{"512MB", 512 << 20, ""},
	{"1G", 1 << 30, ""},
	{"1.5G", 3 << 29, ""},
	{"2T", 2 << 40, ""},
	{"64K", 64 << 10, ""},
	{"4096", 4096, ""},
	{" 8G ", 8 << 30, ""},
	{"5Q", 0, `unknown unit "Q"`},
	{"", 0, "empty size"},
	{"M", 0, "not a number"},
	{"-1G", 0, "not a number"},
	{"1..2G", 0, "not a number"},
	{"99999999T", 0, "too large"},
}

func TestParseSize(t *testing.T) {
	for _, tt := range sizeTests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for _, tt := range []struct {
		in   int64
		want string
	}{{512 << 20, "512M"}, {1 << 30, "1G"}, {3 << 29, "1.5G"}, {1000, "1000"}, {24202772480, "22.5G"}} {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, tt := range sizeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseSize(s)
		if err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("ParseSize(%q) = %d < 0", s, b)
		}
		// Every size prints as something ParseSize reads; an exact one
		// (no decimal point) reads back to itself.
		out := FormatSize(b)
		back, err := ParseSize(out)
		if err != nil {
			t.Fatalf("FormatSize(%d) = %q does not parse: %v", b, out, err)
		}
		if !strings.Contains(out, ".") && back != b {
			t.Fatalf("FormatSize(%d) = %q parses back to %d", b, out, back)
		}
	})
}
