// Package sshgate is zennet's SSH adapter: the provider's gateway (renters
// negotiate leases on it and reach their sandboxes through it), the renter's
// client for the same protocol, and the agent that serves SSH inside each
// sandbox.
package sshgate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/internal/coalesce"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
)

// verifiedKeyExt names the permission extension that carries the public key
// whose signature the server verified. gliderlabs' PublicKeyHandler also runs
// for keys a client merely offers, so neither its calls nor the context's
// public key say who authenticated; x/crypto's VerifiedPublicKeyCallback
// does, and only what it records is trusted.
const verifiedKeyExt = "zennet-verified-key"

// Gateway is the provider's SSH server.
type Gateway struct {
	srv     *ssh.Server
	leases  *lease.Manager
	billing Payments
	market  func() []string // the libp2p market node's multiaddrs
	cluster ClusterNode
	tunnels *ClusterTransport
	log     *slog.Logger

	streams  *streams
	startups *startups
	// unusedTimeout closes connections with no channel open this long;
	// stallTimeout disconnects a renter one message waited this long for.
	unusedTimeout, stallTimeout time.Duration

	mu      sync.Mutex
	conns   map[*gossh.ServerConn]time.Time
	writers map[string]*outbox // by holder
	// handlers counts negotiation sessions still winding down: their
	// leases' accounts close as they end.
	handlers sync.WaitGroup
}

// Payments is the provider's payment policy as the gateway calls it
// (billing.Billing is the real one): the gateway carries what it decides to
// the renter and back, and decides nothing itself.
type Payments interface {
	// Admit says whether owner may lease here at all (nil), or why not.
	Admit(owner gossh.PublicKey) error
	// Terms are the payment terms offered to owner for hosts of limits l
	// reported every interval seconds, when it bids bid msat per work (0:
	// none).
	Terms(owner gossh.PublicKey, l proto.Limits, interval int, bid float64) (proto.PaymentTerms, error)
	// Open opens the account of a granted lease, paid by method on the
	// terms offered, and returns its prepayment request if the terms ask
	// one; Close closes it once its renter has gone.
	Open(ctx context.Context, le *lease.Lease, method string, terms proto.PaymentTerms) (*pay.Request, error)
	Close(id string) (pay.Receipt, error)
	// Bill records a usage report and returns the payment request to send
	// with it, if anything is due; Record records one without asking (the
	// final report of a lease whose renter is gone).
	Bill(ctx context.Context, rep meter.Report) (*pay.Request, error)
	Record(ctx context.Context, rep meter.Report) error
	// Enforce returns, after each report of lease id, a pause or resume to
	// announce, or why the lease must end now.
	Enforce(ctx context.Context, id string) (*proto.LeaseState, *proto.Ended)
	// Confirm counts owner's proof of payment and returns the credit to
	// send back, and a resume to announce if it lifts a pause.
	Confirm(ctx context.Context, owner gossh.PublicKey, proof pay.Proof) (proto.Credit, *proto.LeaseState)
}

// GatewayOption configures a Gateway.
type GatewayOption func(*Gateway)

// WithLogger sets the gateway's logger.
func WithLogger(l *slog.Logger) GatewayOption {
	return func(g *Gateway) { g.log = l.With("subsystem", "sshgate") }
}

// ClusterNode takes renters' session memberships (cluster.Node is the
// real one): the gateway carries them and decides nothing.
type ClusterNode interface {
	Update(owner gossh.PublicKey, membership []byte) (proto.ClusterStatus, error)
}

// WithCluster lets renters put their hosts on session networks: accepts
// may carry a cluster join, memberships go to c, and other providers'
// tunnels (and renters' relays) to t, which may be nil (this provider's
// hosts only).
func WithCluster(c ClusterNode, t *ClusterTransport) GatewayOption {
	return func(g *Gateway) { g.cluster, g.tunnels = c, t }
}

// WithLoginGrace sets how long a connection may take to authenticate
// (default 60 s, as OpenSSH's LoginGraceTime is 120 s).
func WithLoginGrace(d time.Duration) GatewayOption {
	return func(g *Gateway) { g.startups.grace = d }
}

// WithMarket makes the gateway tell whoever asks (a renter's HOST:PORT
// --seed) the multiaddrs of the provider's libp2p market node.
func WithMarket(addrs func() []string) GatewayOption {
	return func(g *Gateway) { g.market = addrs }
}

// NewGateway returns a gateway that serves leases from m under hostKey,
// billed and paid through b.
func NewGateway(hostKey gossh.Signer, m *lease.Manager, b Payments, opts ...GatewayOption) *Gateway {
	g := &Gateway{leases: m, billing: b, log: slog.New(slog.DiscardHandler), conns: map[*gossh.ServerConn]time.Time{},
		writers: map[string]*outbox{}, streams: newStreams(), startups: newStartups(defaultLoginGrace), unusedTimeout: DefaultUnusedTimeout, stallTimeout: stallTimeout}
	g.srv = &ssh.Server{
		Version: "zennet",
		// Anyone may rent: every offered key may try. Identity is settled
		// by VerifiedPublicKeyCallback below, not here.
		PublicKeyHandler: func(ssh.Context, ssh.PublicKey) bool { return true },
		ServerConfigCallback: func(ssh.Context) *gossh.ServerConfig {
			return &gossh.ServerConfig{
				VerifiedPublicKeyCallback: func(meta gossh.ConnMetadata, key gossh.PublicKey, _ *gossh.Permissions, _ string) (*gossh.Permissions, error) {
					g.startups.authenticated(meta.RemoteAddr())
					return &gossh.Permissions{Extensions: map[string]string{verifiedKeyExt: string(key.Marshal())}}, nil
				},
			}
		},
		ChannelHandlers: map[string]ssh.ChannelHandler{
			proto.ChannelNegotiate: g.recovered(g.negotiate),
			proto.ChannelLease:     g.recovered(g.leaseChannel),
			ChannelMarket:          g.recovered(g.marketChannel),
			ChannelCluster:         g.recovered(g.clusterChannel),
			ChannelClusterRelay:    g.recovered(g.clusterChannel),
			"session":              rejectSession,
		},
		RequestHandlers: map[string]ssh.RequestHandler{proto.RequestLeaseStream: g.leaseStreamRequest,
			proto.RequestClusterStream: g.clusterStreamRequest},
		MaxTimeout: 0,
		// Busy connections (a tunnel, a bulk copy) share system calls.
		ConnCallback: func(ctx ssh.Context, c net.Conn) net.Conn {
			return watchUnused(ctx, coalesce.New(c), g.unusedTimeout)
		},
	}
	for _, o := range opts {
		o(g)
	}
	g.srv.AddHostKey(hostKey)
	return g
}

func rejectSession(_ *ssh.Server, _ *gossh.ServerConn, nc gossh.NewChannel, _ ssh.Context) {
	nc.Reject(gossh.Prohibited, "this is a zennet provider: rent hosts with 'zennet -n N --provider ADDR'")
}

// recovered keeps a panic in one channel from taking the provider down.
func (g *Gateway) recovered(h ssh.ChannelHandler) ssh.ChannelHandler {
	return func(srv *ssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx ssh.Context) {
		if u := usedBy(ctx); u != nil {
			defer u.opened()()
		}
		defer func() {
			if r := recover(); r != nil {
				g.log.Error("panic in channel handler", "channel", nc.ChannelType(), "panic", r)
			}
		}()
		h(srv, conn, nc, ctx)
	}
}

// VerifiedKey returns the key that authenticated conn, or nil.
func VerifiedKey(conn *gossh.ServerConn) gossh.PublicKey {
	if conn == nil || conn.Permissions == nil {
		return nil
	}
	b, ok := conn.Permissions.Extensions[verifiedKeyExt]
	if !ok {
		return nil
	}
	k, err := gossh.ParsePublicKey([]byte(b))
	if err != nil {
		return nil
	}
	return k
}

// Serve accepts connections on l until Shutdown.
func (g *Gateway) Serve(l net.Listener) error {
	g.log.Info("gateway listening", "addr", l.Addr().String())
	err := g.srv.Serve(newSniffListener(l, g.startups, g.serveStream, g.serveClusterStream))
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, closes live connections (which ends their
// leases) and waits for them, until ctx is done.
func (g *Gateway) Shutdown(ctx context.Context) error {
	err := g.srv.Close()
	if errors.Is(err, ssh.ErrServerClosed) {
		err = nil
	}
	g.streams.close()
	done := make(chan struct{})
	go func() {
		g.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("negotiation sessions still ending: %w", ctx.Err()))
	}
	return err
}

// track logs a renter's connection once, and its end with its duration.
func (g *Gateway) track(conn *gossh.ServerConn) {
	start := time.Now()
	g.mu.Lock()
	first := false
	if _, ok := g.conns[conn]; !ok {
		g.conns[conn] = start
		first = true
	}
	g.mu.Unlock()
	if !first {
		return
	}
	key := VerifiedKey(conn)
	fp := ""
	if key != nil {
		fp = gossh.FingerprintSHA256(key)
	}
	g.log.Info("renter connected", "remote", conn.RemoteAddr().String(), "key", fp)
	go func() {
		conn.Wait()
		g.mu.Lock()
		delete(g.conns, conn)
		g.mu.Unlock()
		g.log.Info("renter disconnected", "remote", conn.RemoteAddr().String(), "key", fp, "duration", time.Since(start).Round(time.Millisecond))
	}()
}

func newHolder() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Announce tells the renter holding lease id that its state changed (the
// operator paused or resumed it).
func (g *Gateway) Announce(id string, st proto.LeaseState) {
	for _, le := range g.leases.List() {
		if le.ID != id {
			continue
		}
		g.mu.Lock()
		w := g.writers[le.Holder]
		g.mu.Unlock()
		if w != nil {
			w.Send(proto.Message{Type: proto.TypeState, State: &st})
		}
	}
}

// grant creates n hosts of offer for owner and opens their accounts, all
// or none; started, if not nil, hears how many have started as they do.
func (g *Gateway) grant(ctx context.Context, owner gossh.PublicKey, holder string, n int, offer proto.Offer, method string, cj *proto.ClusterJoin, started func(int)) ([]*lease.Lease, map[string]*pay.Request, error) {
	var join *lease.Join
	if cj != nil {
		var err error
		if join, err = g.join(owner, cj); err != nil {
			return nil, nil, err
		}
	}
	granted, err := g.leases.GrantProgress(ctx, owner, holder, n, offer.Limits, join, started)
	if err != nil {
		return nil, nil, err
	}
	prepay := map[string]*pay.Request{}
	for i, le := range granted {
		var req *pay.Request
		if req, err = g.billing.Open(ctx, le, method, offer.Payment); req != nil {
			prepay[le.ID] = req
		}
		if err != nil {
			for _, le := range granted[:i+1] { // its own too: a prepaid one's opened before it failed
				g.billing.Close(le.ID)
			}
			break
		}
	}
	if err != nil {
		for _, le := range granted {
			g.leases.End(context.WithoutCancel(ctx), le.ID, owner, proto.EndPaymentSetup)
		}
		return nil, nil, fmt.Errorf("set up payments: %w", err)
	}
	return granted, prepay, nil
}

// join reads an accept's cluster join.
func (g *Gateway) join(owner gossh.PublicKey, cj *proto.ClusterJoin) (*lease.Join, error) {
	if g.cluster == nil {
		return nil, fmt.Errorf("%w: this provider does not put hosts on session networks", proto.ErrBadRequest)
	}
	subnet, err := netip.ParsePrefix(cj.Subnet)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster subnet: %v", proto.ErrBadRequest, err)
	}
	key, _, _, _, err := gossh.ParseAuthorizedKey([]byte(cj.Key))
	if err != nil {
		return nil, fmt.Errorf("%w: cluster key: %v", proto.ErrBadRequest, err)
	}
	priv, err := gossh.ParsePrivateKey([]byte(cj.PrivateKey))
	if err != nil || !lease.KeysEqual(priv.PublicKey(), key) {
		return nil, fmt.Errorf("%w: the cluster's private key is not the private half of its key", proto.ErrBadRequest)
	}
	j := &lease.Join{Key: cluster.SessionKey{Renter: gossh.FingerprintSHA256(owner), Session: cj.Session}, Subnet: subnet, AuthorizedKey: key,
		PrivateKey: []byte(cj.PrivateKey)}
	for _, s := range cj.Addrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: cluster address: %v", proto.ErrBadRequest, err)
		}
		j.Addrs = append(j.Addrs, a)
	}
	return j, nil
}

// sendFinal bills a lease's final report and sends it with what is due.
func (g *Gateway) sendFinal(ctx context.Context, w *outbox, final *meter.Report, log *slog.Logger) {
	if final == nil {
		return
	}
	req, err := g.billing.Bill(context.WithoutCancel(ctx), *final)
	if err != nil {
		log.Error("bill final report", "lease", final.Lease, "err", err)
	}
	sendUsage(w, final, req, true)
}

// report sends a usage report of each of holder's leases every interval,
// with what is due, and enforces payment, until stop closes.
func (g *Gateway) report(ctx context.Context, holder string, every time.Duration, w *outbox, stop <-chan struct{}, mu *sync.Mutex, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, le := range g.leases.Holding(holder) {
			mu.Lock()
			r, err := g.leases.Report(le.ID)
			if err != nil {
				mu.Unlock()
				if !errors.Is(err, proto.ErrNotFound) { // not ended meanwhile
					log.Warn("usage report", "lease", le.ID, "err", err)
				}
				continue
			}
			req, err := g.billing.Bill(ctx, r)
			if err != nil {
				log.Error("bill usage report", "lease", le.ID, "err", err)
			}
			err = sendUsage(w, &r, req, false)
			mu.Unlock()
			if err != nil {
				return
			}
			state, end := g.billing.Enforce(ctx, le.ID)
			if state != nil {
				if err := w.Send(proto.Message{Type: proto.TypeState, State: state}); err != nil {
					return
				}
			}
			if end != nil {
				log.Warn("ending unpaid lease", "lease", le.ID, "cause", end.Cause, "reason", end.Reason)
				if err := g.leases.Terminate(context.WithoutCancel(ctx), le.ID, end.Cause, end.Reason); err != nil {
					log.Error("end unpaid lease", "lease", le.ID, "err", err)
				}
			}
		}
	}
}

// sendUsage sends r, if any, as a usage message with req, if any.
func sendUsage(w *outbox, r *meter.Report, req *pay.Request, final bool) error {
	if r == nil {
		return nil
	}
	b, err := meter.Encode(*r)
	if err != nil {
		return err
	}
	m := proto.Message{Type: proto.TypeUsage, Usage: bytes.TrimSpace(b), Final: final}
	if req != nil {
		rb, err := pay.EncodeRequest(*req)
		if err != nil {
			return err
		}
		m.PayRequest = bytes.TrimSpace(rb)
	}
	return w.Send(m)
}

func (g *Gateway) leaseChannel(_ *ssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx ssh.Context) {
	owner := VerifiedKey(conn)
	var extra struct{ ID string }
	if err := gossh.Unmarshal(nc.ExtraData(), &extra); err != nil || !proto.ValidLeaseID(extra.ID) {
		nc.Reject(gossh.ConnectionFailed, "malformed lease id")
		return
	}
	// The resident agent, through the host's own network; else, for a
	// host with no network, an agent started for this connection. The
	// resident agent is the sandbox's first process, so it is not
	// restarted: it ignores every signal a guest can catch, and the
	// sandbox ends with it.
	agentConn, err := g.leases.Dial(ctx, extra.ID, owner)
	final := errors.Is(err, lease.ErrPaused) || errors.Is(err, proto.ErrNotFound) || errors.Is(err, lease.ErrTooManyConns)
	if err != nil && !final && !errors.Is(err, sandbox.ErrNoNetwork) {
		g.log.Error("lease connection: the host's ssh server does not answer", "lease", extra.ID, "err", err)
		nc.Reject(gossh.ConnectionFailed, "the host's ssh server does not answer")
		return
	}
	if err == nil {
		g.track(conn)
		g.spliceAgent(nc, agentConn, extra.ID)
		return
	}
	var cmd *exec.Cmd
	release := func() {}
	if errors.Is(err, sandbox.ErrNoNetwork) {
		cmd, release, err = g.leases.Connect(extra.ID, owner)
	}
	if errors.Is(err, lease.ErrPaused) || errors.Is(err, lease.ErrTooManyConns) {
		nc.Reject(gossh.ResourceShortage, err.Error())
		return
	}
	if err != nil {
		// The same answer whether the lease does not exist or is someone
		// else's: lease ids are not to be probed.
		nc.Reject(gossh.Prohibited, "no such lease for this key")
		return
	}
	defer release()
	g.track(conn)
	ch, err := acceptChannel(nc)
	if err != nil {
		return
	}
	defer ch.Close()
	start := time.Now()
	var stderr tailBuffer
	cmd.Stderr = &stderr
	// The agent's stdio are pipes of our own, large ones, copied with
	// large buffers: with exec's (64 KiB, copied 32 KiB at a time) the
	// sandbox and this process took turns every few packets. The copy in
	// stops when ch closes, as this returns: a connection never outlives
	// its ended lease.
	inR, inW, err := bigPipe()
	if err != nil {
		return
	}
	outR, outW, err := bigPipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return
	}
	defer outR.Close()
	cmd.Stdin, cmd.Stdout = inR, outW
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		return
	}
	go func() {
		io.CopyBuffer(inW, ch, make([]byte, stdioBuffer))
		inW.Close()
	}()
	io.CopyBuffer(ch, outR, make([]byte, stdioBuffer))
	err = cmd.Wait()
	log := g.log.With("lease", extra.ID, "duration", time.Since(start).Round(time.Millisecond))
	if err != nil && stderr.Len() > 0 {
		log.Warn("lease connection", "err", err, "stderr", stderr.String())
		return
	}
	log.Debug("lease connection closed")
}

// acceptChannel accepts a lease channel; its requests are discarded.
func acceptChannel(nc gossh.NewChannel) (gossh.Channel, error) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return nil, err
	}
	go gossh.DiscardRequests(reqs)
	return ch, nil
}

// spliceAgent joins a new lease channel to a connection to the lease's
// resident agent until either end closes.
func (g *Gateway) spliceAgent(nc gossh.NewChannel, agent net.Conn, id string) {
	defer agent.Close()
	ch, err := acceptChannel(nc)
	if err != nil {
		return
	}
	defer ch.Close()
	start := time.Now()
	splice(ch, agent)
	g.log.Debug("lease connection closed", "lease", id, "duration", time.Since(start).Round(time.Millisecond))
}

// stdioBuffer is what a lease connection's copies move at once, and
// pipeSize the capacity of its pipes to the agent.
const (
	stdioBuffer = 256 << 10
	pipeSize    = 1 << 20
)

// bigPipe returns a pipe of pipeSize bytes (or the system's most, if less).
func bigPipe() (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	return r, w, nil
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) Len() int       { t.mu.Lock(); defer t.mu.Unlock(); return len(t.buf) }
func (t *tailBuffer) String() string { t.mu.Lock(); defer t.mu.Unlock(); return string(t.buf) }
