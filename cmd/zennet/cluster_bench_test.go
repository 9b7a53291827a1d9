package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/zennet/zennet/internal/testenv"
)

// BenchmarkClusterNet measures the session network in one run, against two
// bare runsc sandboxes on a plain veth pair joined by a bridge (the
// no-zennet baseline): iperf3 TCP throughput (5 s, one stream) and a TCP
// ping-pong's round trip (1,000 one-byte exchanges) between two hosts on
// one provider and between hosts on two providers (the tunnel's SSH
// encryption is the price). Goals: one provider >= 0.7x the baseline's
// throughput, two >= 0.5x; round trip <= 2x. The image must have iperf3
// ('make test-image'; ZENNET_TEST_IMAGE).
//
// By hand: 'make build test-image', then
//
//	export ZENNET_RUNSC=$(ls ~/.cache/zennet/runsc/*/runsc | head -1) ZENNET_TEST_IMAGE=~/.cache/zennet/images/bookworm-cluster ZENNET_AGENT_BINARY=$PWD/bin/zennet
//	go test -run '^$' -bench ClusterNet -benchtime=1x -timeout 20m ./cmd/zennet
func BenchmarkClusterNet(b *testing.B) {
	image := os.Getenv("ZENNET_TEST_IMAGE")
	if image == "" {
		b.Fatal("ZENNET_TEST_IMAGE is not set: run 'make bench', which builds the test image with iperf3")
	}
	for b.Loop() {
		// Three rounds, each kind in turn. The ratios are each round's
		// against the bare run just before it, and their median: the
		// machine's speed drifts over a run (other work, its own
		// neighbours), and a ratio of medians taken at different moments
		// would put that drift in the figures.
		const rounds = 3
		var bareB, sameB, crossB, sameX, crossX, sameRX, crossRX []float64
		var bareR, sameR, crossR []time.Duration
		for range rounds {
			bb, br := bareNet(b, image)
			sb, sr := zennetNet(b, image, false)
			cb, cr := zennetNet(b, image, true)
			bareB, bareR = append(bareB, bb), append(bareR, br)
			sameB, sameR = append(sameB, sb), append(sameR, sr)
			crossB, crossR = append(crossB, cb), append(crossR, cr)
			sameX, crossX = append(sameX, sb/bb), append(crossX, cb/bb)
			sameRX, crossRX = append(sameRX, sr.Seconds()/br.Seconds()), append(crossRX, cr.Seconds()/br.Seconds())
		}
		b.Logf("rounds: bare %v Mbit/s %v; one provider %v %v; two providers %v %v",
			mbits(bareB), bareR, mbits(sameB), sameR, mbits(crossB), crossR)
		bareBps, sameBps, crossBps := median(bareB), median(sameB), median(crossB)
		bareRTT, sameRTT, crossRTT := median(bareR), median(sameR), median(crossR)
		sameRatio, crossRatio := median(sameX), median(crossX)
		sameRTTRatio, crossRTTRatio := median(sameRX), median(crossRX)
		b.ReportMetric(bareBps/1e6, "bare-Mbit/s")
		b.ReportMetric(sameBps/1e6, "same-Mbit/s")
		b.ReportMetric(crossBps/1e6, "cross-Mbit/s")
		b.ReportMetric(sameRatio, "same-ratio")
		b.ReportMetric(crossRatio, "cross-ratio")
		b.ReportMetric(bareRTT.Seconds()*1e6, "bare-rtt-us")
		b.ReportMetric(sameRTT.Seconds()*1e6, "same-rtt-us")
		b.ReportMetric(crossRTT.Seconds()*1e6, "cross-rtt-us")
		b.ReportMetric(sameRTTRatio, "same-rtt-ratio")
		b.ReportMetric(crossRTTRatio, "cross-rtt-ratio")
		b.Logf("throughput (medians; ratios the median of each round's): bare %.0f Mbit/s, one provider %.0f (%.2fx, goal >= 0.7x), two providers %.0f (%.2fx, goal >= 0.5x)",
			bareBps/1e6, sameBps/1e6, sameRatio, crossBps/1e6, crossRatio)
		b.Logf("round trip: bare %v, one provider %v (%.2fx, goal <= 2x), two providers %v (%.2fx, goal <= 2x)",
			bareRTT, sameRTT, sameRTTRatio, crossRTT, crossRTTRatio)
	}
}

// pingPong is run by python3 in a host: as "server PORT" it echoes one
// byte at a time; as "client HOST PORT N" it sends N one-byte messages,
// each after the answer to the one before, and prints the mean round trip
// in seconds.
const pingPong = `
import socket, sys, time
if sys.argv[1] == "server":
    s = socket.create_server(("0.0.0.0", int(sys.argv[2])))
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        b = c.recv(1)
        if not b:
            break
        c.sendall(b)
else:
    n = int(sys.argv[4])
    c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(50):
        c.sendall(b"x"); c.recv(1)
    t = time.perf_counter()
    for _ in range(n):
        c.sendall(b"x"); c.recv(1)
    print((time.perf_counter() - t) / n)
`

// measure runs an iperf3 server and the ping-pong server with server, then
// the clients with client against addr, and returns the throughput in
// bit/s and the mean round trip.
func measure(b *testing.B, server, client func(ctx context.Context, argv ...string) *exec.Cmd, addr string) (float64, time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(cmd *exec.Cmd) string {
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
		}
		return out.String()
	}
	run(server(ctx, "sh", "-c", "iperf3 -s -D -1 -p 5201 && (python3 -c '"+pingPong+"' server 5202 </dev/null >/dev/null 2>&1 &)"))
	var out string
	for try := 0; ; try++ {
		cmd := client(ctx, "iperf3", "-c", addr, "-p", "5201", "-t", "5", "-J")
		o, err := cmd.CombinedOutput()
		if err == nil {
			out = string(o)
			break
		}
		if try == 20 {
			b.Fatalf("iperf3 client: %v\n%s", err, o)
		}
		time.Sleep(250 * time.Millisecond)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.End.SumReceived.BitsPerSecond == 0 {
		b.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	rtt := run(client(ctx, "python3", "-c", pingPong, "client", addr, "5202", "1000"))
	secs, err := strconv.ParseFloat(strings.TrimSpace(rtt), 64)
	if err != nil {
		b.Fatalf("ping-pong: %v: %q", err, rtt)
	}
	return res.End.SumReceived.BitsPerSecond, time.Duration(secs * float64(time.Second))
}

// bareNet starts two runsc sandboxes, each in a network namespace of its
// own on a veth pair whose other ends are bridged in a third, and measures
// between them.
func bareNet(b *testing.B, image string) (float64, time.Duration) {
	runsc, _ := testenv.Runtime(b)
	// Names of this process and call: each round has its own.
	pid := fmt.Sprintf("%dr%d", os.Getpid()%100000, bareCalls.Add(1))
	br := fmt.Sprintf("znb%sbr", pid)
	sh := func(script string) {
		if out, err := exec.Command("sh", "-ec", script).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	names := []string{fmt.Sprintf("znb%sa", pid), fmt.Sprintf("znb%sb", pid)}
	b.Cleanup(func() {
		for _, n := range append(names, br) {
			exec.Command("ip", "netns", "del", n).Run()
		}
	})
	sh(fmt.Sprintf("ip netns add %[1]s; ip -n %[1]s link add br0 type bridge; ip -n %[1]s link set br0 up", br))
	for i, n := range names {
		sh(fmt.Sprintf(`ip netns add %[1]s
ip link add v%[3]d netns %[1]s type veth peer name p%[3]d netns %[2]s
ip -n %[2]s link set p%[3]d master br0
ip -n %[2]s link set p%[3]d up
ip -n %[1]s link set lo up
ip -n %[1]s link set v%[3]d name eth0
ip -n %[1]s addr add 10.252.0.%[4]d/24 dev eth0
ip -n %[1]s link set eth0 up`, n, br, i, i+1))
	}
	dir := b.TempDir()
	var ids []string
	for i, n := range names {
		id := fmt.Sprintf("znbare-%s-%d", pid, i)
		bundle := filepath.Join(dir, id)
		if err := os.MkdirAll(bundle, 0o700); err != nil {
			b.Fatal(err)
		}
		spec := bareSpec(image, "/var/run/netns/"+n)
		js, _ := json.Marshal(spec)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), js, 0o600); err != nil {
			b.Fatal(err)
		}
		root := filepath.Join(dir, "runsc")
		// A gofer namespace of its own, as the provider's: a shared one
		// stays mounted on ROOT/null-netns.
		flags := []string{"--root", root, "--network=sandbox", "--overlay2=root:memory", "--gofer-network-namespace=new"}
		// Its output to a file: a detached sandbox keeps the descriptors
		// it was given, and a pipe would never see its end.
		log, err := os.Create(filepath.Join(dir, id+".log"))
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(runsc, append(flags, "run", "--detach", "--bundle", bundle, id)...)
		cmd.Stdout, cmd.Stderr = log, log
		err = cmd.Run()
		log.Close()
		if err != nil {
			out, _ := os.ReadFile(log.Name())
			b.Fatalf("runsc run: %v\n%s", err, out)
		}
		ids = append(ids, id)
		b.Cleanup(func() { exec.Command(runsc, append(flags, "delete", "--force", id)...).Run() })
	}
	root := filepath.Join(dir, "runsc")
	execIn := func(id string) func(ctx context.Context, argv ...string) *exec.Cmd {
		return func(ctx context.Context, argv ...string) *exec.Cmd {
			return exec.CommandContext(ctx, runsc, append([]string{"--root", root, "--network=sandbox", "exec", id}, argv...)...)
		}
	}
	return measure(b, execIn(ids[1]), execIn(ids[0]), "10.252.0.2")
}

func bareSpec(image, netns string) *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: []string{"sleep", "infinity"},
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
			Cwd:  "/",
		},
		Root:     &specs.Root{Path: image},
		Hostname: "bare",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: netns},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
		},
	}
}

// zennetNet rents two hosts, on one provider or (cross) on two, and
// measures between them.
func zennetNet(b *testing.B, image string, cross bool) (float64, time.Duration) {
	dir, err := os.MkdirTemp("", "zcn")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	m := newBenchMarket(b, dir)
	defer m.stop(b)
	providers, per := 1, "2"
	if cross {
		providers, per = 2, "1"
	}
	var addrs []string
	for i := range providers {
		addrs = append(addrs, m.provide(b, "provider "+strconv.Itoa(i+1), "provide", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "p"+strconv.Itoa(i+1)),
			"--image", image, "--max-leases", per, "--calibration", "off", "--rate", "cpu_ns=1/1000000", "--json"))
	}
	args := []string{"-n", "2", "-m", "1G", "--json"}
	for _, a := range addrs {
		args = append(args, "--provider", a)
	}
	r, sshConfig := m.renter(b, args...)
	defer r.interrupt(time.Minute)
	on := func(host string) func(ctx context.Context, argv ...string) *exec.Cmd {
		return func(ctx context.Context, argv ...string) *exec.Cmd {
			quoted := make([]string, len(argv))
			for i, a := range argv {
				quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
			}
			cmd := exec.CommandContext(ctx, "ssh", "-F", sshConfig, "-T", "-o", "BatchMode=yes", host, "--", strings.Join(quoted, " "))
			cmd.Env = m.env
			return cmd
		}
	}
	return measure(b, on("zennet-2"), on("zennet-1"), "zennet-2")
}

// bareCalls counts bareNet's calls, for names of their own.
var bareCalls atomic.Int64

// median returns the middle of xs (which it sorts).
func median[T cmp.Ordered](xs []T) T {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func mbits(bps []float64) []int {
	out := make([]int, len(bps))
	for i, v := range bps {
		out[i] = int(v / 1e6)
	}
	return out
}
