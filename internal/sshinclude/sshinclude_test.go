package sshinclude

import (
	"os"
	"path/filepath"
	"testing"
)

const target = "/home/u/.config/zennet/ssh_config"

func TestInstallUninstall(t *testing.T) {
	for _, tc := range []struct {
		name, before, installed string
	}{
		{"new file", "", "Include " + target + "\n"},
		{"above every Host block", "Host a\n  Port 2\n# mine\n", "Include " + target + "\nHost a\n  Port 2\n# mine\n"},
		{"no newline at the end", "Host a\n  User me", "Include " + target + "\nHost a\n  User me"},
		{"CRLF lines", "Host a\r\n  User me\r\n", "Include " + target + "\nHost a\r\n  User me\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), ".ssh", "config")
			if tc.before != "" {
				os.MkdirAll(filepath.Dir(path), 0o700)
				if err := os.WriteFile(path, []byte(tc.before), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			for i, want := range []bool{true, false} { // the second is a no-op
				added, err := Install(path, target)
				if err != nil || added != want {
					t.Fatalf("install %d: added %v, %v; want %v", i+1, added, err, want)
				}
				if b, _ := os.ReadFile(path); string(b) != tc.installed {
					t.Fatalf("install %d: file is %q, want %q", i+1, b, tc.installed)
				}
			}
			info, _ := os.Stat(path)
			if want := map[bool]os.FileMode{true: 0o600, false: 0o640}[tc.before == ""]; info.Mode().Perm() != want {
				t.Errorf("mode %v, want %v", info.Mode().Perm(), want)
			}
			if ok, err := Installed(path, target); !ok || err != nil {
				t.Errorf("Installed: %v, %v", ok, err)
			}
			for i, want := range []bool{true, false} {
				removed, err := Uninstall(path, target)
				if err != nil || removed != want {
					t.Fatalf("uninstall %d: removed %v, %v; want %v", i+1, removed, err, want)
				}
				if b, _ := os.ReadFile(path); string(b) != tc.before {
					t.Fatalf("uninstall %d: file is %q, want it as it was, %q", i+1, b, tc.before)
				}
			}
		})
	}
}

// An Include of the target the user wrote (any case, '=', quoted, moved
// below) counts as installed; Uninstall removes it and nothing else,
// not an Include of another file nor one of several paths.
func TestForms(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	before := "Host *\n  ServerAliveInterval 30\n\n  include=\"" + target + "\"\nInclude " + target + " /other\nInclude /other\n"
	if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	if added, err := Install(path, target); added || err != nil {
		t.Fatalf("install over the user's own include: added %v, %v", added, err)
	}
	if removed, err := Uninstall(path, target); !removed || err != nil {
		t.Fatalf("uninstall: %v, %v", removed, err)
	}
	want := "Host *\n  ServerAliveInterval 30\n\nInclude " + target + " /other\nInclude /other\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
}

// A config that is a symbolic link (a dotfiles repository's) stays one:
// the file it points to is changed.
func TestSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "dotfiles-ssh-config")
	if err := os.WriteFile(real, []byte("Host a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "config")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(link, "/p q/ssh_config"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the link was replaced by a file")
	}
	if b, _ := os.ReadFile(real); string(b) != "Include \"/p q/ssh_config\"\nHost a\n" {
		t.Fatalf("got %q", b)
	}
	// A dangling link is an error, not a file created in its place.
	os.Remove(real)
	if _, err := Install(link, target); err == nil {
		t.Fatal("install through a dangling link: no error")
	}
}
