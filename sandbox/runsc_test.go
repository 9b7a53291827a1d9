package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindRunsc(t *testing.T) {
	withCache := t.TempDir()
	cached := filepath.Join(withCache, "bin", "runsc")
	onPath := filepath.Join(t.TempDir(), "runsc")
	for _, p := range []string{cached, onPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	emptyCache, emptyPath := t.TempDir(), t.TempDir()
	for _, tc := range []struct {
		name, path, cache, pathEnv string
		want, err                  string
	}{
		{"given", "/opt/runsc", withCache, filepath.Dir(onPath), "/opt/runsc", ""},
		{"cached before PATH", "", withCache, filepath.Dir(onPath), cached, ""},
		{"PATH", "", emptyCache, filepath.Dir(onPath), onPath, ""},
		{"none", "", emptyCache, emptyPath, "", "no runsc found: run 'make runsc' (builds the pinned gVisor into " + filepath.Join(emptyCache, "bin", "runsc") + ") or pass --runsc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.pathEnv)
			got, err := FindRunsc(tc.path, tc.cache)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("FindRunsc = %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("FindRunsc = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
