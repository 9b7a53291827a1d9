package sshgate_test

import (
	"context"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/billing"
	"github.com/zennet/zennet/internal/testprovider"
	"github.com/zennet/zennet/lease"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
)

// A renter that takes hosts, then floods its channel with requests and
// reads none of the answers, stalls nothing: an operator's announcement
// to it returns at once, its hosts end (disconnected as a stalled renter,
// or unpaid) no later than the unpaid timeout, and the provider shuts down
// promptly. Before, the first answer that did not fit blocked the
// channel's writer, and the report loop (with enforcement), announcements
// and shutdown waited behind it.
func TestStalledRenter(t *testing.T) {
	const unpaid = 8 * time.Second
	p := testprovider.Start(t, lease.Capacity{Leases: 4, Memory: 4 << 30, CPUs: 4, Disk: 16 << 30}, func(c *billing.Config) {
		c.GraceIntervals = 1
		c.UnpaidTimeout = unpaid
	})
	client, err := gossh.Dial("tcp", p.Addr, &gossh.ClientConfig{User: "zennet", Auth: []gossh.AuthMethod{gossh.PublicKeys(newSigner(t))},
		HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ch, reqs, err := client.OpenChannel(proto.ChannelNegotiate, nil)
	if err != nil {
		t.Fatal(err)
	}
	go gossh.DiscardRequests(reqs)
	w, r := proto.NewWriter(ch), proto.NewReader(ch)
	demand := proto.Message{Type: proto.TypeDemand, Demand: &proto.Demand{Count: 3, Limits: proto.Limits{MemoryBytes: 128 << 20, CPUs: 1}, IntervalSeconds: 1}}
	if err := w.Send(demand); err != nil {
		t.Fatal(err)
	}
	if m, err := r.Next(); err != nil || m.Type != proto.TypeOffer || m.Offer.Count != 3 {
		t.Fatalf("offer: %+v, %v", m, err)
	}
	if err := w.Send(proto.Message{Type: proto.TypeAccept, Accept: &proto.Accept{Count: 3, Method: pay.MethodEmbedded}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(ids) < 3 {
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == proto.TypeError {
			t.Fatalf("accept: %v", m.Error)
		}
		if m.Type == proto.TypeLease {
			ids = append(ids, m.Lease.ID)
		}
	}
	granted := time.Now()
	// From here on it reads nothing, and asks and asks.
	go func() {
		for range 20000 {
			if w.Send(demand) != nil {
				return
			}
		}
	}()
	time.Sleep(3 * time.Second)

	announced := make(chan struct{})
	go func() {
		p.Gateway.Announce(ids[0], proto.LeaseState{ID: ids[0], State: proto.StatePaused, Reason: "operator"})
		close(announced)
	}()
	select {
	case <-announced:
	case <-time.After(2 * time.Second):
		t.Fatal("an announcement to a stalled renter did not return within 2s")
	}

	deadline := granted.Add(unpaid + 10*time.Second)
	for {
		live := 0
		for _, le := range p.Leases.List() {
			for _, id := range ids {
				if le.ID == id {
					live++
				}
			}
		}
		if live == 0 {
			t.Logf("the stalled renter's %d hosts ended %.1fs after the grant (unpaid timeout %s)", len(ids), time.Since(granted).Seconds(), unpaid)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the stalled renter's hosts still live %.0fs after the grant (unpaid timeout %s)", live, time.Since(granted).Seconds(), unpaid)
		}
		time.Sleep(200 * time.Millisecond)
	}

	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Gateway.Shutdown(sctx); err != nil {
		t.Fatalf("gateway shutdown with a stalled renter: %v after %s", err, time.Since(start))
	}
}
