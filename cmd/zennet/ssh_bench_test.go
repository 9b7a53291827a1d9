package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkSSHTransfer moves 200 MB each way over ssh to a zennet host and,
// in the same run and alternating with it, to OpenSSH's sshd on loopback
// (its own port, host key and user key: the no-zennet baseline), and
// reports each way's ratio of throughputs (zennet / sshd; goal >= 0.7x):
// upload (cat >/dev/null), download (head -c of /dev/zero, and dd of 1 MiB
// blocks, which the guest writes in fewer calls), and scp of a file.
// Needs openssh-server ('make bench' installs it).
func BenchmarkSSHTransfer(b *testing.B) {
	const size = 200_000_000
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		b.Fatal("no /usr/sbin/sshd: run 'make bench', which installs openssh-server")
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "200M")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	base := startSSHD(b, sshd, dir)

	m := newBenchMarket(b, dir)
	defer m.stop(b)
	addr := m.provide(b, "provider", "provide", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "p"),
		"--calibration", "off", "--rate", "cpu_ns=1/1000000", "--json")
	r, sshConfig := m.renter(b, "-n", "1", "-m", "1G", "--json", "--provider", addr)
	defer r.interrupt(time.Minute)
	zennet := []string{"-F", sshConfig, "zennet-1"}

	ways := []struct {
		name    string
		run     func(target []string) error
		comment string
	}{
		{"upload", func(t []string) error { return runSSH(m.env, t, "cat >/dev/null", file, "") }, "cat >/dev/null < 200 MB"},
		{"download-head", func(t []string) error {
			return runSSH(m.env, t, fmt.Sprintf("head -c %d /dev/zero", size), "", os.DevNull)
		}, "head -c 200000000 /dev/zero"},
		{"download-dd", func(t []string) error {
			return runSSH(m.env, t, "dd if=/dev/zero bs=1M count=191 2>/dev/null", "", os.DevNull)
		}, "dd bs=1M count=191"},
		{"scp", func(t []string) error {
			args := append([]string{"-q"}, t[:len(t)-1]...)
			args = append(args, file, t[len(t)-1]+":/tmp/200M")
			cmd := exec.Command("scp", args...)
			cmd.Env = m.env
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("scp: %v: %s", err, out)
			}
			return nil
		}, "scp of 200 MB"},
	}
	for b.Loop() {
		for _, w := range ways {
			// Two rounds each, alternating, and the better of each: the
			// machine's speed drifts over a run.
			best := map[string]time.Duration{}
			for range 2 {
				for _, t := range []struct {
					who    string
					target []string
				}{{"sshd", base}, {"zennet", zennet}} {
					start := time.Now()
					if err := w.run(t.target); err != nil {
						b.Fatalf("%s to %s: %v", w.name, t.who, err)
					}
					if d := time.Since(start); best[t.who] == 0 || d < best[t.who] {
						best[t.who] = d
					}
				}
			}
			ratio := best["sshd"].Seconds() / best["zennet"].Seconds()
			b.ReportMetric(ratio, w.name+"-ratio")
			b.Logf("%-13s (%s): sshd %.2fs, zennet %.2fs: %.2fx (goal >= 0.7x)", w.name, w.comment,
				best["sshd"].Seconds(), best["zennet"].Seconds(), ratio)
		}
	}
}

// runSSH runs command on target (ssh arguments, the host last) with
// stdin from in and stdout to out ("" for none).
func runSSH(env, target []string, command, in, out string) error {
	args := append(append([]string{"-T", "-o", "BatchMode=yes"}, target...), command)
	cmd := exec.Command("ssh", args...)
	cmd.Env = env
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	if out != "" {
		f, err := os.OpenFile(out, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// startSSHD starts OpenSSH's sshd on a free loopback port with a host key
// and a user key of its own, and returns the ssh arguments that reach it.
func startSSHD(b *testing.B, sshd, dir string) []string {
	for _, k := range []string{"host", "user"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			b.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile %s
Subsystem sftp internal-sftp
`, port, filepath.Join(dir, "host"), filepath.Join(dir, "user.pub"), filepath.Join(dir, "sshd.pid"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("sshd did not listen on %d: %s", port, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	clientCfg := filepath.Join(dir, "base_ssh_config")
	if err := os.WriteFile(clientCfg, []byte(fmt.Sprintf("Host base\n  HostName 127.0.0.1\n  Port %d\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
		port, filepath.Join(dir, "user"))), 0o600); err != nil {
		b.Fatal(err)
	}
	return []string{"-F", clientCfg, "base"}
}
