package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/zennet/zennet"

// The layers of docs/architecture.md. Adapters translate between the
// outside world and the rest; roles put the domain packages together for
// one party; the guest (agent) is the SSH server that runs inside a
// sandbox, a leaf that others may name paths from; everything else is
// domain.
var (
	adapters = []string{"cli", "sshgate", "p2p", "tui", "control"}
	roles    = []string{"renter", "provider", "taskrun"}
	// testSupport are imported by tests only: they start real parts
	// (providers, runtimes) for tests of any layer.
	testSupport = []string{"internal/testenv", "internal/benchenv", "internal/testprovider"}
)

func layer(pkg string) string {
	switch {
	case strings.HasPrefix(pkg, "cmd/"):
		return "main"
	case pkg == "agent":
		return "guest"
	case slices.Contains(adapters, pkg), strings.HasPrefix(pkg, "cli/"):
		return "adapter" // cli/cmdutil and cli's command packages too
	case slices.Contains(roles, pkg):
		return "role"
	case slices.Contains(testSupport, pkg):
		return "test"
	case strings.HasPrefix(pkg, "internal/"):
		return "internal"
	}
	return "domain"
}

// pkgFile is one non-test Go file of the module.
type pkgFile struct {
	pkg  string // relative to the module root: "renter", "internal/sshsig"
	path string
	file *ast.File
}

func moduleFiles(t *testing.T) []pkgFile {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var files []pkgFile
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		if f.Name.Name == "main" && !strings.Contains(path, string(filepath.Separator)+"cmd"+string(filepath.Separator)) {
			return nil // a go:build ignore'd generator, say
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		files = append(files, pkgFile{pkg: filepath.ToSlash(rel), path: path, file: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no Go files found under the module root")
	}
	return files
}

// TestImportRules checks the arrows that must never exist: a domain
// package importing an adapter or a role, a role importing the command
// line or the TUI, anything but cmd/zennet importing cli, anything outside
// the cli tree importing cli's subpackages.
func TestImportRules(t *testing.T) {
	forbidden := func(from, to string) string {
		lf, lt := layer(from), layer(to)
		switch {
		case to == "cli" && from != "cmd/zennet":
			return "only cmd/zennet imports cli"
		case strings.HasPrefix(to, "cli/") && from != "cli" && !strings.HasPrefix(from, "cli/"):
			return "cli's subpackages are the command line's own"
		case from == "internal/coalesce":
			return "internal/coalesce is the agent's too: it imports nothing of zennet"
		case lf == "guest" && to != "internal/coalesce":
			return "the agent runs inside sandboxes and imports nothing else of zennet (but internal/coalesce, standard library alone)"
		case (lf == "domain" || lf == "internal") && (lt == "adapter" || lt == "role"):
			return "a domain package never imports an adapter or a role"
		case lf == "role" && (to == "cli" || strings.HasPrefix(to, "cli/") || to == "tui"):
			return "a role never imports the command line or the TUI"
		case lt == "test" && lf != "test":
			return "test support is for tests only"
		}
		return ""
	}
	n := 0
	for _, f := range moduleFiles(t) {
		for _, imp := range f.file.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil || !strings.HasPrefix(p, module+"/") {
				continue
			}
			n++
			to := strings.TrimPrefix(p, module+"/")
			if why := forbidden(f.pkg, to); why != "" {
				t.Errorf("%s imports %s: %s", f.path, to, why)
			}
		}
	}
	if n == 0 {
		t.Fatal("no imports of the module's own packages seen")
	}
}

// TestLayers pins the layer of a few packages, so that a renamed layer
// list cannot leave the rules above checking nothing.
func TestLayers(t *testing.T) {
	for pkg, want := range map[string]string{
		"cli": "adapter", "cli/cmdutil": "adapter", "sshgate": "adapter", "renter": "role", "taskrun": "role",
		"meter": "domain", "agent": "guest", "pay": "domain", "internal/sshsig": "internal", "cmd/zennet": "main", "internal/testenv": "test",
	} {
		if got := layer(pkg); got != want {
			t.Errorf("layer(%q) = %q, want %q", pkg, got, want)
		}
	}
}

// TestNoTerminalOutput checks that domain packages and roles never write
// to stdout or stderr themselves: they return results and typed events,
// or log through a *slog.Logger they are given, and the adapters print.
func TestNoTerminalOutput(t *testing.T) {
	banned := map[string][]string{
		"os":   {"Stdout", "Stderr"},
		"fmt":  {"Print", "Printf", "Println"},
		"log":  {"Print", "Printf", "Println", "Fatal", "Fatalf", "Fatalln", "Panic", "Panicf", "Panicln", "Default"},
		"slog": {"Debug", "Info", "Warn", "Error", "Log", "DebugContext", "InfoContext", "WarnContext", "ErrorContext", "Default"},
	}
	fset := token.NewFileSet()
	for _, pf := range moduleFiles(t) {
		if l := layer(pf.pkg); l != "domain" && l != "role" && l != "internal" {
			continue
		}
		f, err := parser.ParseFile(fset, pf.path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && slices.Contains(banned[id.Name], n.Sel.Name) {
					t.Errorf("%s: %s.%s: domain packages and roles never write to the terminal", fset.Position(n.Pos()), id.Name, n.Sel.Name)
				}
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && (id.Name == "print" || id.Name == "println") && id.Obj == nil {
					t.Errorf("%s: %s: domain packages and roles never write to the terminal", fset.Position(n.Pos()), id.Name)
				}
			}
			return true
		})
	}
}
