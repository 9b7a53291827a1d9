package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/testenv"
)

// writeSets writes the test set signed, unsigned, tampered (signed, then a
// score changed) and truncated to dir, and returns their paths by name.
func writeSets(t *testing.T, dir string) map[string]string {
	t.Helper()
	signed := testSet(t)
	if err := signed.Sign(testenv.Signer(t)); err != nil {
		t.Fatal(err)
	}
	tampered := testSet(t)
	if err := tampered.Sign(testenv.Signer(t)); err != nil {
		t.Fatal(err)
	}
	tampered.Steps[0].Score *= 2
	files := map[string][]byte{
		"signed.json":    mustMarshal(t, signed),
		"unsigned.json":  mustMarshal(t, testSet(t)),
		"tampered.json":  mustMarshal(t, tampered),
		"truncated.json": mustMarshal(t, signed)[:100],
	}
	paths := map[string]string{"missing.json": filepath.Join(dir, "missing.json")}
	for name, b := range files {
		paths[name] = filepath.Join(dir, name)
		if err := os.WriteFile(paths[name], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

func TestCheckFile(t *testing.T) {
	paths := writeSets(t, t.TempDir())
	tests := []struct {
		name          string
		file          string
		allowUnsigned bool
		ok, signed    bool
		err           error  // errors.Is the check's Err, if not nil
		msg           string // in Error, if not ""
	}{
		{name: "signed", file: "signed.json", ok: true, signed: true},
		{name: "signed, unsigned allowed", file: "signed.json", allowUnsigned: true, ok: true, signed: true},
		{name: "unsigned", file: "unsigned.json", err: ErrUnsigned, msg: "not signed"},
		{name: "unsigned allowed", file: "unsigned.json", allowUnsigned: true, ok: true},
		{name: "tampered", file: "tampered.json", allowUnsigned: true, err: ErrBadSignature, msg: "changed after it was signed"},
		{name: "truncated", file: "truncated.json", allowUnsigned: true, err: ErrInvalidSet, msg: "truncated"},
		{name: "missing", file: "missing.json", err: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := paths[tt.file]
			c := CheckFile(path, tt.allowUnsigned)
			if c.File != path || c.OK != tt.ok || c.Signed != tt.signed {
				t.Fatalf("check %+v: want ok %v, signed %v", c, tt.ok, tt.signed)
			}
			if tt.ok != (c.Err == nil && c.Error == "") {
				t.Errorf("ok %v with Err %v, Error %q", c.OK, c.Err, c.Error)
			}
			if tt.err != nil && !errors.Is(c.Err, tt.err) {
				t.Errorf("Err %v, want %v", c.Err, tt.err)
			}
			if !strings.Contains(c.Error, tt.msg) || strings.HasPrefix(c.Error, path+": ") {
				t.Errorf("Error %q: want %q in it, without the file's name before it", c.Error, tt.msg)
			}
			if decoded := tt.file != "truncated.json" && tt.file != "missing.json"; decoded != (c.Set != nil) || decoded != (c.Steps == 2 && c.Digest != "") {
				t.Errorf("decoded %v, but Set %v, steps %d, digest %q", decoded, c.Set != nil, c.Steps, c.Digest)
			}
			if (tt.file == "signed.json" || tt.file == "tampered.json") != strings.HasPrefix(c.Signer, "SHA256:") {
				t.Errorf("signer %q", c.Signer)
			}
		})
	}
}

func TestCheckFilesAndImport(t *testing.T) {
	paths := writeSets(t, t.TempDir())
	store := filepath.Join(t.TempDir(), StoreDir)

	checks, failed := CheckFiles([]string{paths["signed.json"], paths["tampered.json"]}, false)
	if len(checks) != 2 || failed != 1 {
		t.Fatalf("%d checks, %d failed; want 2 and 1", len(checks), failed)
	}
	if err := Import(store, checks); err == nil {
		t.Fatal("Import of a failed check: no error")
	}
	if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed import stored something: %v", err)
	}

	// The same set twice, and an unsigned one allowed: two files.
	checks, failed = CheckFiles([]string{paths["signed.json"], paths["signed.json"], paths["unsigned.json"]}, true)
	if failed != 0 {
		t.Fatalf("%d failed: %+v", failed, checks)
	}
	if err := Import(store, checks); err != nil {
		t.Fatal(err)
	}
	if checks[0].StoredAs == "" || checks[0].StoredAs != checks[1].StoredAs || checks[2].StoredAs == checks[0].StoredAs {
		t.Errorf("stored as %q, %q, %q", checks[0].StoredAs, checks[1].StoredAs, checks[2].StoredAs)
	}
	sets, errs := LoadStore(store)
	if len(sets) != 2 || len(errs) != 0 {
		t.Errorf("store holds %d sets, errors %v; want 2", len(sets), errs)
	}
}

func TestSummary(t *testing.T) {
	s := testSet(t)
	sum, err := s.Summary("set.json")
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := s.Digest()
	if sum.File != "set.json" || sum.Digest != digest || sum.Signed || sum.Signer != "" || sum.Seed != 7 || sum.StepSeconds != 2.5 || sum.Machine != s.Machine {
		t.Errorf("unsigned summary %+v", sum)
	}
	if len(sum.Steps) != 2 || sum.Steps[1].Workload != "int" || sum.Steps[1].CPUs != s.Steps[1].Rates["cpu_ns"]/1e9 || sum.Steps[0].Params["block"] != "1024" {
		t.Errorf("steps %+v", sum.Steps)
	}
	signer := testenv.Signer(t)
	if err := s.Sign(signer); err != nil {
		t.Fatal(err)
	}
	if sum, err = s.Summary("set.json"); err != nil {
		t.Fatal(err)
	}
	if !sum.Signed || sum.Signer != ssh.FingerprintSHA256(signer.PublicKey()) {
		t.Errorf("signed summary %+v", sum)
	}
}
