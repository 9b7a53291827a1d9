package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zennet/zennet/internal/testenv"
)

func testRuntime(t *testing.T) *Runtime {
	t.Helper()
	runsc, image := testenv.Runtime(t)
	rt, err := New(Config{Runsc: runsc, Image: image, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("close runtime: %v", err)
		}
	})
	return rt
}

func TestLifecycle(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	id := "zn-00000000000000abc"
	err := rt.Create(ctx, Spec{ID: id, MemoryBytes: 192 << 20, CPUs: 0.5, Args: []string{"/bin/sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Destroy(context.Background(), id) })

	st, err := rt.State(ctx, id)
	if err != nil || st.Status != "running" {
		t.Fatalf("State = %+v, %v", st, err)
	}
	// runsc resolves ids by prefix; State must never answer for another id.
	if _, err := rt.State(ctx, id[:10]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("State(prefix) err = %v, want ErrNotFound", err)
	}
	out, err := rt.Command(ctx, id, "/bin/sh", "-c", "grep MemTotal /proc/meminfo; echo x > /root/w && cat /root/w; hostname").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MemTotal:         196608 kB", "\nx\n", id} {
		if !strings.Contains(string(out), want) {
			t.Errorf("exec output lacks %q:\n%s", want, out)
		}
	}
	// Writes go to the sandbox's overlay, never to the shared image.
	if _, err := os.Stat(filepath.Join(os.Getenv("ZENNET_IMAGE"), "root", "w")); !os.IsNotExist(err) {
		t.Fatalf("sandbox wrote into the shared image: %v", err)
	}
	// Paused, it runs nothing; resumed, it goes on.
	if err := rt.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st, _ := rt.State(ctx, id); st.Status != "paused" {
		t.Fatalf("after Pause, status %q", st.Status)
	}
	if err := rt.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if out, err := rt.Command(ctx, id, "/bin/echo", "resumed").Output(); err != nil || string(out) != "resumed\n" {
		t.Fatalf("after Resume: %q, %v", out, err)
	}
	sts, err := rt.List(ctx)
	if err != nil || len(sts) != 1 || sts[0].ID != id {
		t.Fatalf("List = %+v, %v", sts, err)
	}
	if err := rt.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.State(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Destroy, State err = %v", err)
	}
	if b, _ := rt.Bundles(); len(b) != 0 {
		t.Fatalf("bundles left: %v", b)
	}
	if err := rt.Destroy(ctx, id); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	id := "zn-00000000000000bad"
	err := rt.Create(ctx, Spec{ID: id, MemoryBytes: 128 << 20, Args: []string{"/bin/true"},
		Mounts: []Mount{{Source: "/nonexistent/zennet", Destination: "/x", ReadOnly: true}}})
	if err == nil {
		t.Fatal("Create with a missing bind source succeeded")
	}
	if !strings.Contains(err.Error(), "runsc") {
		t.Errorf("error does not say what failed: %v", err)
	}
	if b, _ := rt.Bundles(); len(b) != 0 {
		t.Fatalf("bundles left: %v", b)
	}
	if sts, _ := rt.List(ctx); len(sts) != 0 {
		t.Fatalf("sandboxes left: %+v", sts)
	}
}

func TestBadConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no runsc", Config{}, "no runsc"},
		{"runsc missing", Config{Runsc: "/nonexistent/runsc"}, "make runsc"},
		{"image missing", Config{Runsc: "/bin/true", Image: t.TempDir()}, "make image"},
		{"stale image", Config{Runsc: "/bin/true", Image: fakeImage(t, "bookworm-1")}, "rebuild it with 'make image'"},
		{"relative state", Config{Runsc: "/bin/true", Image: fakeImage(t, ImageVersion)}, "absolute"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New err = %v, want %q", err, tt.want)
			}
		})
	}
}

// fakeImage makes a directory that passes for an image of recipe version.
func fakeImage(t *testing.T, version string) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o1777)
	os.WriteFile(filepath.Join(dir, "bin", "sh"), nil, 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	if version != "" {
		os.WriteFile(filepath.Join(dir, imageStamp), []byte(version+"\n"), 0o644)
	}
	return dir
}
