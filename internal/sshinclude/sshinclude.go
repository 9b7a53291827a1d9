// Package sshinclude adds one Include line to a user's OpenSSH client
// config (~/.ssh/config) and takes it away again, touching nothing else:
// every other line, the file's mode, a symbolic link to it.
package sshinclude

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zennet/zennet/internal/atomicfile"
)

// Line is the Include line for target, quoted when the path needs it.
func Line(target string) string {
	if strings.ContainsAny(target, " \t\"'") {
		return "Include " + strconv.Quote(target)
	}
	return "Include " + target
}

// isInclude reports whether line is an Include of target alone, in any
// of the forms ssh reads: any case, "Include=PATH", quoted or not.
func isInclude(line, target string) bool {
	s := strings.TrimSpace(line)
	if len(s) < len("include")+1 || !strings.EqualFold(s[:len("include")], "include") {
		return false
	}
	rest := s[len("include"):]
	if rest[0] != ' ' && rest[0] != '\t' && rest[0] != '=' {
		return false
	}
	rest = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), "="))
	if u, err := strconv.Unquote(rest); err == nil {
		rest = u
	}
	return rest == target
}

// resolve follows path's symbolic links (a config kept in a dotfiles
// repository stays a link), and returns the file to write and its mode;
// exists is false when there is none yet.
func resolve(path string) (real string, mode fs.FileMode, exists bool, err error) {
	real, err = filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(path); lerr == nil {
			return "", 0, false, fmt.Errorf("%s is a symbolic link to a file that does not exist: create it, or remove the link", path)
		}
		return path, 0o600, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	info, err := os.Stat(real)
	if err != nil {
		return "", 0, false, err
	}
	if !info.Mode().IsRegular() {
		return "", 0, false, fmt.Errorf("%s is not a regular file", path)
	}
	return real, info.Mode().Perm(), true, nil
}

// Installed reports whether the config at path includes target.
func Installed(path, target string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if isInclude(l, target) {
			return true, nil
		}
	}
	return false, nil
}

// Install puts Line(target) first in the config at path, where ssh reads
// it for every host (an Include below a Host or Match line would apply to
// that block's hosts only). It changes nothing when the config includes
// target already, wherever; a config that does not exist is created, mode
// 0600, in a directory created mode 0700. It reports whether it added the
// line.
func Install(path, target string) (bool, error) {
	real, mode, exists, err := resolve(path)
	if err != nil {
		return false, err
	}
	var old []byte
	if exists {
		if old, err = os.ReadFile(real); err != nil {
			return false, err
		}
		for _, l := range strings.Split(string(old), "\n") {
			if isInclude(l, target) {
				return false, nil
			}
		}
	} else if err := os.MkdirAll(filepath.Dir(real), 0o700); err != nil {
		return false, err
	}
	data := append([]byte(Line(target)+"\n"), old...)
	return true, atomicfile.WriteFile(real, data, mode)
}

// Uninstall removes every Include of target from the config at path,
// leaving its other lines as they were. It reports whether it removed
// any; a config that does not exist is left so.
func Uninstall(path, target string) (bool, error) {
	real, mode, exists, err := resolve(path)
	if err != nil || !exists {
		return false, err
	}
	old, err := os.ReadFile(real)
	if err != nil {
		return false, err
	}
	var out [][]byte
	removed := false
	for _, l := range bytes.SplitAfter(old, []byte("\n")) {
		if isInclude(string(l), target) {
			removed = true
			continue
		}
		out = append(out, l)
	}
	if !removed {
		return false, nil
	}
	return true, atomicfile.WriteFile(real, bytes.Join(out, nil), mode)
}
