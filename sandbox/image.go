package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ImagePackages are installed into the root filesystem beyond Debian's
// minimal base: what renters need for scp, rsync, ssh between their hosts
// and everyday shell work.
var ImagePackages = []string{"rsync", "procps", "ca-certificates", "iproute2", "less", "python3", "curl", "netbase", "openssh-client"}

// ImageVersion names the image's recipe; change it with ImagePackages, and
// an image built from an older recipe is rebuilt.
const ImageVersion = "bookworm-3"

// imageStamp is where an image zennet built records its recipe: the
// version on the first line, then "packages: a,b" when it was built with
// extra packages. An image without it is the provider's own: zennet uses
// it as it is and never rebuilds or deletes it.
const imageStamp = "etc/zennet-image"

// ImageState is what zennet knows of a root filesystem directory.
type ImageState int

const (
	// ImageMissing: nothing at the path.
	ImageMissing ImageState = iota
	// ImageCurrent: built by zennet from this recipe, with the packages
	// asked for.
	ImageCurrent
	// ImageStale: built by zennet from another recipe or with other
	// packages; zennet may rebuild it.
	ImageStale
	// ImageForeign: not built by zennet (no stamp): used as it is, never
	// rebuilt or deleted.
	ImageForeign
)

func (s ImageState) String() string {
	switch s {
	case ImageMissing:
		return "missing"
	case ImageCurrent:
		return "current"
	case ImageStale:
		return "stale"
	case ImageForeign:
		return "foreign"
	}
	return fmt.Sprintf("ImageState(%d)", int(s))
}

// ErrForeignImage is returned when zennet is asked to build over a
// directory it did not build.
var ErrForeignImage = errors.New("not an image zennet built")

// Stamp is what an image zennet built records.
type Stamp struct {
	Version string
	// Packages are the extra packages asked for, sorted; nil for none.
	Packages []string
}

// ReadStamp reads dir's stamp; ok is false when it has none (a foreign
// image, or nothing at dir).
func ReadStamp(dir string) (s Stamp, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, imageStamp))
	if errors.Is(err, fs.ErrNotExist) {
		return Stamp{}, false, nil
	}
	if err != nil {
		return Stamp{}, false, err
	}
	return parseStamp(b), true, nil
}

// parseStamp reads a stamp file's bytes.
func parseStamp(b []byte) (s Stamp) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	s.Version = strings.TrimSpace(lines[0])
	for _, l := range lines[1:] {
		if v, found := strings.CutPrefix(strings.TrimSpace(l), "packages:"); found {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					s.Packages = append(s.Packages, p)
				}
			}
		}
	}
	slices.Sort(s.Packages)
	return s
}

func (s Stamp) encode() []byte {
	out := s.Version + "\n"
	if len(s.Packages) > 0 {
		out += "packages: " + strings.Join(s.Packages, ",") + "\n"
	}
	return []byte(out)
}

// InspectImage says what dir is, against an image of this recipe with the
// extra packages given (nil: any the image was built with, so that a
// provider's rebuild keeps them).
func InspectImage(dir string, packages []string) (ImageState, Stamp, error) {
	if dir == "" {
		return ImageMissing, Stamp{}, errors.New("no root filesystem image configured; run 'make image' or pass --image")
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return ImageMissing, Stamp{}, nil
	}
	if err != nil {
		return ImageMissing, Stamp{}, err
	}
	if !fi.IsDir() {
		return ImageForeign, Stamp{}, fmt.Errorf("root filesystem image %s is not a directory", dir)
	}
	s, ok, err := ReadStamp(dir)
	if err != nil {
		return ImageForeign, Stamp{}, err
	}
	if !ok {
		if empty, _ := isEmptyDir(dir); empty {
			return ImageMissing, Stamp{}, nil // nothing in it to keep
		}
		return ImageForeign, Stamp{}, nil
	}
	if s.Version != ImageVersion || (packages != nil && !slices.Equal(s.Packages, normalizePackages(packages))) {
		return ImageStale, s, nil
	}
	return ImageCurrent, s, nil
}

// CheckRootfs checks what every sandbox needs of a root filesystem, zennet's
// or the provider's own: a directory with /bin/sh (a sandbox's first
// process and every shell), /etc/passwd and /tmp.
func CheckRootfs(dir string) error {
	sh := filepath.Join(dir, "bin", "sh")
	if fi, err := os.Stat(sh); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("root filesystem image %s has no executable /bin/sh: a sandbox starts with it; build an image with 'zennet image build' or use a Debian-like root filesystem", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc", "passwd")); err != nil {
		return fmt.Errorf("root filesystem image %s has no /etc/passwd: shells need it; build an image with 'zennet image build' or use a Debian-like root filesystem", dir)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || !fi.IsDir() {
		return fmt.Errorf("root filesystem image %s has no /tmp directory; create it (mkdir -m 1777 %s/tmp) or build an image with 'zennet image build'", dir, dir)
	}
	return nil
}

// CheckImage reports whether dir is a usable root filesystem: zennet's of
// the current recipe, or the provider's own (no stamp) with what a sandbox
// needs.
func CheckImage(dir string) error {
	state, s, err := InspectImage(dir, nil)
	if err != nil {
		return err
	}
	switch state {
	case ImageMissing:
		return fmt.Errorf("no root filesystem image at %s; build it with 'make image' (or 'zennet image build') or pass --image", dir)
	case ImageStale:
		return fmt.Errorf("root filesystem image %s is from recipe %q, not %q; rebuild it with 'make image' (or 'zennet image build')", dir, s.Version, ImageVersion)
	}
	return CheckRootfs(dir)
}

// packageName is a Debian package name (Debian policy 5.6.1), optionally
// with an architecture qualifier.
var packageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$`)

// CheckPackages checks extra package names for BuildImage.
func CheckPackages(packages []string) error {
	for _, p := range packages {
		if !packageName.MatchString(p) {
			return fmt.Errorf("%q is not a Debian package name (lowercase letters, digits, + - .)", p)
		}
	}
	return nil
}

func normalizePackages(packages []string) []string {
	out := []string{} // not nil: "no extra packages" is asked for
	for _, p := range packages {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// BuildOptions are BuildImage's.
type BuildOptions struct {
	// Mirror is the Debian mirror; "" is deb.debian.org.
	Mirror string
	// Packages are installed beyond ImagePackages. Nil keeps those of the
	// image being rebuilt (none for a new one).
	Packages []string
}

// BuildImage builds a minimal Debian bookworm root filesystem at dir with
// mmdebstrap, unless one of this recipe and these packages is there. It
// never deletes what zennet did not build: a directory without zennet's
// stamp is refused with ErrForeignImage. It builds into a new sibling
// directory and renames it into place, so an interrupted build never
// leaves a half image at dir.
func BuildImage(ctx context.Context, dir string, opts BuildOptions) error {
	if err := CheckPackages(opts.Packages); err != nil {
		return err
	}
	state, old, err := InspectImage(dir, opts.Packages)
	if err != nil {
		return err
	}
	switch state {
	case ImageCurrent:
		return nil
	case ImageForeign:
		return fmt.Errorf("%s: %w (it has no %s): zennet uses it as it is and never rebuilds or deletes it; build into another directory with --image", dir, ErrForeignImage, "/"+imageStamp)
	}
	packages := opts.Packages
	if packages == nil {
		packages = old.Packages
	}
	stamp := Stamp{Version: ImageVersion, Packages: normalizePackages(packages)}
	if len(stamp.Packages) == 0 {
		stamp.Packages = nil
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return fmt.Errorf("building the root filesystem needs mmdebstrap: apt-get install mmdebstrap (or run 'make image')")
	}
	mirror := opts.Mirror
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	// A directory of its own, so that nothing already there is touched.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".building-")
	if err != nil {
		return err
	}
	include := append(slices.Clone(ImagePackages), stamp.Packages...)
	cmd := exec.CommandContext(ctx, "mmdebstrap", "--variant=minbase", "--quiet",
		"--include="+strings.Join(include, ","), "bookworm", tmp, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("mmdebstrap: %w: %s", err, lastLine(string(out)))
	}
	if err := os.WriteFile(filepath.Join(tmp, imageStamp), stamp.encode(), 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if state == ImageStale {
		// Ours (stamped), from another recipe: replaced. Look again just
		// before, in case someone put their own there meanwhile.
		if st, _, err := InspectImage(dir, nil); err != nil || st == ImageForeign {
			os.RemoveAll(tmp)
			return fmt.Errorf("%s changed while the image was built; nothing replaced", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && err != nil, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
