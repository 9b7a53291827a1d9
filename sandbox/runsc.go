package sandbox

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
)

// FindRunsc returns the runsc to use: path if set, the pinned build in
// cacheDir ('make runsc' puts it in cacheDir/bin), then PATH's.
func FindRunsc(path, cacheDir string) (string, error) {
	if path != "" {
		return path, nil
	}
	cached := filepath.Join(cacheDir, "bin", "runsc")
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	if p, err := exec.LookPath("runsc"); err == nil {
		return p, nil
	}
	return "", errors.New("no runsc found: run 'make runsc' (builds the pinned gVisor into " + cached + ") or pass --runsc")
}
