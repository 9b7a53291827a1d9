package sshgate_test

import (
	"context"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/billing"
	"github.com/zennet/zennet/internal/testprovider"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sshgate"
)

// TestChannelFlood is the attack of a renter that opens connection after
// connection into one of its hosts and holds them open: past the host's
// cap each is refused at once with the reason, the provider's goroutines
// stay bounded, its other hosts answer at once, and closed connections
// free their places. Before the cap every one was served, each with its
// goroutines and buffers (and on a host with no network, a runsc exec
// process outside the lease's cgroup).
func TestChannelFlood(t *testing.T) {
	const flood = 3 * lease.DefaultMaxConnsPerLease
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, c, leases := rentUnpaid(ctx, t, 2)
	target, other := leases[0].ID, leases[1].ID
	greet := func(id string) (io.ReadWriteCloser, error) {
		st, err := c.OpenLease(ctx, id)
		if err != nil {
			return nil, err
		}
		banner := make([]byte, 7)
		if _, err := io.ReadFull(st, banner); err != nil || string(banner) != "SSH-2.0" {
			st.Close()
			t.Fatalf("host %s did not greet: %q, %v", id, banner, err)
		}
		return st, nil
	}
	before, procsBefore := runtime.NumGoroutine(), children(t)
	var (
		mu      sync.Mutex
		open    []io.ReadWriteCloser
		refused []error
		wg      sync.WaitGroup
	)
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := greet(target)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused = append(refused, err)
			} else {
				open = append(open, st)
			}
		}()
	}
	wg.Wait()
	during, procsDuring := runtime.NumGoroutine(), children(t)
	start := time.Now()
	st, err := greet(other)
	if err != nil {
		t.Fatalf("the renter's other host during the flood: %v", err)
	}
	answered := time.Since(start)
	st.Close()
	t.Logf("%d connections into one host: %d served, %d refused (%v); goroutines %d before, %d during; host processes started by the provider %d before, %d during; the other host answered in %s",
		flood, len(open), len(refused), refused[0], before, during, procsBefore, procsDuring, answered.Round(time.Millisecond))
	if procsDuring > procsBefore+2 {
		t.Errorf("the provider started %d host processes for the connections: they are served by the host's own agent, inside its sandbox", procsDuring-procsBefore)
	}
	if len(open) != lease.DefaultMaxConnsPerLease || len(refused) != flood-len(open) {
		t.Fatalf("%d served, %d refused; want %d served", len(open), len(refused), lease.DefaultMaxConnsPerLease)
	}
	for _, err := range refused {
		if !strings.Contains(err.Error(), "connections open, the most one host takes") {
			t.Fatalf("refusal without the reason: %v", err)
		}
	}
	// Each connection served holds a few goroutines on each side (this
	// process is the renter too); the refused hold none.
	if perConn := float64(during-before) / float64(len(open)); perConn > 12 {
		t.Errorf("%.1f goroutines per connection served (%d in all): the refused ones hold some too", perConn, during-before)
	}
	for _, st := range open {
		st.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := greet(target)
		if err == nil {
			st.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing every connection the host still refuses: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// children counts this process's child processes (a runsc exec per
// connection would be one each).
func children(t *testing.T) int {
	t.Helper()
	self := strconv.Itoa(os.Getpid())
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == self {
				n++
			}
		}
	}
	return n
}

// rentUnpaid starts a provider and rents n hosts from it with a renter
// that pays nothing, which keeps them for the test (a long grace).
func rentUnpaid(ctx context.Context, t *testing.T, n int) (testprovider.Provider, *sshgate.Client, []proto.Lease) {
	t.Helper()
	p := testprovider.Start(t, lease.Capacity{Leases: n, Memory: int64(n) << 30, CPUs: float64(n), Disk: int64(n) << 32}, func(c *billing.Config) {
		c.GraceIntervals = 100
	})
	c, err := sshgate.Dial(ctx, p.Addr, sshgate.ClientConfig{Signer: newSigner(t), HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_, leases, err := c.Rent(ctx, proto.Demand{Count: n, Limits: proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}, IntervalSeconds: 5},
		func(proto.Offer) (string, error) { return pay.MethodEmbedded, nil })
	if err != nil {
		t.Fatal(err)
	}
	return p, c, leases
}
