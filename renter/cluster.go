package renter

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/netip"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
)

// clusterNet is the session's private network: its subnet, the addresses
// handed out, the session's own key (which opens its hosts to each other)
// and the membership's sequence.
type clusterNet struct {
	subnet netip.Prefix
	signer gossh.Signer // the session's key
	pemKey []byte       // its private key, installed in every host
	pub    string       // its public key, authorized on every host

	mu   sync.Mutex
	next int    // the last host address handed out
	seq  uint64 // the last membership sent
	sent time.Time
	// relayed are the pairs of providers relayed (by their fingerprints,
	// the lesser first), relays their channels.
	relayed map[string]bool
	relays  []io.Closer
	// said is the last ClusterUp the user was told, as a sentence.
	said string
}

// SubnetEnv, if set, is the subnet of every session (e.g. 10.77.0.0/16);
// otherwise each draws a /16 of cluster.DefaultPool. Sessions never reach
// each other whatever their subnets.
const SubnetEnv = "ZENNET_CLUSTER_SUBNET"

// newClusterNet draws a subnet (a /16 of cluster.DefaultPool, or subnet if
// valid) and a key.
func newClusterNet(subnet netip.Prefix) (*clusterNet, error) {
	if !subnet.IsValid() {
		pool := cluster.DefaultPool
		n, err := rand.Int(rand.Reader, big.NewInt(1<<(16-pool.Bits())))
		if err != nil {
			return nil, err
		}
		b := pool.Addr().As4()
		v := binary.BigEndian.Uint32(b[:]) + uint32(n.Int64())<<16
		binary.BigEndian.PutUint32(b[:], v)
		subnet = netip.PrefixFrom(netip.AddrFrom4(b), 16)
	} else if err := cluster.CheckSubnet(subnet); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := gossh.MarshalPrivateKey(priv, "zennet session key")
	if err != nil {
		return nil, err
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	return &clusterNet{subnet: subnet, signer: signer, pemKey: pem.EncodeToMemory(block), relayed: map[string]bool{},
		pub: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(signer.PublicKey()))) + " zennet-session"}, nil
}

// join hands out addresses for n hosts of one accept; nil without a
// network (a session of one host).
func (cn *clusterNet) join(sessionID string) func(n int) *proto.ClusterJoin {
	if cn == nil {
		return nil
	}
	return func(n int) *proto.ClusterJoin {
		cn.mu.Lock()
		defer cn.mu.Unlock()
		j := &proto.ClusterJoin{Session: sessionID, Subnet: cn.subnet.String(), Key: cn.pub, PrivateKey: string(cn.pemKey)}
		for range n {
			cn.next++
			a, err := cluster.HostAddr(cn.subnet, cn.next)
			if err != nil {
				return nil // past 65k hosts in one session: no network
			}
			j.Addrs = append(j.Addrs, a.String())
		}
		return j
	}
}

// ClusterUp says the session's hosts are on its private network: every
// provider holds the membership, and each host has the others' names, the
// session's key and hostfiles. Relayed and Down name the pairs of
// providers that reach each other only through this machine, or not at
// all.
type ClusterUp struct {
	Subnet  string
	Hosts   int
	Seq     uint64
	Relayed []string
	Down    []string
}

func (e ClusterUp) String() string {
	s := fmt.Sprintf("cluster network %s: %s, reaching each other by name (zennet-N) on any port", e.Subnet, Plural(e.Hosts, "host"))
	if len(e.Relayed) > 0 {
		// What relaying costs: every frame between those providers comes
		// down to this machine and goes up again, through its SSH
		// connections to both.
		s += fmt.Sprintf("; relayed through this machine (slower: their traffic comes down to this machine and goes up again, at most this machine's upload speed, plus its round trip to each): %s", strings.Join(e.Relayed, ", "))
	}
	if len(e.Down) > 0 {
		s += fmt.Sprintf("; NOT reachable from other providers: %s", strings.Join(e.Down, ", "))
	}
	return s
}

func (ClusterUp) event() {}

// membership is the session's membership as it is now, signed.
func (r *Rental) membership() (cluster.Membership, error) {
	cn := r.net
	cn.mu.Lock()
	cn.seq++
	seq := cn.seq
	cn.mu.Unlock()
	m := cluster.Membership{Session: r.sess.ID, Subnet: cn.subnet, Seq: seq, Expires: time.Now().Add(cluster.MaxValidity).UTC()}
	holder := map[string]*sshgate.Client{} // by lease id
	for c, ids := range r.leases {
		for _, id := range ids {
			holder[id] = c
		}
	}
	for _, h := range r.hosts {
		c := holder[h.LeaseID]
		a, err := netip.ParseAddr(h.ClusterAddr)
		if c == nil || err != nil {
			continue
		}
		m.Members = append(m.Members, cluster.Member{Name: h.Name, Addr: a, Lease: h.LeaseID, Provider: fingerprint(c), Endpoint: c.Addr,
			HostKey: strings.TrimSpace(h.HostKey), Slots: max(1, int(math.Ceil(h.Limits.CPUs)))})
	}
	if len(m.Members) == 0 {
		return m, errors.New("no host is on the session network")
	}
	return m, m.Sign(r.cfg.Signer)
}

// syncJob is one delivery of the session's membership, taken from the
// rental's state by the goroutine that owns it (Rent, or Hold's loop), so
// that the delivery itself may run on another.
type syncJob struct {
	raw     []byte
	m       cluster.Membership
	clients map[string]*sshgate.Client // the providers holding hosts, by fingerprint
}

// syncResult is what a delivery came to: the ClusterUp to say, if it says
// anything new.
type syncResult struct {
	up      ClusterUp
	changed bool
	err     error
}

// prepareSync signs the session's current membership for delivery; nil
// without a session network or hosts.
func (r *Rental) prepareSync() (*syncJob, error) {
	if r.net == nil || len(r.hosts) == 0 {
		return nil, nil
	}
	m, err := r.membership()
	if err != nil {
		return nil, err
	}
	raw, err := cluster.Encode(m)
	if err != nil {
		return nil, err
	}
	j := &syncJob{raw: raw, m: m, clients: map[string]*sshgate.Client{}}
	for c, ids := range r.leases {
		if len(ids) > 0 {
			j.clients[fingerprint(c)] = c
		}
	}
	return j, nil
}

// syncCluster hands every provider the session's current membership and
// says the outcome as a ClusterUp, waiting for it (see deliver).
func (r *Rental) syncCluster(ctx context.Context) error {
	j, err := r.prepareSync()
	if j == nil || err != nil {
		return err
	}
	res := r.deliver(ctx, j)
	if res.changed {
		r.emit(res.up)
	}
	return res.err
}

// deliver hands every provider of j the membership (each then writes the
// session's files into its hosts: the members' names and host keys,
// hostfiles for MPI and GNU parallel), relaying between providers that
// cannot reach each other. It reads nothing of the rental but r.net, so it
// may run beside Hold's loop.
func (r *Rental) deliver(ctx context.Context, j *syncJob) syncResult {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	up := ClusterUp{Subnet: j.m.Subnet.String(), Hosts: len(j.m.Members), Seq: j.m.Seq}
	// Every provider gets the membership; a provider that got it before
	// another could not open its tunnel to it yet, so when any path is
	// not direct, every provider is given it once more and looks again.
	// Two providers that still cannot reach each other get a relay
	// through this machine's connections to both, and are asked once more.
	pairs, err := r.sendMembership(ctx, j)
	if err == nil && len(pairs) > 0 {
		pairs, err = r.sendMembership(ctx, j)
	}
	if err == nil && r.relay(ctx, j, pairs) {
		pairs, err = r.sendMembership(ctx, j)
	}
	if err != nil {
		return syncResult{err: err}
	}
	for _, p := range pairs {
		var a, b string
		if c := j.clients[p.from]; c != nil {
			a = c.Addr
		}
		if c := j.clients[p.to]; c != nil {
			b = c.Addr
		}
		pair := min(a, b) + " ↔ " + max(a, b)
		if p.path == proto.PathRelayed {
			up.Relayed = appendOnce(up.Relayed, pair)
		} else {
			up.Down = appendOnce(up.Down, pair)
		}
	}
	// A refresh that changes nothing says nothing: the user hears of the
	// network when it comes up and when its paths change.
	cn := r.net
	cn.mu.Lock()
	cn.sent = time.Now()
	changed := up.String() != cn.said
	cn.said = up.String()
	cn.mu.Unlock()
	return syncResult{up: up, changed: changed}
}

// path is how provider from reaches provider to (fingerprints).
type path struct{ from, to, path string }

// sendMembership hands every provider of j the encoded membership and
// returns the paths between providers that are not direct.
func (r *Rental) sendMembership(ctx context.Context, j *syncJob) ([]path, error) {
	var mu sync.Mutex
	var paths []path
	g, gctx := errgroup.WithContext(ctx)
	for fp, c := range j.clients {
		g.Go(func() error {
			st, err := c.SetMembership(gctx, j.raw)
			if err != nil {
				return fmt.Errorf("provider %s refused the session's membership: %w", c.Addr, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range st.Peers {
				if p.Path != proto.PathDirect {
					paths = append(paths, path{fp, p.Provider, p.Path})
				}
			}
			return nil
		})
	}
	return paths, g.Wait()
}

// relay pipes the session's frames between every two providers with no
// path between them, through this machine's connections to both: a relay
// channel on each, copied into the other. It reports whether it made one.
func (r *Rental) relay(ctx context.Context, j *syncJob, pairs []path) bool {
	session := j.m.Session
	made := false
	for _, p := range pairs {
		if p.path != proto.PathDown {
			continue
		}
		a, b := j.clients[p.from], j.clients[p.to]
		key := min(p.from, p.to) + " " + max(p.from, p.to)
		r.net.mu.Lock()
		busy := r.net.relayed[key]
		r.net.mu.Unlock()
		if a == nil || b == nil || busy {
			continue
		}
		ra, err := a.OpenClusterRelay(ctx, session, p.to)
		if err != nil {
			r.report(fmt.Errorf("cluster network: relay on %s: %w", a.Addr, err))
			continue
		}
		rb, err := b.OpenClusterRelay(ctx, session, p.from)
		if err != nil {
			ra.Close()
			r.report(fmt.Errorf("cluster network: relay on %s: %w", b.Addr, err))
			continue
		}
		r.net.mu.Lock()
		r.net.relayed[key] = true
		r.net.mu.Unlock()
		made = true
		pipe := func(dst, src io.ReadWriteCloser) {
			io.Copy(dst, src)
			ra.Close()
			rb.Close()
			r.net.mu.Lock()
			delete(r.net.relayed, key)
			r.net.mu.Unlock()
		}
		go pipe(ra, rb)
		go pipe(rb, ra)
		r.net.mu.Lock()
		r.net.relays = append(r.net.relays, ra, rb)
		r.net.mu.Unlock()
	}
	return made
}

// closeRelays stops the relays.
func (cn *clusterNet) closeRelays() {
	if cn == nil {
		return
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for _, c := range cn.relays {
		c.Close()
	}
	cn.relays = nil
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// clusterDue reports whether the membership sent is half through its
// validity, so that a fresh one is due.
func (r *Rental) clusterDue(now time.Time) bool {
	if r.net == nil {
		return false
	}
	r.net.mu.Lock()
	defer r.net.mu.Unlock()
	return !r.net.sent.IsZero() && now.Sub(r.net.sent) > cluster.MaxValidity/2
}
