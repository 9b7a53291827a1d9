package sshgate_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
)

// sshOver logs into a lease's host over c with the renter's key and the
// pinned host key, and runs cmd.
func sshOver(t *testing.T, c net.Conn, renter gossh.Signer, hostKey gossh.PublicKey, cmd string) (string, error) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := gossh.NewClientConn(c, "host", &gossh.ClientConfig{
		User: "root", Auth: []gossh.AuthMethod{gossh.PublicKeys(renter)}, HostKeyCallback: gossh.FixedHostKey(hostKey),
	})
	if err != nil {
		return "", err
	}
	client := gossh.NewClient(sc, chans, reqs)
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return "", err
	}
	out, err := s.Output(cmd)
	return string(out), err
}

// rawTicket asks for a lease stream's ticket on a connection of its own,
// as OpenStream does, and returns the ticket.
func rawTicket(t *testing.T, addr string, key gossh.Signer, id string) (bool, []byte) {
	t.Helper()
	c, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{User: "zennet", Auth: []gossh.AuthMethod{gossh.PublicKeys(key)}, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ok, reply, err := c.SendRequest(proto.RequestLeaseStream, true, gossh.Marshal(struct{ ID string }{id}))
	if err != nil {
		t.Fatal(err)
	}
	return ok, reply
}

// refused sends the stream magic and ticket and expects the connection to
// be closed with nothing said.
func refused(t *testing.T, addr string, ticket []byte, what string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(append([]byte(proto.StreamMagic), ticket...)); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
	// Closed with bytes unread: an end of file or a reset.
	if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("%s: the gateway answered %q, %v; want the connection closed", what, b, err)
	}
}

// readConn is a connection whose reads come from r (what was read ahead,
// then the connection).
type readConn struct {
	net.Conn
	r io.Reader
}

func (c *readConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// A lease stream is the host's SSH on a TCP connection of its own: only
// for the lease's owner, once per ticket; anything else is closed unheard.
func TestLeaseStream(t *testing.T) {
	addr := startProvider(t)
	ctx := context.Background()
	victim, attacker := newSigner(t), newSigner(t)
	vc, le := rentOne(t, addr, victim)
	id := le.ID
	hostKey, _, _, _, err := gossh.ParseAuthorizedKey([]byte(le.HostKey))
	if err != nil {
		t.Fatal(err)
	}

	st, err := vc.OpenStream(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sshOver(t, st, victim, hostKey, "echo stream ok")
	if err != nil || out != "stream ok\n" {
		t.Fatalf("ssh over the stream: %q, %v", out, err)
	}

	// Someone else's lease, or no lease: no ticket, and the client says so.
	if ok, reply := rawTicket(t, addr, attacker, id); ok {
		t.Fatalf("the attacker got a ticket for the victim's lease: %x", reply)
	}
	ac, err := sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: attacker, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if _, err := ac.OpenStream(ctx, id); !errors.Is(err, sshgate.ErrNoStream) {
		t.Fatalf("attacker's OpenStream: %v, want ErrNoStream", err)
	}

	// A ticket works once; a made-up one never.
	ok, ticket := rawTicket(t, addr, victim, id)
	if !ok || len(ticket) != proto.TicketSize {
		t.Fatalf("ticket request: %v %x", ok, ticket)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(append([]byte(proto.StreamMagic), ticket...))
	// The agent's first bytes: the gateway has redeemed the ticket for c.
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	banner := make([]byte, 8)
	if _, err := io.ReadFull(c, banner); err != nil || string(banner) != "SSH-2.0-" {
		t.Fatalf("stream's first bytes %q, %v", banner, err)
	}
	// Replayed while its stream is open (its agent connection live), and
	// after it closed.
	refused(t, addr, ticket, "a used ticket, its stream open")
	if out, err := sshOver(t, &readConn{Conn: c, r: io.MultiReader(bytes.NewReader(banner), c)}, victim, hostKey, "echo again"); err != nil || out != "again\n" {
		t.Fatalf("ssh over a raw stream: %q, %v", out, err)
	}
	refused(t, addr, ticket, "a used ticket")
	forged := make([]byte, proto.TicketSize)
	rand.Read(forged)
	refused(t, addr, forged, "a forged ticket")

	// The stream still needs the renter's key: the attacker who copies a
	// ticket off the wire reaches the host's SSH server, which refuses it.
	_, ticket = rawTicket(t, addr, victim, id)
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(append([]byte(proto.StreamMagic), ticket...))
	if _, err := sshOver(t, c, attacker, hostKey, "true"); err == nil {
		t.Fatal("the attacker logged into the victim's host with a copied ticket")
	}

	// SSH to the gateway itself is served as before, beside the streams.
	if _, err := sshgate.Dial(ctx, addr, sshgate.ClientConfig{Signer: attacker, HostKeyCallback: gossh.InsecureIgnoreHostKey()}); err != nil {
		t.Fatalf("SSH beside streams: %v", err)
	}
}
