package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestInspectImage(t *testing.T) {
	withPackages := fakeImage(t, ImageVersion)
	os.WriteFile(filepath.Join(withPackages, imageStamp), []byte(ImageVersion+"\npackages: python3-mpi4py,openmpi-bin\n"), 0o644)
	foreign := fakeImage(t, "")
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, tt := range []struct {
		name     string
		dir      string
		packages []string
		want     ImageState
	}{
		{"nothing there", filepath.Join(t.TempDir(), "none"), nil, ImageMissing},
		{"empty directory", t.TempDir(), nil, ImageMissing},
		{"current", fakeImage(t, ImageVersion), nil, ImageCurrent},
		{"current, no extra packages asked", fakeImage(t, ImageVersion), []string{}, ImageCurrent},
		{"older recipe", fakeImage(t, "bookworm-1"), nil, ImageStale},
		{"with packages, any asked", withPackages, nil, ImageCurrent},
		{"with packages, the same asked in another order", withPackages, []string{"openmpi-bin", "python3-mpi4py", "openmpi-bin"}, ImageCurrent},
		{"with packages, others asked", withPackages, []string{"iperf3"}, ImageStale},
		{"with packages, none asked", withPackages, []string{}, ImageStale},
		{"no stamp: the provider's own", foreign, nil, ImageForeign},
		{"no stamp, packages asked", foreign, []string{"iperf3"}, ImageForeign},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := InspectImage(tt.dir, tt.packages)
			if err != nil || got != tt.want {
				t.Fatalf("InspectImage = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, _, err := InspectImage(file, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: err = %v, want not a directory", err)
	}
	if _, _, err := InspectImage("", nil); err == nil || !strings.Contains(err.Error(), "--image") {
		t.Errorf("no path: err = %v", err)
	}
}

// TestBuildImageKeepsForeign: a directory zennet did not build is never
// rebuilt or deleted, whatever is asked (a provider's own root filesystem
// with MPI in it was deleted once), and nothing is left beside it.
func TestBuildImageKeepsForeign(t *testing.T) {
	dir := fakeImage(t, "")
	mine := filepath.Join(dir, "opt", "mine")
	os.MkdirAll(filepath.Dir(mine), 0o755)
	os.WriteFile(mine, []byte("keep me"), 0o644)
	before, _ := os.ReadDir(filepath.Dir(dir))
	for _, packages := range [][]string{nil, {}, {"openmpi-bin"}} {
		err := BuildImage(context.Background(), dir, BuildOptions{Packages: packages})
		if !errors.Is(err, ErrForeignImage) || !strings.Contains(err.Error(), "never rebuilds or deletes") {
			t.Fatalf("BuildImage(%v) over a foreign image: %v, want ErrForeignImage", packages, err)
		}
	}
	if b, err := os.ReadFile(mine); err != nil || string(b) != "keep me" {
		t.Fatalf("the provider's file: %q, %v", b, err)
	}
	after, _ := os.ReadDir(filepath.Dir(dir))
	if len(after) != len(before) {
		t.Fatalf("beside the image: %d entries before, %d after", len(before), len(after))
	}
	// And it is usable as it is.
	if err := CheckImage(dir); err != nil {
		t.Fatalf("CheckImage of a usable foreign root filesystem: %v", err)
	}
}

func TestCheckRootfs(t *testing.T) {
	for _, tt := range []struct {
		name, remove, want string
	}{
		{"no shell", "bin/sh", "/bin/sh"},
		{"no passwd", "etc/passwd", "/etc/passwd"},
		{"no tmp", "tmp", "/tmp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeImage(t, "")
			os.RemoveAll(filepath.Join(dir, tt.remove))
			if err := CheckImage(dir); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckImage = %v, want it to name %s", err, tt.want)
			}
		})
	}
}

func TestCheckPackages(t *testing.T) {
	for _, ok := range []string{"openmpi-bin", "python3-mpi4py", "libstdc++6", "g++", "iperf3", "libc6:amd64"} {
		if err := CheckPackages([]string{ok}); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "Openmpi", "x,y", "--include=evil", "a b", "pkg;rm", "../x"} {
		if err := CheckPackages([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStamp(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Stamp
	}{
		{"bookworm-2\n", Stamp{Version: "bookworm-2"}},
		{"bookworm-3\npackages: b,a\n", Stamp{Version: "bookworm-3", Packages: []string{"a", "b"}}},
		{"  bookworm-3  \n\npackages: , a ,\n", Stamp{Version: "bookworm-3", Packages: []string{"a"}}},
	} {
		got := parseStamp([]byte(tt.in))
		if got.Version != tt.want.Version || !slices.Equal(got.Packages, tt.want.Packages) {
			t.Errorf("parseStamp(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if again := parseStamp(got.encode()); again.Version != got.Version || !slices.Equal(again.Packages, got.Packages) {
			t.Errorf("round trip of %+v: %+v", got, again)
		}
	}
}

func FuzzParseStamp(f *testing.F) {
	f.Add([]byte("bookworm-3\npackages: openmpi-bin,python3-mpi4py\n"))
	f.Add([]byte(""))
	f.Add([]byte("\n\n\npackages:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := parseStamp(b)
		if strings.Contains(s.Version, "\n") {
			t.Fatalf("version %q spans lines", s.Version)
		}
		if !slices.IsSorted(s.Packages) {
			t.Fatalf("packages %v not sorted", s.Packages)
		}
	})
}
