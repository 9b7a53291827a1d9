package sshgate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/billing"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
)

// leaseClient rents one host and returns an SSH client logged into its
// sandbox through a local forwarder, as the renter's ssh would be. The
// renter pays nothing: the provider's grace outlasts the test.
func leaseClient(t *testing.T) *gossh.Client {
	t.Helper()
	addr := startBilledProvider(t, lease.Capacity{Leases: 4, Memory: 4 << 30, CPUs: 4, Disk: 16 << 30}, func(c *billing.Config) {
		c.GraceIntervals = 100
	}).addr
	renter := newSigner(t)
	ctx := context.Background()
	c, err := sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: renter, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, leases, err := c.Rent(ctx, proto.Demand{Count: 1, Limits: proto.Limits{MemoryBytes: 256 << 20, CPUs: 1}}, payEmbedded)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _, _, _, err := gossh.ParseAuthorizedKey([]byte(leases[0].HostKey))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go c.Forward(ctx, l, leases[0].ID, nil)
	sc, err := gossh.Dial("tcp", l.Addr().String(), &gossh.ClientConfig{
		User: "root", Auth: []gossh.AuthMethod{gossh.PublicKeys(renter)},
		HostKeyCallback: gossh.FixedHostKey(hostKey), // the pinned key, nothing else
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

// agentExe is the agent's path in a sandbox: the small binary, or zennet
// when the provider has none.
var agentExe = regexp.MustCompile(`^/\.zennet/bin/zennet(-agent)?\n`)

func TestAgentSessions(t *testing.T) {
	sc := leaseClient(t)

	// The resident agent is the sandbox's first process (agent.ServeInit):
	// its stdio is the guest's /dev/null, not the host's console log; it
	// reaps the orphans sessions leave while each session keeps its own
	// exit status; and no signal a renter's processes can catch stops it
	// (the sandbox would end with it).
	t.Run("the first process", func(t *testing.T) {
		s, _ := sc.NewSession()
		defer s.Close()
		out, err := s.Output(`readlink /proc/1/exe; for fd in 0 1 2; do readlink /proc/1/fd/$fd; done`)
		if err != nil || !agentExe.MatchString(string(out)) || !strings.HasSuffix(string(out), "\n/dev/null\n/dev/null\n/dev/null\n") {
			t.Fatalf("first process and its stdio: %q, %v; want the agent, /dev/null thrice", out, err)
		}
	})
	t.Run("orphans reaped, exit statuses kept", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := sc.NewSession()
				if err != nil {
					t.Error(err)
					return
				}
				defer s.Close()
				code := i%4 + 1
				err = s.Run(fmt.Sprintf("(sleep 0.%d &); (sleep 0.0%d &); exit %d", i%3, i%5, code))
				var ee *gossh.ExitError
				if !errors.As(err, &ee) || ee.ExitStatus() != code {
					t.Errorf("session %d: want exit status %d, got %v", i, code, err)
				}
			}()
		}
		wg.Wait()
		s, _ := sc.NewSession()
		defer s.Close()
		// Zombies, but for this command's own (its ps).
		out, err := s.Output(`sleep 1; for i in $(seq 50); do z=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null); [ -z "$z" ] && break; sleep 0.1; done; echo "zombies: $z"`)
		if err != nil || strings.TrimSpace(string(out)) != "zombies:" {
			t.Fatalf("%q, %v", out, err)
		}
	})
	t.Run("signals do not stop the host", func(t *testing.T) {
		s, _ := sc.NewSession()
		defer s.Close()
		out, err := s.CombinedOutput(`for sig in TERM INT HUP QUIT USR1 USR2 ALRM PIPE SEGV ABRT; do kill -$sig 1 || exit 1; done; pkill -x zennet-agent; pkill -x zennet; sleep 0.5; echo sent`)
		if err != nil || string(out) != "sent\n" {
			t.Fatalf("%q, %v", out, err)
		}
		s2, err := sc.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if out, err := s2.Output("readlink /proc/1/exe"); err != nil || !agentExe.MatchString(string(out)) {
			t.Fatalf("after the signals: %q, %v", out, err)
		}
	})

	t.Run("exec exit status and stderr", func(t *testing.T) {
		s, _ := sc.NewSession()
		defer s.Close()
		var stderr bytes.Buffer
		s.Stderr = &stderr
		err := s.Run("echo oops >&2; exit 7")
		var ee *gossh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 7 {
			t.Fatalf("exit: %v", err)
		}
		if stderr.String() != "oops\n" {
			t.Fatalf("stderr = %q", stderr.String())
		}
	})

	t.Run("stdin reaches the command", func(t *testing.T) {
		s, _ := sc.NewSession()
		defer s.Close()
		s.Stdin = strings.NewReader("hello sandbox\n")
		out, err := s.Output("tr a-z A-Z")
		if err != nil || string(out) != "HELLO SANDBOX\n" {
			t.Fatalf("out = %q, %v", out, err)
		}
	})

	t.Run("all output before the exit status, in order", func(t *testing.T) {
		s, _ := sc.NewSession()
		defer s.Close()
		// 8 KiB writes, as head -c makes, and a last line after them.
		out, err := s.Output("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo end")
		if err != nil || len(out) != 3000005 || !strings.HasSuffix(string(out), "x\nend\n") {
			t.Fatalf("out: %d bytes ending %q, %v", len(out), out[max(0, len(out)-8):], err)
		}
	})

	t.Run("a child left holding stdout does not hold the session", func(t *testing.T) {
		s, _ := sc.NewSession()
		defer s.Close()
		start := time.Now()
		out, err := s.Output("sleep 60 & echo parent done")
		if err != nil || string(out) != "parent done\n" {
			t.Fatalf("out = %q, %v", out, err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("the session lasted %v, held by its child", d)
		}
	})

	t.Run("signal ends the command", func(t *testing.T) {
		s, _ := sc.NewSession()
		defer s.Close()
		var out syncBuffer
		s.Stdout = &out
		if err := s.Start("echo started; exec sleep 100"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, &out, "started")
		if err := s.Signal(gossh.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Wait() }()
		select {
		case err := <-done:
			var ee *gossh.ExitError
			if !errors.As(err, &ee) || ee.ExitStatus() != 128+15 {
				t.Fatalf("after SIGTERM: %v, want exit status 143", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("SIGTERM did not end the command")
		}
	})

	t.Run("pty with window changes", func(t *testing.T) {
		s, _ := sc.NewSession()
		defer s.Close()
		if err := s.RequestPty("xterm-256color", 40, 120, gossh.TerminalModes{gossh.ECHO: 0}); err != nil {
			t.Fatal(err)
		}
		in, _ := s.StdinPipe()
		var out syncBuffer
		s.Stdout = &out
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		in.Write([]byte("tty; echo term=$TERM; stty size\n"))
		waitFor(t, &out, "40 120")
		if err := s.WindowChange(50, 132); err != nil {
			t.Fatal(err)
		}
		// The resize travels on its own; ask until the shell sees it.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), "50 132") && time.Now().Before(deadline) {
			in.Write([]byte("stty size\n"))
			time.Sleep(200 * time.Millisecond)
		}
		in.Write([]byte("exit 3\n"))
		err := s.Wait()
		var ee *gossh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
			t.Fatalf("shell exit: %v", err)
		}
		got := out.String()
		for _, want := range []string{"/dev/pts/", "term=xterm-256color", "40 120", "50 132"} {
			if !strings.Contains(got, want) {
				t.Errorf("pty output lacks %q:\n%s", want, got)
			}
		}
	})

	t.Run("local forward to the sandbox's own loopback", func(t *testing.T) {
		s, _ := sc.NewSession()
		defer s.Close()
		if err := s.Start(`python3 -c 'import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("127.0.0.1",7777));s.listen();c,_=s.accept();c.sendall(b"inside\n")'`); err != nil {
			t.Fatal(err)
		}
		var conn net.Conn
		var err error
		for i := 0; i < 50; i++ {
			if conn, err = sc.Dial("tcp", "127.0.0.1:7777"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		buf := make([]byte, 7)
		if _, err := conn.Read(buf); err != nil || string(buf) != "inside\n" {
			t.Fatalf("read %q, %v", buf, err)
		}
	})
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in output:\n%s", s, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
