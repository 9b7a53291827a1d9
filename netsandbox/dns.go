package netsandbox

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// A sandbox's DNS server asks the provider's resolver, whose every lookup
// costs the provider a socket for up to dnsTimeout. So lookups are bounded
// like flows: each sandbox may ask at dnsRate a second (dnsBurst at once)
// with dnsPerNetwork in flight, the provider's resolver works on at most
// dnsInFlight lookups for all sandboxes together, and answers (failures
// too: a silent resolver's name is not asked again at once) are cached for
// every sandbox. A lookup past a bound is answered NXDOMAIN at once (the
// DNS library answers every failure so).
const (
	dnsRate        = 100
	dnsBurst       = 200
	dnsPerNetwork  = 16
	dnsInFlight    = 128
	dnsCacheSize   = 4096
	dnsPositiveTTL = 30 * time.Second
	dnsNegativeTTL = 5 * time.Second
	// dnsWait is how long a lookup waits for a place in flight.
	dnsWait = time.Second
	// dnsTargets bounds the host names of one answer (MX, SRV, NS) that
	// are checked against the policy.
	dnsTargets = 8
)

var (
	errNoSuchHost = errors.New("no such host")
	// errDNSLimit: a lookup past the sandbox's rate or concurrency, or
	// the provider's; never cached.
	errDNSLimit = errors.New("dns lookups over their limit")
)

// dnsCache is the provider's cache of its resolver's answers, shared by
// every sandbox, and its bound on lookups in flight.
type dnsCache struct {
	mu      sync.Mutex
	entries map[dnsKey]dnsEntry
	flight  singleflight.Group
	slots   chan struct{}
	now     func() time.Time
}

type dnsKey struct{ kind, name string }

type dnsEntry struct {
	val     any
	err     error
	expires time.Time
}

func newDNSCache() *dnsCache {
	return &dnsCache{entries: map[dnsKey]dnsEntry{}, slots: make(chan struct{}, dnsInFlight), now: time.Now}
}

func (c *dnsCache) get(k dnsKey) (dnsEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || c.now().After(e.expires) {
		return dnsEntry{}, false
	}
	return e, true
}

func (c *dnsCache) put(k dnsKey, val any, err error) {
	ttl := dnsPositiveTTL
	if err != nil {
		ttl = dnsNegativeTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= dnsCacheSize {
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries { // still full: drop an eighth, at random (map order)
			if len(c.entries) < dnsCacheSize*7/8 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[k] = dnsEntry{val: val, err: err, expires: now.Add(ttl)}
}

// dnsLimits are one sandbox's bounds on its lookups.
type dnsLimits struct {
	rate  *rate.Limiter
	slots chan struct{}
}

func newDNSLimits() dnsLimits {
	return dnsLimits{rate: rate.NewLimiter(dnsRate, dnsBurst), slots: make(chan struct{}, dnsPerNetwork)}
}

// resolver is the DNS server's upstream: the provider's resolver, asked
// only what the policy allows, within the sandbox's bounds and through the
// cache, and answering only what the sandbox may reach.
type resolver struct{ n *Network }

func (r *resolver) refuse(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	return r.n.m.cfg.Policy == PolicyNone || name == Domain || strings.HasSuffix(name, "."+Domain)
}

// lookup answers kind of name from the cache, or asks ask within the
// sandbox's and the provider's bounds and caches the answer.
func (r *resolver) lookup(kind, name string, ask func(ctx context.Context) (any, error)) (any, error) {
	if r.refuse(name) {
		return nil, errNoSuchHost
	}
	c, k := r.n.m.dns, dnsKey{kind, strings.ToLower(name)}
	if e, ok := c.get(k); ok {
		return e.val, e.err
	}
	lim := r.n.dns
	if !lim.rate.Allow() {
		r.n.dnsRefused.Add(1)
		return nil, errDNSLimit
	}
	// A lookup waits a moment for a place (a client's own retry is
	// seconds away); once it has one it gets the whole timeout: the
	// provider's resolver keeps its sockets until its own timeout
	// whatever the context, so a lookup cut short would free its place
	// while its sockets live on.
	wait, stop := context.WithTimeout(r.n.ctx, dnsWait)
	defer stop()
	select {
	case lim.slots <- struct{}{}:
		defer func() { <-lim.slots }()
	case <-wait.Done():
		r.n.dnsRefused.Add(1)
		return nil, errDNSLimit
	}
	v, err, _ := c.flight.Do(k.kind+"\x00"+k.name, func() (any, error) {
		select {
		case c.slots <- struct{}{}:
			defer func() { <-c.slots }()
		case <-wait.Done():
			return nil, errDNSLimit
		}
		ctx, cancel := context.WithTimeout(r.n.ctx, dnsTimeout)
		defer cancel()
		v, err := ask(ctx)
		if r.n.ctx.Err() == nil { // not cut short by the sandbox's end
			c.put(k, v, err)
		}
		return v, err
	})
	if errors.Is(err, errDNSLimit) {
		r.n.dnsRefused.Add(1)
	}
	return v, err
}

// lookupIPAddr is the upstream's addresses of host, the policy aside.
func (r *resolver) lookupIPAddr(host string) ([]net.IPAddr, error) {
	v, err := r.lookup("ip", host, func(ctx context.Context) (any, error) { return r.n.m.upstream.LookupIPAddr(ctx, host) })
	addrs, _ := v.([]net.IPAddr)
	return addrs, err
}

// internalOnly says whether name resolves, and only to addresses the
// sandbox may not reach: such a name's other records (CNAME, MX, TXT, ...)
// are the provider's private network's business, not the sandbox's.
func (r *resolver) internalOnly(name string) bool {
	addrs, err := r.lookupIPAddr(name)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ip, valid := netip.AddrFromSlice(a.IP); valid && r.n.allowed(ip.Unmap()) {
			return false
		}
	}
	return len(addrs) > 0
}

func (r *resolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	addrs, err := r.lookupIPAddr(host)
	if err != nil {
		return nil, err
	}
	var ok []net.IPAddr
	for _, a := range addrs {
		if ip, valid := netip.AddrFromSlice(a.IP); valid && r.n.allowed(ip) {
			ok = append(ok, a)
		}
	}
	if len(ok) == 0 {
		return nil, errNoSuchHost
	}
	return ok, nil
}

func (r *resolver) LookupCNAME(_ context.Context, host string) (string, error) {
	v, err := r.lookup("cname", host, func(ctx context.Context) (any, error) { return r.n.m.upstream.LookupCNAME(ctx, host) })
	cname, _ := v.(string)
	if err != nil || r.internalOnly(host) || r.internalOnly(cname) {
		return "", errNoSuchHost
	}
	return cname, nil
}

func (r *resolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	v, err := r.lookup("mx", name, func(ctx context.Context) (any, error) { return r.n.m.upstream.LookupMX(ctx, name) })
	mxs, _ := v.([]*net.MX)
	if err != nil || r.internalOnly(name) {
		return nil, errNoSuchHost
	}
	return keepPublic(r, mxs, func(mx *net.MX) string { return mx.Host })
}

func (r *resolver) LookupNS(_ context.Context, name string) ([]*net.NS, error) {
	v, err := r.lookup("ns", name, func(ctx context.Context) (any, error) { return r.n.m.upstream.LookupNS(ctx, name) })
	nss, _ := v.([]*net.NS)
	if err != nil || r.internalOnly(name) {
		return nil, errNoSuchHost
	}
	return keepPublic(r, nss, func(ns *net.NS) string { return ns.Host })
}

func (r *resolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	v, err := r.lookup("srv", name, func(ctx context.Context) (any, error) {
		_, srvs, err := r.n.m.upstream.LookupSRV(ctx, service, proto, name)
		return srvs, err
	})
	srvs, _ := v.([]*net.SRV)
	if err != nil || r.internalOnly(name) {
		return "", nil, errNoSuchHost
	}
	srvs, err = keepPublic(r, srvs, func(s *net.SRV) string { return s.Target })
	return name, srvs, err
}

func (r *resolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	v, err := r.lookup("txt", name, func(ctx context.Context) (any, error) { return r.n.m.upstream.LookupTXT(ctx, name) })
	txts, _ := v.([]string)
	if err != nil || r.internalOnly(name) {
		return nil, errNoSuchHost
	}
	return txts, nil
}

// keepPublic drops the records whose host name resolves only to addresses
// the sandbox may not reach; it checks the first dnsTargets of them, and
// drops the rest.
func keepPublic[T any](r *resolver, recs []T, host func(T) string) ([]T, error) {
	var out []T
	for i, rec := range recs {
		if i == dnsTargets {
			break
		}
		if !r.internalOnly(host(rec)) {
			out = append(out, rec)
		}
	}
	if len(out) == 0 {
		return nil, errNoSuchHost
	}
	return out, nil
}
