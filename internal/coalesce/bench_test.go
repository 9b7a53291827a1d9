package coalesce

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// BenchmarkSSHChannel measures one SSH channel's throughput over loopback
// (64 KiB writes, as a tunnel or a bulk copy makes them), its connections
// plain and through Conn, in alternating rounds of the same run, and
// reports the ratio: what coalescing gains on this machine.
func BenchmarkSSHChannel(b *testing.B) {
	for b.Loop() {
		var plain, gathered float64
		for range 2 {
			plain += channelMbps(b, false)
			gathered += channelMbps(b, true)
		}
		b.ReportMetric(plain/2, "plain-Mbit/s")
		b.ReportMetric(gathered/2, "coalesced-Mbit/s")
		b.ReportMetric(gathered/plain, "ratio")
		b.Logf("SSH channel over loopback: plain %.0f Mbit/s, coalesced %.0f Mbit/s (%.2fx)", plain/2, gathered/2, gathered/plain)
	}
}

func channelMbps(b *testing.B, co bool) float64 {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	wrap := func(c net.Conn) net.Conn {
		if co {
			return New(c)
		}
		return c
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		cfg := &gossh.ServerConfig{NoClientAuth: true}
		cfg.AddHostKey(signer)
		sc, chans, reqs, err := gossh.NewServerConn(wrap(nc), cfg)
		if err != nil {
			return
		}
		defer sc.Close()
		go gossh.DiscardRequests(reqs)
		for nch := range chans {
			ch, _, err := nch.Accept()
			if err == nil {
				go io.Copy(io.Discard, ch)
			}
		}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	sc, chans, reqs, err := gossh.NewClientConn(wrap(raw), "bench", &gossh.ClientConfig{HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		b.Fatal(err)
	}
	c := gossh.NewClient(sc, chans, reqs)
	ch, _, err := c.OpenChannel("bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	start := time.Now()
	n := 0
	for time.Since(start) < 2*time.Second {
		if _, err := ch.Write(buf); err != nil {
			b.Fatal(err)
		}
		n += len(buf)
	}
	mbps := float64(n) * 8 / time.Since(start).Seconds() / 1e6
	c.Close()
	<-served
	return mbps
}
