// Package agent is the SSH server inside every sandbox: the provider starts
// it once per connection (runsc exec) on the connection's stdin and stdout.
// It is built into its own small binary, cmd/zennet-agent (and into zennet
// as 'zennet agent serve'): each SSH session pays its start-up and memory
// inside the renter's sandbox, so it imports nothing more than it needs.
package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/gliderlabs/ssh"
	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/internal/coalesce"
)

// Paths inside every sandbox, bound read-only by the provider.
const (
	Dir = "/.zennet"
	// Binary is the full zennet binary ('zennet agent serve', 'zennet
	// agent bench'); ServeBinary the small one that only serves SSH.
	Binary      = Dir + "/bin/zennet"
	ServeBinary = Dir + "/bin/zennet-agent"
	// ConfigDir holds the lease's host key and the renter's key.
	ConfigDir       = Dir + "/etc"
	agentHostKey    = "host_key"
	agentAuthorized = "authorized_keys"
)

// Config is what the in-sandbox SSH server needs.
type Config struct {
	HostKey    gossh.Signer
	Authorized []gossh.PublicKey
	Log        *slog.Logger
}

// LoadConfig reads the host key and authorized keys the provider wrote for
// this lease.
func LoadConfig(dir string) (Config, error) {
	var cfg Config
	b, err := os.ReadFile(dir + "/" + agentHostKey)
	if err != nil {
		return cfg, fmt.Errorf("read host key: %w", err)
	}
	if cfg.HostKey, err = gossh.ParsePrivateKey(b); err != nil {
		return cfg, fmt.Errorf("parse host key: %w", err)
	}
	b, err = os.ReadFile(dir + "/" + agentAuthorized)
	if err != nil {
		return cfg, fmt.Errorf("read authorized keys: %w", err)
	}
	for len(strings.TrimSpace(string(b))) > 0 {
		k, _, _, rest, err := gossh.ParseAuthorizedKey(b)
		if err != nil {
			return cfg, fmt.Errorf("parse authorized keys: %w", err)
		}
		cfg.Authorized = append(cfg.Authorized, k)
		b = rest
	}
	if len(cfg.Authorized) == 0 {
		return cfg, errors.New("no authorized keys")
	}
	return cfg, nil
}

// Serve serves one SSH connection on rw inside a sandbox: shell and exec
// sessions (with a PTY when asked), the sftp subsystem and local port
// forwarding to the sandbox's own addresses. It returns when the connection
// ends.
func Serve(cfg Config, rw io.ReadWriteCloser) {
	// Every system call in the sandbox is dear (the sentry serves it):
	// reads are buffered and a busy stream's packets share writes.
	newServer(cfg).HandleConn(coalesce.New(&stdioConn{rw: rw}))
}

// ListenAndServe serves SSH on addr inside a sandbox, as Serve does for
// each connection, until the listener fails: the resident agent, which the
// provider reaches on the sandbox's own network for every renter
// connection, and the session's hosts on their cluster addresses
// (ssh zennet-2).
func ListenAndServe(cfg Config, addr string) error {
	if err := os.WriteFile(ipForward, []byte("1\n"), 0); err != nil && cfg.Log != nil {
		cfg.Log.Warn("cluster: a socket bound to this host's address may not connect", "err", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer l.Close()
	return newServer(cfg).Serve(l)
}

// ipForward turns on IPv4 forwarding in the sandbox's kernel (gVisor's
// netstack), which a cluster host needs for a socket bound to its own
// cluster address to connect. Once anything in the host has connected to
// that address, netstack keeps a temporary copy of it on lo (the loopback
// route such a connection takes), and a later bind to the address may pick
// lo instead of eth1; without forwarding, netstack then finds no route from
// lo to the session's subnet and connect fails with "Network is
// unreachable" (Open MPI's TCP transport binds before every connect). With
// forwarding on, it routes a locally made packet from the address out of
// eth1, as Linux does. The host forwards nothing it could not send itself:
// eth0 is the user-mode network with its egress policy, eth1 the session's.
const ipForward = "/proc/sys/net/ipv4/ip_forward"

func newServer(cfg Config) *ssh.Server {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &ssh.Server{
		ConnCallback: func(_ ssh.Context, c net.Conn) net.Conn { return coalesce.New(c) },
		ServerConfigCallback: func(ssh.Context) *gossh.ServerConfig {
			return &gossh.ServerConfig{Config: gossh.Config{Rand: sshRand}}
		},
		Handler: func(s ssh.Session) { agentSession(s, log) },
		PublicKeyHandler: func(ctx ssh.Context, key ssh.PublicKey) bool {
			for _, k := range cfg.Authorized {
				if ssh.KeysEqual(k, key) {
					return true
				}
			}
			return false
		},
		SubsystemHandlers: map[string]ssh.SubsystemHandler{"sftp": agentSFTP},
		LocalPortForwardingCallback: func(ctx ssh.Context, host string, port uint32) bool {
			return true // the sandbox's own network is all it can reach
		},
		ChannelHandlers: map[string]ssh.ChannelHandler{
			"session":      ssh.DefaultSessionHandler,
			"direct-tcpip": ssh.DirectTCPIPHandler,
		},
		IdleTimeout: 0,
	}
	srv.AddHostKey(cfg.HostKey)
	return srv
}

func agentSFTP(s ssh.Session) {
	srv, err := sftp.NewServer(s, sftp.WithServerWorkingDirectory("/root"))
	if err != nil {
		fmt.Fprintf(s.Stderr(), "sftp: %v\n", err)
		s.Exit(1)
		return
	}
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		s.Exit(1)
		return
	}
	s.Exit(0)
}

func loginShell() string {
	f, err := os.Open("/etc/passwd")
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) == 7 && fields[2] == "0" && fields[6] != "" {
				return fields[6]
			}
		}
	}
	return "/bin/sh"
}

func agentSession(s ssh.Session, log *slog.Logger) {
	shell := loginShell()
	var cmd *exec.Cmd
	if raw := s.RawCommand(); raw != "" {
		cmd = exec.Command(shell, "-c", raw)
	} else {
		cmd = exec.Command(shell, "-l")
		cmd.Args[0] = "-" + shell[strings.LastIndexByte(shell, '/')+1:]
		cmd.Args = cmd.Args[:1]
	}
	cmd.Dir = "/root"
	if _, err := os.Stat(cmd.Dir); err != nil {
		cmd.Dir = "/"
	}
	cmd.Env = append([]string{
		"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=" + shell,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}, s.Environ()...)
	cmd.WaitDelay = time.Second

	ptyReq, winCh, isPty := s.Pty()
	var code int
	if isPty {
		cmd.Env = append(cmd.Env, "TERM="+ptyReq.Term)
		code = runPTY(s, cmd, ptyReq, winCh)
	} else {
		code = runPipes(s, cmd)
	}
	log.Debug("session ended", "cmd", s.RawCommand(), "code", code)
	s.Exit(code)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	// The command exited, but a process it left holds its stderr past
	// WaitDelay: its own status still counts.
	if errors.Is(err, exec.ErrWaitDelay) {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 127
}

func forwardSignals(s ssh.Session, p *os.Process) func() {
	ch := make(chan ssh.Signal, 4)
	s.Signals(ch)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-ch:
				if n, ok := signals[sig]; ok {
					p.Signal(n)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { s.Signals(nil); close(done) }
}

var signals = map[ssh.Signal]syscall.Signal{
	ssh.SIGABRT: syscall.SIGABRT, ssh.SIGALRM: syscall.SIGALRM, ssh.SIGFPE: syscall.SIGFPE,
	ssh.SIGHUP: syscall.SIGHUP, ssh.SIGILL: syscall.SIGILL, ssh.SIGINT: syscall.SIGINT,
	ssh.SIGKILL: syscall.SIGKILL, ssh.SIGPIPE: syscall.SIGPIPE, ssh.SIGQUIT: syscall.SIGQUIT,
	ssh.SIGSEGV: syscall.SIGSEGV, ssh.SIGTERM: syscall.SIGTERM, ssh.SIGUSR1: syscall.SIGUSR1,
	ssh.SIGUSR2: syscall.SIGUSR2,
}

func runPipes(s ssh.Session, cmd *exec.Cmd) int {
	inR, inW, err := stdinPipe()
	if err != nil {
		fmt.Fprintf(s.Stderr(), "zennet: %v\n", err)
		return 127
	}
	out, err := newOutPipe()
	if err != nil {
		inR.Close()
		inW.Close()
		fmt.Fprintf(s.Stderr(), "zennet: %v\n", err)
		return 127
	}
	cmd.Stdin, cmd.Stdout = inR, out.W
	cmd.Stderr = s.Stderr()
	// A session of its own, as sshd gives every session: what the command
	// signals as its process group (Open MPI's daemons kill theirs) is its
	// own, never the agent's or the sandbox's first process's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = startChild(cmd, cmd.Start)
	inR.Close()
	out.W.Close()
	stopOut := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		out.copyTo(s, stopOut)
		close(copied)
	}()
	if err != nil {
		inW.Close()
		close(stopOut)
		<-copied
		fmt.Fprintf(s.Stderr(), "zennet: %v\n", err)
		return 127
	}
	stop := forwardSignals(s, cmd.Process)
	defer stop()
	// Not waited for: a client that never closes its stdin must not keep
	// the session open after the command exits.
	go func() {
		io.CopyBuffer(inW, s, make([]byte, copyBuffer))
		inW.Close()
	}()
	err = waitChild(cmd)
	// All the command's output goes before its exit status; but a process
	// it left behind that holds stdout open keeps the session no longer
	// than cmd.WaitDelay, as os/exec does.
	select {
	case <-copied:
	case <-time.After(cmd.WaitDelay):
		close(stopOut) // a copy blocked on a client that reads nothing is left to the session's end
	}
	return exitCode(err)
}

func runPTY(s ssh.Session, cmd *exec.Cmd, req ssh.Pty, winCh <-chan ssh.Window) int {
	var f *os.File
	err := startChild(cmd, func() (err error) {
		f, err = pty.StartWithSize(cmd, &pty.Winsize{Rows: uint16(req.Window.Height), Cols: uint16(req.Window.Width)})
		return err
	})
	if err != nil {
		fmt.Fprintf(s.Stderr(), "zennet: start pty: %v\n", err)
		return 127
	}
	defer f.Close()
	stop := forwardSignals(s, cmd.Process)
	defer stop()
	go func() {
		for w := range winCh {
			pty.Setsize(f, &pty.Winsize{Rows: uint16(w.Height), Cols: uint16(w.Width)})
		}
	}()
	go io.Copy(f, s)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(s, f) // ends with EIO once the shell and its children close the pty
	}()
	err = waitChild(cmd)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return exitCode(err)
}

// stdioConn is a net.Conn over the agent's stdin and stdout.
type stdioConn struct{ rw io.ReadWriteCloser }

func (c *stdioConn) Read(p []byte) (int, error)         { return c.rw.Read(p) }
func (c *stdioConn) Write(p []byte) (int, error)        { return c.rw.Write(p) }
func (c *stdioConn) Close() error                       { return c.rw.Close() }
func (c *stdioConn) LocalAddr() net.Addr                { return stdioAddr{} }
func (c *stdioConn) RemoteAddr() net.Addr               { return stdioAddr{} }
func (c *stdioConn) SetDeadline(t time.Time) error      { return nil }
func (c *stdioConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *stdioConn) SetWriteDeadline(t time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "stdio" }
func (stdioAddr) String() string  { return "stdio" }

// Stdio joins os.Stdin and os.Stdout into one stream for Serve.
type Stdio struct{}

func (Stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (Stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (Stdio) Close() error {
	os.Stdin.Close()
	return os.Stdout.Close()
}
