package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ImagePackages are installed into the root filesystem beyond Debian's
// minimal base: what renters need for scp, rsync and everyday shell work.
var ImagePackages = []string{"rsync", "procps", "ca-certificates", "iproute2", "less", "python3", "curl", "netbase"}

// ImageVersion names the image's recipe; change it with ImagePackages, and
// an image built from an older recipe is rebuilt.
const ImageVersion = "bookworm-2"

// imageStamp is where a built image records its recipe.
const imageStamp = "etc/zennet-image"

// BuildImage builds a minimal Debian bookworm root filesystem at dir with
// mmdebstrap. It builds into a sibling temporary directory and renames it
// into place, so an interrupted build never leaves a half image at dir.
func BuildImage(ctx context.Context, dir, mirror string) error {
	if err := CheckImage(dir); err == nil {
		return nil
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return fmt.Errorf("building the root filesystem needs mmdebstrap: apt-get install mmdebstrap (or run 'make image')")
	}
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp := dir + ".building"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "mmdebstrap", "--variant=minbase", "--quiet",
		"--include="+strings.Join(ImagePackages, ","), "bookworm", tmp, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("mmdebstrap: %w: %s", err, lastLine(string(out)))
	}
	if err := os.WriteFile(filepath.Join(tmp, imageStamp), []byte(ImageVersion+"\n"), 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
