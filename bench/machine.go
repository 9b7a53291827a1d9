package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Machine describes the host a calibration set was measured on.
type Machine struct {
	// CPUModel is /proc/cpuinfo's "model name" of the first CPU.
	CPUModel string `json:"cpu_model"`
	// Cores is the number of logical CPUs online.
	Cores int `json:"cores"`
	// MemoryBytes is /proc/meminfo's MemTotal.
	MemoryBytes int64 `json:"memory_bytes"`
	// Kernel is the host kernel's release (uname -r).
	Kernel string `json:"kernel"`
	// Arch is GOARCH, e.g. "amd64".
	Arch string `json:"arch"`
	// Platform is the sandboxes' runsc platform: systrap, ptrace or kvm.
	Platform string `json:"platform"`
	// Runsc identifies the runsc build: its version line, or the SHA-256
	// of the binary when it was built without a version.
	Runsc string `json:"runsc"`
	// Fingerprint is HardwareFingerprint of the fields above: a calibration
	// is valid for the machine as long as it stays the same.
	Fingerprint string `json:"fingerprint"`
}

// DescribeMachine describes this host, whose sandboxes run with runsc
// (path) on platform ("" means systrap, runsc's default).
func DescribeMachine(ctx context.Context, runsc, platform string) (Machine, error) {
	if platform == "" {
		platform = "systrap"
	}
	m := Machine{Cores: runtime.NumCPU(), Arch: runtime.GOARCH, Platform: platform}
	var err error
	if m.CPUModel, err = cpuModel("/proc/cpuinfo"); err != nil {
		return m, err
	}
	if m.MemoryBytes, err = memTotal("/proc/meminfo"); err != nil {
		return m, err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return m, fmt.Errorf("uname: %w", err)
	}
	m.Kernel = unix.ByteSliceToString(uts.Release[:])
	if m.Runsc, err = RunscIdentity(ctx, runsc); err != nil {
		return m, err
	}
	m.Fingerprint = m.HardwareFingerprint()
	return m, nil
}

// HardwareFingerprint is a short hash of what a calibration depends on: the
// CPU model and count, the memory (to 64 MiB), the kernel, the
// architecture, the runsc platform and build, and the suite's version. A
// change of any of them calls for a new calibration.
func (m Machine) HardwareFingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "zennet-hardware-v1\x00%s\x00%d\x00%d\x00%s\x00%s\x00%s\x00%s\x00%s",
		m.CPUModel, m.Cores, m.MemoryBytes>>26, m.Kernel, m.Arch, m.Platform, m.Runsc, SuiteVersion)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func cpuModel(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " "), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "unknown", nil
}

func memTotal(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: MemTotal: %w", path, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New(path + ": no MemTotal")
}

// RunscIdentity names the runsc build at path: "runsc version X" when it
// has a version, else "sha256:" and the first 16 hex digits of the binary's
// hash (a build from 'go install' reports VERSION_MISSING).
func RunscIdentity(ctx context.Context, path string) (string, error) {
	if path == "" {
		return "", errors.New("no runsc binary given")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("runsc --version: %w", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	line = strings.TrimSpace(line)
	if line != "" && !strings.Contains(line, "VERSION_MISSING") {
		return line, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash runsc: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// String describes the machine in one line.
func (m Machine) String() string {
	return fmt.Sprintf("%s, %d CPUs, %.1f GiB, Linux %s, runsc %s", m.CPUModel, m.Cores, float64(m.MemoryBytes)/(1<<30), m.Kernel, m.Platform)
}
