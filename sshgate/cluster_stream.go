package sshgate

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/proto"
)

// Cluster streams (proto.RequestClusterStream): a session's frames between
// two providers on a TCP connection of their own, sealed with AES-256-GCM,
// beside the session's SSH tunnel channel. Through the channel a frame
// costs each provider several goroutine hand-offs (the SSH connection's
// reader, the channel's buffer, its window adjustments, the gathered
// writes); on a stream the goroutine that reads a frame from a host's tap
// seals it and the one that reads the stream writes it into the other
// host's tap. The keys come from key shares both sides sent over their
// SSH connection, which each authenticated by the host key the session's
// membership names: nobody else has them. Whatever goes wrong with a
// stream (refused, cut, a record that does not open) closes it, and the
// session's frames go over the channel again.

// Bounds of the cluster streams.
const (
	// channelWait bounds how long a stream request waits for the
	// session's channel from the same peer to be registered here: the
	// peer asks as soon as the channel is open, and this side registers
	// it just after accepting it.
	channelWait = 2 * time.Second
	// streamBatch is the most a stream's writer seals before it writes.
	streamBatch = 256 << 10
	// sealOverhead is what sealing adds to a frame: its length and the tag.
	sealOverhead = 4 + 16
	// streamWriteWait bounds a write to a stream: a peer that has not
	// taken a frame's bytes by then has stopped reading, and its stream
	// is closed (the frames go over the channel).
	streamWriteWait = 2 * time.Second
)

// clusterStreamRequest is RequestClusterStream's payload.
type clusterStreamRequest struct {
	Renter, Session string
	Share           []byte
}

// pendingClusterStream is a ticket's stream, waiting for its connection.
type pendingClusterStream struct {
	peer   string
	key    cluster.SessionKey
	parent *tunnel // the session's channel to peer
	secret []byte  // the dialler's share, then ours
	salt   []byte  // the ticket
}

// Errors of the cluster streams.
var (
	errNoStream   = errors.New("no cluster stream")
	errBadRecord  = errors.New("a cluster stream record did not open")
	errBigRecord  = errors.New("a cluster stream record out of bounds")
	errStreamUsed = errors.New("unknown or used cluster stream ticket")
)

// sealer seals or opens one direction of a stream: AES-256-GCM, the
// record's length as additional data, a counter as the nonce.
type sealer struct {
	aead  cipher.AEAD
	nonce [12]byte
	n     uint64
}

// streamKeys returns the dialler's sealer (dialler to listener) and the
// listener's, from the two shares and the ticket.
func streamKeys(dialler bool, secret, salt []byte) (send, recv *sealer, err error) {
	mk := func(info string) (*sealer, error) {
		k, err := hkdf.Key(sha256.New, secret, salt, info, 32)
		if err != nil {
			return nil, err
		}
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		a, err := cipher.NewGCM(b)
		if err != nil {
			return nil, err
		}
		return &sealer{aead: a}, nil
	}
	out, err := mk("zennet cluster stream v1: dialler to listener")
	if err != nil {
		return nil, nil, err
	}
	in, err := mk("zennet cluster stream v1: listener to dialler")
	if err != nil {
		return nil, nil, err
	}
	if dialler {
		return out, in, nil
	}
	return in, out, nil
}

func (s *sealer) next() []byte {
	binary.BigEndian.PutUint64(s.nonce[4:], s.n)
	s.n++
	return s.nonce[:]
}

// seal appends frame's record to dst.
func (s *sealer) seal(dst, frame []byte) []byte {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(frame)+16))
	dst = append(dst, hdr[:]...)
	return s.aead.Seal(dst, s.next(), frame, hdr[:])
}

// readRecord reads and opens one record from r into buf (of maxFrame+16
// bytes at least) and returns the frame.
func (s *sealer) readRecord(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 16 || n > maxFrame+16 {
		return nil, fmt.Errorf("%w: %d bytes", errBigRecord, n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	frame, err := s.aead.Open(buf[:0], s.next(), buf[:n], hdr[:])
	if err != nil {
		return nil, errBadRecord
	}
	return frame, nil
}

// writeNow seals a frame and writes it to the stream, with wmu held.
func (tn *tunnel) writeNow(frame []byte) bool {
	tn.out = tn.send.seal(tn.out[:0], frame)
	tn.stream.SetWriteDeadline(time.Now().Add(streamWriteWait))
	if _, err := tn.stream.Write(tn.out); err != nil {
		tn.close()
		return false
	}
	return true
}

// streamRequest answers a peer provider's RequestClusterStream: a ticket
// and this side's key share, if the peer has a tunnel channel of the
// session open here (which is how it proved it belongs to the session).
func (t *ClusterTransport) streamRequest(from gossh.PublicKey, payload []byte) (bool, []byte) {
	var req clusterStreamRequest
	if from == nil || gossh.Unmarshal(payload, &req) != nil || len(req.Share) != proto.ClusterKeyShare {
		return false, []byte("malformed cluster stream request")
	}
	peer := gossh.FingerprintSHA256(from)
	key := cluster.SessionKey{Renter: req.Renter, Session: req.Session}
	if peer == t.self || !t.fabric.Serves(key, peer) {
		return false, []byte("no such session here, or the provider is not in it")
	}
	parent := t.awaitChannel(tunnelKey{peer, key})
	if parent == nil {
		return false, []byte("no tunnel of this session from you here")
	}
	share := make([]byte, proto.ClusterKeyShare)
	rand.Read(share)
	p := &pendingClusterStream{peer: peer, key: key, parent: parent, secret: append(append([]byte(nil), req.Share...), share...)}
	ticket, err := t.streamTickets.issue(p)
	if err != nil {
		return false, []byte(err.Error())
	}
	p.salt = ticket[:]
	return true, append(ticket[:], share...)
}

// awaitChannel returns tk's direct channel, waiting up to channelWait for
// it to be registered; nil if none is by then, or t is closed.
func (t *ClusterTransport) awaitChannel(tk tunnelKey) *tunnel {
	timer := time.NewTimer(channelWait)
	defer timer.Stop()
	for {
		t.mu.Lock()
		var parent *tunnel
		for tn := range t.tunnels[tk] {
			if tn.ch != nil && !tn.relayed {
				parent = tn
			}
		}
		registered := t.registered
		t.mu.Unlock()
		if parent != nil {
			return parent
		}
		select {
		case <-registered:
		case <-timer.C:
			return nil
		case <-t.ctx.Done():
			return nil
		}
	}
}

// ServeStream serves a connection that began with
// proto.ClusterStreamMagic: its ticket, then the dialler's first record,
// which must open (then proven, if not nil, is called); then the session's
// frames both ways until the stream or its channel ends.
func (t *ClusterTransport) ServeStream(c net.Conn, proven func()) error {
	defer c.Close()
	var tk ticket
	c.SetReadDeadline(time.Now().Add(tunnelDial))
	if _, err := io.ReadFull(c, tk[:]); err != nil {
		return err
	}
	p, ok := t.streamTickets.redeem(tk)
	if !ok {
		return errStreamUsed
	}
	send, recv, err := streamKeys(false, p.secret, p.salt)
	if err != nil {
		return err
	}
	r := bufio.NewReaderSize(c, streamBatch)
	buf := make([]byte, maxFrame+16)
	// The first record proves the dialler has the keys: only then do
	// frames go to this connection.
	if _, err := recv.readRecord(r, buf); err != nil {
		return err
	}
	if proven != nil {
		proven()
	}
	c.SetDeadline(time.Time{})
	return t.runStream(c, r, buf, p.peer, p.key, p.parent, send, recv)
}

// openStream asks peer's provider, on c (its SSH connection, whose
// session channel parent is), for a cluster stream and runs it.
func (t *ClusterTransport) openStream(c *conn, parent *tunnel, key cluster.SessionKey, p cluster.Member) error {
	ctx, cancel := context.WithTimeout(t.ctx, tunnelDial)
	defer cancel()
	share := make([]byte, proto.ClusterKeyShare)
	rand.Read(share)
	req := gossh.Marshal(clusterStreamRequest{Renter: key.Renter, Session: key.Session, Share: share})
	ok, reply, err := c.request(ctx, proto.RequestClusterStream, req)
	if err != nil {
		return err
	}
	if !ok || len(reply) != proto.TicketSize+proto.ClusterKeyShare {
		return fmt.Errorf("%w: %s", errNoStream, reply)
	}
	ticket := reply[:proto.TicketSize]
	send, recv, err := streamKeys(true, append(share, reply[proto.TicketSize:]...), ticket)
	if err != nil {
		return err
	}
	dial, err := t.dialFor(p.Endpoint)
	if err != nil {
		return err
	}
	raw, err := dialRaw(ctx, p.Endpoint, dial, tunnelDial)
	if err != nil {
		return err
	}
	hello := append([]byte(proto.ClusterStreamMagic), ticket...)
	hello = send.seal(hello, nil)
	if _, err := raw.Write(hello); err != nil {
		raw.Close()
		return err
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer raw.Close()
		err := t.runStream(raw, bufio.NewReaderSize(raw, streamBatch), make([]byte, maxFrame+16), p.Provider, key, parent, send, recv)
		t.log.Debug("cluster stream ended", "peer", p.Provider, "session", key.String(), "err", err)
	}()
	return nil
}

// runStream registers a stream as the session's tunnel to peer, the one
// Send prefers, writes what is sent to it and delivers what it reads until
// it fails, it is closed, or its channel goes.
func (t *ClusterTransport) runStream(c net.Conn, r *bufio.Reader, buf []byte, peer string, key cluster.SessionKey, parent *tunnel, send, recv *sealer) error {
	tn := &tunnel{stream: c, q: make(chan []byte, tunnelQueue), done: make(chan struct{}), send: send}
	tk := tunnelKey{peer, key}
	t.mu.Lock()
	select {
	case <-parent.done:
		t.mu.Unlock()
		return errNoStream
	default:
	}
	if t.ctx.Err() != nil {
		t.mu.Unlock()
		return t.ctx.Err()
	}
	t.register(tk, tn)
	t.wg.Add(1)
	t.mu.Unlock()
	t.log.Info("cluster stream up", "peer", peer, "session", key.String())
	defer t.unregister(tk, tn)
	// The stream goes with its channel (the session left this pair of
	// providers, or their connection died) and with the transport.
	go func() {
		select {
		case <-parent.done:
		case <-t.ctx.Done():
		case <-tn.done:
		}
		tn.close()
	}()
	go func() {
		defer t.wg.Done()
		out := make([]byte, 0, streamBatch+maxFrame+sealOverhead)
		put := func(b []byte) {
			out = send.seal(out, b[4:])
			b = b[:cap(b)]
			framePool.Put(&b)
		}
		for {
			select {
			case b := <-tn.q:
				tn.wmu.Lock()
				out = out[:0]
				put(b)
			gather:
				for len(out) < streamBatch {
					select {
					case b := <-tn.q:
						put(b)
					default:
						break gather
					}
				}
				c.SetWriteDeadline(time.Now().Add(streamWriteWait))
				_, err := c.Write(out)
				tn.wmu.Unlock()
				if err != nil {
					tn.close()
					return
				}
			case <-tn.done:
				return
			}
		}
	}()
	for {
		frame, err := recv.readRecord(r, buf)
		if err != nil {
			return err
		}
		if len(frame) == 0 {
			continue
		}
		if err := t.fabric.FromPeer(peer, key, frame); err != nil {
			t.log.Debug("frame from peer dropped", "peer", peer, "err", err)
		}
	}
}
