// Package atomicfile writes files so that a reader sees either the old
// content or the new, never a part: the data goes to a temporary file in
// the same directory, is synced, and is renamed over (or linked to) the
// path. It is the one way zennet writes a file that others read, and
// SetAside the one way it moves a damaged one out of the way.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// WriteFile replaces path with data, mode perm (the umask does not apply):
// a temporary file beside path, synced, then renamed over it. On error
// path is unchanged and no temporary file is left.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Create writes data to path, mode perm, only if path does not exist yet:
// a concurrent reader never sees a partial file, and of two concurrent
// creators one wins and the other gets an error wrapping fs.ErrExist.
func Create(path string, data []byte, perm fs.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	}
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			return &fs.PathError{Op: "create", Path: path, Err: le.Err}
		}
		return err
	}
	return nil
}

// writeTemp writes data to a new temporary file in path's directory, sets
// its mode, syncs and closes it, and returns its name.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return name, nil
}

// SetAside renames a damaged file out of the way, to
// PATH.damaged-TIMESTAMP, and returns the new name: the file is kept
// (what it still holds may be recovered by hand), never removed, and what
// reads path next finds nothing there.
func SetAside(path string, now time.Time) (string, error) {
	to := fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("set aside damaged %s: %w", filepath.Base(path), err)
	}
	return to, nil
}
