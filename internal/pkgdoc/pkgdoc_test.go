package pkgdoc

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEveryPackageHasADocComment walks the module and fails for each
// package (its non-test Go files in one directory) none of whose files
// has a package doc comment.
func TestEveryPackageHasADocComment(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	missing, err := undocumented(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range missing {
		t.Errorf("package %s has no package doc comment (// Package NAME ... above 'package NAME' in one file, e.g. doc.go)", dir)
	}
}

// undocumented returns the directories, relative to root, whose package
// has no doc comment.
func undocumented(root string) ([]string, error) {
	var missing []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
			return filepath.SkipDir
		}
		if path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		documented, hasGo, err := packageDoc(path)
		if err != nil {
			return err
		}
		if hasGo && !documented {
			rel, _ := filepath.Rel(root, path)
			missing = append(missing, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(missing)
	return missing, err
}

// packageDoc reports whether the package in dir has a doc comment, and
// whether dir holds a non-test Go file at all.
func packageDoc(dir string) (documented, hasGo bool, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, false, err
	}
	fset := token.NewFileSet()
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		hasGo = true
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return false, true, err
		}
		if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
			return true, true, nil
		}
	}
	return false, hasGo, nil
}

// TestUndocumentedFindsAMissingDoc: the walk notices a package without a
// doc comment and accepts one with it.
func TestUndocumentedFindsAMissingDoc(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":          "module example.com/m\n",
		"good/good.go":    "// Package good is documented.\npackage good\n",
		"good/other.go":   "package good\n",
		"bad/bad.go":      "// A comment not attached to the clause.\n\npackage bad\n",
		"bad/x_test.go":   "// Package bad is documented only in a test.\npackage bad\n",
		"testdata/t.go":   "package t\n",
		"empty/README":    "no go here\n",
		"cmd/tool/m.go":   "package main\n",
		"cmd/tool/doc.go": "// Command tool does things.\npackage main\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := undocumented(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bad"}; !slices.Equal(got, want) {
		t.Fatalf("undocumented = %v, want %v", got, want)
	}
}
