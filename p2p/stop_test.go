package p2p

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/zennet/zennet/market"
)

// TestPeerHelperProcess is a market node in a process of its own for
// TestStopWhateverPeersDo: it prints its multiaddr and runs until killed.
func TestPeerHelperProcess(t *testing.T) {
	if os.Getenv("ZENNET_P2P_PEER") == "" {
		t.Skip("helper process for TestStopWhateverPeersDo")
	}
	key, _ := newKey(t)
	ctx := context.Background()
	var n atomic.Int64
	node, err := New(ctx, Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Server: true, MinBits: testBits,
		Every: 100 * time.Millisecond, Announce: func() market.Announcement {
			a := offer()
			a.Capacity.Leases = int(n.Add(1)) // a new offer each time: gossip never rests
			return a
		}})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("ADDR " + node.Addrs()[0].String() + "\n")
	node.Run(ctx)
}

// TestStopWhateverPeersDo: a node busy gossiping with peers stops within
// 5 s of its context's end after one peer is stopped (SIGSTOP: its
// connections stay open and silent), one killed, and one address accepts
// connections and never speaks.
func TestStopWhateverPeersDo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	var boot []peer.AddrInfo
	var procs []*exec.Cmd
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPeerHelperProcess$")
		cmd.Env = append(os.Environ(), "ZENNET_P2P_PEER=1")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			cmd.Wait()
		})
		line := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if s, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
					line <- s
				}
			}
		}()
		select {
		case s := <-line:
			pis, err := ParsePeers([]string{s})
			if err != nil {
				t.Fatal(err)
			}
			boot = append(boot, pis...)
		case <-time.After(30 * time.Second):
			t.Fatal("a peer process did not start within 30 s")
		}
	}
	// An address that takes connections and never answers.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	muteKey, _ := newKey(t)
	muteKK, _ := Key(muteKey)
	muteID, _ := peer.IDFromPrivateKey(muteKK)
	muteAddr, _ := ParsePeers([]string{"/ip4/127.0.0.1/tcp/" + portOf(mute.Addr()) + "/p2p/" + muteID.String()})
	boot = append(boot, muteAddr...)

	key, _ := newKey(t)
	var k atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := New(ctx, Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: boot, Server: true, MinBits: testBits,
		Every: 100 * time.Millisecond, Announce: func() market.Announcement {
			a := offer()
			a.Capacity.Leases = int(k.Add(1))
			return a
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	eventually(t, "the node hears every peer's announcements", func() bool { return n.Directory().Len() >= 3 })
	procs[0].Process.Signal(syscall.SIGSTOP)
	procs[1].Process.Kill()
	time.Sleep(time.Second) // gossip goes on with a stopped and a dead peer
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context's end")
	}
	n.Close()
	took := time.Since(start)
	t.Logf("stopped in %s with a peer stopped, one killed and one mute", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("stopping took %s, more than 5 s", took)
	}
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}
