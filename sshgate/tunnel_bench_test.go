package sshgate

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/cluster"
	"github.com/zennet/zennet/internal/coalesce"
	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/proto"
)

// BenchmarkTunnel measures the session network's tunnel alone, in one
// process: full frames from a host on one provider's fabric to a host on
// another's, through ClusterTransport's SSH channel over loopback, at most
// 2 MiB in flight (a TCP window's worth), against the same bytes copied
// over a plain loopback TCP connection in the same run. It reports each
// one's throughput and CPU time per GB (user and system, the whole
// process): what the tunnel costs beyond the kernel's own copy, the figure
// to watch when changing the tunnel, steadier on a busy machine than
// BenchmarkClusterNet's end-to-end throughput.
func BenchmarkTunnel(b *testing.B) {
	const total = 1 << 30
	for b.Loop() {
		var tun, raw, tunCPU, rawCPU float64
		for range 2 {
			mbps, cpu := tunnelRun(b, total)
			tun, tunCPU = tun+mbps/2, tunCPU+cpu/2
			mbps, cpu = rawTCPRun(b, total)
			raw, rawCPU = raw+mbps/2, rawCPU+cpu/2
		}
		b.ReportMetric(tun, "tunnel-Mbit/s")
		b.ReportMetric(raw, "tcp-Mbit/s")
		b.ReportMetric(tunCPU, "tunnel-cpu-s/GB")
		b.ReportMetric(rawCPU, "tcp-cpu-s/GB")
		b.Logf("tunnel %.0f Mbit/s, %.2f CPU-s/GB; plain loopback TCP %.0f Mbit/s, %.2f CPU-s/GB (tunnel/TCP: %.2fx the CPU per byte)",
			tun, tunCPU, raw, rawCPU, tunCPU/rawCPU)
	}
}

// cpuTime is the process's user and system time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countPort counts the frames delivered to it and the bytes.
type countPort struct {
	frames, bytes atomic.Int64
	signal        chan struct{}
}

func (p *countPort) Deliver(frame []byte) {
	p.bytes.Add(int64(len(frame)))
	p.frames.Add(1)
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// tunnelPair is two providers' fabrics and transports, each with one host
// of a session, B served by the gateway's own listener (lease and
// cluster streams told apart from SSH) and answering the cluster stream
// request, A's tunnel to B open.
type tunnelPair struct {
	fa, fb       *cluster.Fabric
	ta, tb       *ClusterTransport
	key          cluster.SessionKey
	addrA, addrB netip.Addr
	fpA, fpB     string
	portA, portB *countPort
	listener     net.Listener
}

func newTunnelPair(tb testing.TB) *tunnelPair {
	sa, sb := testenv.Signer(tb), testenv.Signer(tb)
	p := &tunnelPair{fa: cluster.NewFabric(nil), fb: cluster.NewFabric(nil)}
	p.ta, p.tb = NewClusterTransport(sa, p.fa, nil), NewClusterTransport(sb, p.fb, nil)
	tb.Cleanup(p.ta.Close)
	tb.Cleanup(p.tb.Close)

	// B's gateway, as far as the tunnel needs it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.listener = l
	cfg := &gossh.ServerConfig{PublicKeyCallback: func(_ gossh.ConnMetadata, k gossh.PublicKey) (*gossh.Permissions, error) {
		return &gossh.Permissions{Extensions: map[string]string{verifiedKeyExt: string(k.Marshal())}}, nil
	}}
	cfg.AddHostKey(sb)
	sl := newSniffListener(l, newStartups(time.Minute), func(c net.Conn) { c.Close() }, func(c net.Conn) {
		proven := func() {
			if gc, ok := c.(*graceConn); ok {
				gc.release()
			}
		}
		p.tb.ServeStream(c, proven)
	})
	tb.Cleanup(func() { sl.Close() })
	go func() {
		for {
			c, err := sl.Accept()
			if err != nil {
				return
			}
			go func() {
				conn, chans, reqs, err := gossh.NewServerConn(coalesce.New(c), cfg)
				if err != nil {
					c.Close()
					return
				}
				defer conn.Close()
				go func() {
					for r := range reqs {
						ok, payload := false, []byte(nil)
						if r.Type == proto.RequestClusterStream {
							ok, payload = p.tb.streamRequest(VerifiedKey(conn), r.Payload)
						}
						r.Reply(ok, payload)
					}
				}()
				for nc := range chans {
					go p.tb.Serve(conn, nc, nil)
				}
			}()
		}
	}()

	p.key = cluster.SessionKey{Renter: "renter", Session: "bench"}
	subnet := netip.MustParsePrefix("10.9.0.0/16")
	p.addrA, p.addrB = netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2")
	p.fpA, p.fpB = gossh.FingerprintSHA256(sa.PublicKey()), gossh.FingerprintSHA256(sb.PublicKey())
	members := []cluster.Member{
		{Name: "zennet-1", Addr: p.addrA, Lease: "la", Provider: p.fpA, Endpoint: "127.0.0.1:1", Slots: 1},
		{Name: "zennet-2", Addr: p.addrB, Lease: "lb", Provider: p.fpB, Endpoint: l.Addr().String(), Slots: 1},
	}
	m := cluster.Membership{Session: p.key.Session, Subnet: subnet, Seq: 1, Expires: time.Now().Add(time.Hour), Members: members}
	p.portA, p.portB = &countPort{signal: make(chan struct{}, 1)}, &countPort{signal: make(chan struct{}, 1)}
	for _, h := range []struct {
		f     *cluster.Fabric
		lease string
		addr  netip.Addr
		port  cluster.Port
	}{{p.fa, "la", p.addrA, p.portA}, {p.fb, "lb", p.addrB, p.portB}} {
		if _, err := h.f.Attach(h.lease, p.key, subnet, h.addr, h.port); err != nil {
			tb.Fatal(err)
		}
		if err := h.f.SetMembership(p.key, m); err != nil {
			tb.Fatal(err)
		}
	}
	if st := p.ta.Ensure(p.key, members[1:]); st[0].Path != proto.PathDirect {
		tb.Fatalf("tunnel: %+v", st)
	}
	for deadline := time.Now().Add(10 * time.Second); p.tb.path(p.key, p.fpA) != proto.PathDirect; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("B never registered the tunnel")
		}
	}
	return p
}

// streams returns how many streams each side has for the session.
func (p *tunnelPair) streams() (a, b int) {
	count := func(t *ClusterTransport, peer string) (n int) {
		t.mu.Lock()
		defer t.mu.Unlock()
		for tn := range t.tunnels[tunnelKey{peer, p.key}] {
			if tn.stream != nil {
				n++
			}
		}
		return n
	}
	return count(p.ta, p.fpB), count(p.tb, p.fpA)
}

// frame returns a full IPv4 frame from src to dst.
func ipFrame(src, dst netip.Addr, size int) []byte {
	frame := make([]byte, 14+size)
	binary.BigEndian.PutUint16(frame[12:14], 0x0800)
	ip := frame[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(size))
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], src.AsSlice())
	copy(ip[16:20], dst.AsSlice())
	return frame
}

// tunnelRun sends total bytes of full frames from a host of provider A to
// one of provider B and returns the throughput in Mbit/s and CPU-s per GB.
func tunnelRun(b *testing.B, total int) (float64, float64) {
	p := newTunnelPair(b)
	frame := ipFrame(p.addrA, p.addrB, cluster.MTU)
	port := p.portB
	const window = 2 << 20 / (14 + cluster.MTU)
	n := int64(total / len(frame))
	cpu0, t0 := cpuTime(b), time.Now()
	for sent := int64(0); sent < n; {
		for sent-port.frames.Load() >= window {
			select {
			case <-port.signal:
			case <-time.After(10 * time.Second):
				b.Fatalf("stalled: %d frames sent, %d delivered, %d dropped", sent, port.frames.Load(), p.fa.Dropped())
			}
		}
		p.fa.FromHost("la", frame)
		sent++
	}
	for port.frames.Load() < n {
		select {
		case <-port.signal:
		case <-time.After(10 * time.Second):
			b.Fatalf("stalled at the end: %d of %d delivered", port.frames.Load(), n)
		}
	}
	elapsed, cpu := time.Since(t0), cpuTime(b)-cpu0
	bytes := float64(port.bytes.Load())
	return bytes * 8 / elapsed.Seconds() / 1e6, cpu.Seconds() / (bytes / 1e9)
}

// rawTCPRun copies total bytes in writes of a full frame over a loopback
// TCP connection and returns the throughput in Mbit/s and CPU-s per GB.
func rawTCPRun(b *testing.B, total int) (float64, float64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- 0
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 14+cluster.MTU)
	cpu0, t0 := cpuTime(b), time.Now()
	for sent := 0; sent+len(buf) <= total; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	n := <-got
	elapsed, cpu := time.Since(t0), cpuTime(b)-cpu0
	return float64(n) * 8 / elapsed.Seconds() / 1e6, cpu.Seconds() / (float64(n) / 1e9)
}
