package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/zennet/zennet/internal/benchenv"
	"github.com/zennet/zennet/internal/testenv"
)

// BenchmarkMarketStart times renting N hosts from the market against
// starting N bare runsc sandboxes in the same run (the goal is a ratio of
// at most 1.2), and the time to a first host against the time to a first
// bare sandbox. Run with -benchtime=1x: each iteration is a whole cold
// start.
//
//   - bare-s: N minimal sandboxes created and started with runsc directly, 8
//     at a time as the lease manager does (sshgate's BenchmarkLeaseStart
//     baseline), until all are up; bare-first-s until the first is.
//   - market-s: four real provider processes on loopback, gossiping
//     announcements (the 2nd to 4th peer with the 1st), offering about N/4
//     leases each, all four known to the seed before the clock starts; then
//     from starting 'zennet -n N -m 128M --seed FIRST' (a cold renter: it
//     learns the market from the seed, chooses, negotiates, pays, writes
//     its ssh_config) until 'ssh -F ssh_config zennet-i true' has succeeded
//     on every host, 16 at a time.
//   - market-first-s: the same with -n 1, until its one host answers ssh.
//
// ratio is market-s / bare-s (the goal), ready-ratio market-s / bare-ready-s
// (bare sandboxes that have each run one command, as the hosts have run
// one over ssh), first-ratio market-first-s / bare-first-s.
// Each renter is ended with SIGINT (it releases its hosts and settles);
// the providers too, at the end, which destroy their sandboxes.
//
// By hand: 'make build', then
//
//	export ZENNET_RUNSC=$(ls ~/.cache/zennet/runsc/*/runsc | head -1) ZENNET_IMAGE=~/.cache/zennet/images/bookworm ZENNET_AGENT_BINARY=$PWD/bin/zennet
//	go test -run '^$' -bench 'MarketStart/N=8$' -benchtime=1x -timeout 20m ./cmd/zennet
func BenchmarkMarketStart(b *testing.B) {
	for _, n := range []int{8, 100} {
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				bare, bareReady, bareFirst := bareStart(b, n)
				m := startMarket(b, n)
				through, printed, spread := m.rent(b, n)
				first, firstPrinted, _ := m.rent(b, 1)
				m.stop(b)
				b.ReportMetric(bare.Seconds(), "bare-s")
				b.ReportMetric(bareReady.Seconds(), "bare-ready-s")
				b.ReportMetric(through.Seconds()/bareReady.Seconds(), "ready-ratio")
				b.ReportMetric(bareFirst.Seconds(), "bare-first-s")
				b.ReportMetric(through.Seconds(), "market-s")
				b.ReportMetric(first.Seconds(), "market-first-s")
				b.ReportMetric(through.Seconds()/bare.Seconds(), "ratio")
				b.ReportMetric(first.Seconds()/bareFirst.Seconds(), "first-ratio")
				b.Logf("hosts per provider: %v; the renter printed its hosts after %.2fs (-n %d) and %.2fs (-n 1)",
					spread, printed.Seconds(), n, firstPrinted.Seconds())
				b.Logf("ratio market/bare N=%d: %.2fx (goal <= 1.2x); against bare sandboxes that have run a command: %.2fx; first host %.2fs vs first bare sandbox %.2fs: %.2fx",
					n, through.Seconds()/bare.Seconds(), through.Seconds()/bareReady.Seconds(), first.Seconds(), bareFirst.Seconds(), first.Seconds()/bareFirst.Seconds())
			}
		})
	}
}

// BenchmarkHostStart measures what issue 16 asks of start-up, on one
// provider: the time from starting 'zennet -n N --provider ADDR' until
// 'ssh zennet-i true' has succeeded on every host (16 at a time), against
// starting N bare runsc sandboxes that each run one command, in the same
// run (ratio; goal <= 1.2x), and the first of -n 1 against the first bare
// sandbox (first-ratio; goal <= 1x).
//
//	go test -run '^$' -bench 'HostStart' -benchtime=1x -timeout 30m ./cmd/zennet
func BenchmarkHostStart(b *testing.B) {
	for _, n := range []int{25, 50} {
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			testenv.Runtime(b)
			for b.Loop() {
				_, bareReady, bareFirst := bareStart(b, n)
				dir, err := os.MkdirTemp("", "zhs")
				if err != nil {
					b.Fatal(err)
				}
				m := newBenchMarket(b, dir)
				calibration, err := filepath.Abs(filepath.Join("..", "..", "testdata", "calibration", "systrap.json"))
				if err != nil {
					b.Fatal(err)
				}
				addr := m.provide(b, "provider", "provide", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "p"),
					"--max-leases", strconv.Itoa(n+2), "--memory", strconv.Itoa(n+2)+"G", "--cpus", strconv.Itoa(n+2),
					"--disk", strconv.Itoa(4*(n+2))+"G", "--calibration", calibration, "--json")
				through, printed, _ := m.rentFrom(b, n, "--provider", addr)
				first, _, _ := m.rentFrom(b, 1, "--provider", addr)
				m.stop(b)
				os.RemoveAll(dir)
				b.ReportMetric(bareReady.Seconds(), "bare-ready-s")
				b.ReportMetric(through.Seconds(), "zennet-s")
				b.ReportMetric(through.Seconds()/bareReady.Seconds(), "ratio")
				b.ReportMetric(first.Seconds()/bareFirst.Seconds(), "first-ratio")
				b.Logf("N=%d on one provider: every host ssh-ready after %.2fs (hosts printed after %.2fs), %d bare sandboxes each ran a command after %.2fs: %.2fx (goal <= 1.2x); first host %.2fs vs first bare sandbox %.2fs: %.2fx (goal <= 1x)",
					n, through.Seconds(), printed.Seconds(), n, bareReady.Seconds(), through.Seconds()/bareReady.Seconds(),
					first.Seconds(), bareFirst.Seconds(), first.Seconds()/bareFirst.Seconds())
			}
		})
	}
}

// bareStart starts n bare sandboxes (benchenv.StartBare), runs a command
// in each, and destroys them. It returns how long starting all took, how
// long until a command had run in each (bare-ready-s), and the first.
func bareStart(b *testing.B, n int) (all, ready, first time.Duration) {
	bare := benchenv.StartBare(b, n)
	defer bare.Stop()
	start := time.Now()
	// Ready to run a command: one runsc exec in each, 16 at a time as the
	// market's ssh checks go.
	var eg errgroup.Group
	eg.SetLimit(16)
	for _, id := range bare.IDs {
		eg.Go(func() error {
			if out, err := bare.Runtime.Command(context.Background(), id, "/bin/true").CombinedOutput(); err != nil {
				return fmt.Errorf("exec in %s: %v: %s", id, err, out)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		b.Fatal(err)
	}
	return bare.All, bare.All + time.Since(start), bare.First
}

// benchMarket is four providers on loopback and a renter's environment.
// newBenchMarket returns a market whose zennet processes run in dir, with
// a HOME, config and data dir of their own there.
func newBenchMarket(b *testing.B, dir string) *benchMarket {
	m := &benchMarket{zennet: testenv.AgentBinary(b), dir: dir}
	m.env = append(os.Environ(), "HOME="+filepath.Join(dir, "home"), "ZENNET_CONFIG_DIR="+filepath.Join(dir, "config"),
		"ZENNET_DATA_DIR="+filepath.Join(dir, "data"))
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o700); err != nil {
		b.Fatal(err)
	}
	return m
}

// provide starts a provider (args: 'provide' and its flags, --json among
// them), keeps it among m's processes and returns its address.
func (m *benchMarket) provide(b *testing.B, name string, args ...string) string {
	p := m.start(b, name, args...)
	m.procs = append(m.procs, p)
	var info struct{ Address string }
	if err := p.next("provider", &info); err != nil {
		b.Fatal(err)
	}
	p.drain()
	return info.Address
}

// renter starts a renter (args: zennet's, --json among them), waits for
// its hosts and returns it (the caller interrupts it) and its ssh_config.
func (m *benchMarket) renter(b *testing.B, args ...string) (*proc, string) {
	r := m.start(b, "renter", args...)
	var doc struct {
		Files struct {
			SSHConfig string `json:"ssh_config"`
		} `json:"files"`
	}
	if err := r.next("hosts", &doc); err != nil {
		r.interrupt(time.Minute)
		b.Fatal(err)
	}
	r.drain()
	return r, doc.Files.SSHConfig
}

type benchMarket struct {
	zennet string
	dir    string
	env    []string
	seed   string
	procs  []*proc
	once   sync.Once
}

// proc is a zennet process the benchmark started.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *json.Decoder
	stdout *bufio.Reader
	stderr *lockedBuffer
	done   chan struct{} // closed when stdout is drained

	drainOnce, stopOnce sync.Once
	stopErr             error
}

// lockedBuffer is a process's stderr, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs the zennet binary with args in m's environment.
func (m *benchMarket) start(b *testing.B, name string, args ...string) *proc {
	cmd := exec.Command(m.zennet, args...)
	cmd.Env = m.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p.stdout = bufio.NewReader(stdout)
	p.out = json.NewDecoder(p.stdout)
	return p
}

// next reads p's next JSON document, which must be of kind; a renter's
// events are skipped.
func (p *proc) next(kind string, v any) error {
	var e envelope
	for e.Kind == "" || (e.Kind == "event" && kind != "event") {
		if err := p.out.Decode(&e); err != nil {
			return fmt.Errorf("%s: reading the %s document: %v\n%s stderr:\n%s", p.name, kind, err, p.name, p.stderr.String())
		}
	}
	if e.Kind != kind {
		return fmt.Errorf("%s: got a %q document, want %q", p.name, e.Kind, kind)
	}
	return json.Unmarshal(e.Data, v)
}

// drain discards the rest of p's stdout, so it never blocks writing.
func (p *proc) drain() {
	p.drainOnce.Do(func() {
		go func() {
			io.Copy(io.Discard, io.MultiReader(p.out.Buffered(), p.stdout))
			close(p.done)
		}()
	})
}

// interrupt ends p with SIGINT and waits for it, killing it after wait;
// it returns how p ended (the same on later calls).
func (p *proc) interrupt(wait time.Duration) error {
	p.stopOnce.Do(func() {
		p.drain()
		p.cmd.Process.Signal(syscall.SIGINT)
		exited := make(chan error, 1)
		go func() {
			<-p.done
			exited <- p.cmd.Wait()
		}()
		select {
		case p.stopErr = <-exited:
		case <-time.After(wait):
			p.cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
			}
			p.stopErr = fmt.Errorf("%s did not end within %v of SIGINT: killed", p.name, wait)
		}
	})
	return p.stopErr
}

// newBenchDir makes a market in a short directory of its own (the
// providers' control sockets live in their data dirs), stopped when the
// benchmark ends, and returns it with the directory and the calibration
// set its providers offer.
func newBenchDir(b *testing.B, prefix string) (*benchMarket, string, string) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		b.Fatal(err)
	}
	m := newBenchMarket(b, dir)
	b.Cleanup(func() { m.stop(b) })
	calibration, err := filepath.Abs(filepath.Join("..", "..", "testdata", "calibration", "systrap.json"))
	if err != nil {
		b.Fatal(err)
	}
	return m, dir, calibration
}

// startMarket starts four providers with room for about n leases in all,
// the 2nd to 4th peering with the 1st, and waits until the 1st knows all
// four announcements.
func startMarket(b *testing.B, n int) *benchMarket {
	testenv.Runtime(b)
	if _, err := exec.LookPath("ssh"); err != nil {
		b.Fatal("ssh not found: run 'make bench', which installs the OpenSSH client")
	}
	m, dir, calibration := newBenchDir(b, "zmb")
	// Room for a few more than n/4 leases each when n is large, so that a
	// provider slow to free a slot does not fail the rent; small enough
	// that every provider still gets hosts (a renter takes at most half
	// of N from one).
	per := (n+3)/4 + n/50
	for i := range 4 {
		args := []string{"provide", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "p"+strconv.Itoa(i+1)),
			"--max-leases", strconv.Itoa(per), "--memory", strconv.Itoa(per) + "G", "--cpus", strconv.Itoa(per),
			"--disk", strconv.Itoa(4*per) + "G", "--pow-bits", "8", "--announce-every", "2s", "--calibration", calibration, "--json"}
		if i > 0 {
			args = append(args, "--peer", m.seed)
		}
		addr := m.provide(b, "provider "+strconv.Itoa(i+1), args...)
		if i == 0 {
			m.seed = addr
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cmd := exec.Command(m.zennet, "providers", "--seed", m.seed, "--pow-bits", "8", "--json")
		cmd.Env = m.env
		out, err := cmd.Output()
		var e envelope
		var rows []struct{ Address string }
		if err == nil && json.Unmarshal(out, &e) == nil && json.Unmarshal(e.Data, &rows) == nil && len(rows) == 4 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 2m the seed knows %d providers, want 4 (%v)\n%s", len(rows), err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return m
}

// rent times 'zennet -n n' from its start until every host answers ssh,
// then ends the renter with SIGINT. It returns the time, the time until
// the renter printed its hosts, and how many hosts each provider gave.
func (m *benchMarket) rent(b *testing.B, n int) (took, printed time.Duration, spread map[string]int) {
	return m.rentFrom(b, n, "--seed", m.seed, "--pow-bits", "8")
}

// rentFrom is rent with the renter's source of providers (--seed or
// --provider and their flags).
func (m *benchMarket) rentFrom(b *testing.B, n int, from ...string) (took, printed time.Duration, spread map[string]int) {
	start := time.Now()
	args := append([]string{"-n", strconv.Itoa(n), "-m", "128M", "--timeout", "15m", "--json"}, from...)
	p := m.start(b, "renter -n "+strconv.Itoa(n), args...)
	b.Cleanup(func() { p.interrupt(time.Minute) })
	var doc struct {
		Hosts []struct {
			Name     string `json:"name"`
			Provider string `json:"provider"`
		} `json:"hosts"`
		Files struct {
			SSHConfig string `json:"ssh_config"`
		} `json:"files"`
	}
	err := p.next("hosts", &doc)
	printed = time.Since(start)
	p.drain()
	if err != nil {
		p.interrupt(time.Minute)
		b.Fatal(err)
	}
	if len(doc.Hosts) != n {
		p.interrupt(time.Minute)
		b.Fatalf("got %d hosts, want %d", len(doc.Hosts), n)
	}
	var g errgroup.Group
	g.SetLimit(16)
	spread = map[string]int{}
	for _, h := range doc.Hosts {
		spread[h.Provider]++
		g.Go(func() error { return m.ssh(doc.Files.SSHConfig, h.Name) })
	}
	err = g.Wait()
	took = time.Since(start)
	if err != nil {
		p.interrupt(time.Minute)
		b.Fatal(err)
	}
	if err := p.interrupt(2 * time.Minute); err != nil {
		b.Errorf("renter -n %d: %v\n%s", n, err, p.stderr.String())
	}
	return took, printed, spread
}

// ssh runs 'true' on host, trying a few times.
func (m *benchMarket) ssh(config, host string) error {
	var err error
	for try := range 5 {
		if try > 0 {
			time.Sleep(time.Duration(try) * 200 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, "ssh", "-F", config, "-o", "BatchMode=yes", host, "true")
		cmd.Env = m.env
		var out []byte
		out, err = cmd.CombinedOutput()
		cancel()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("ssh %s: %v: %s", host, err, strings.TrimSpace(string(out)))
	}
	return err
}

// stop ends the providers with SIGINT, checks that they left no sandbox,
// and removes their directory.
func (m *benchMarket) stop(b *testing.B) {
	m.once.Do(func() {
		var wg sync.WaitGroup
		errs := make([]error, len(m.procs))
		for i, p := range m.procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.interrupt(2 * time.Minute); err != nil {
					errs[i] = fmt.Errorf("%s: %v\n%s", p.name, err, p.stderr.String())
				}
			}()
		}
		wg.Wait()
		clean := true
		if err := errors.Join(errs...); err != nil {
			clean = false
			b.Error(err)
		}
		runsc, _ := testenv.Runtime(b)
		for i := range m.procs {
			root := filepath.Join(m.dir, "p"+strconv.Itoa(i+1), "sandboxes", "runsc")
			out, err := exec.Command(runsc, "--root", root, "list", "--quiet").CombinedOutput()
			if s := strings.TrimSpace(string(out)); err != nil || s != "" {
				clean = false
				b.Errorf("provider %d left sandboxes (%v): %s", i+1, err, s)
			}
		}
		if clean { // else left to look at
			os.RemoveAll(m.dir)
		}
	})
}

// BenchmarkMarketJoin times the real twenty-process market of
// market.txtar from nothing to a renter's first host (issue 18): twenty
// provider processes on loopback, the first started alone, the other
// nineteen at once as soon as it listens (each joining the market
// through it, given as HOST:PORT), and a renter started as soon as they
// all listen, with the first as its seed. join-s is from starting the
// first provider until the renter's one host answers ssh; known is how
// many providers the renter had found by then (its providers file).
func BenchmarkMarketJoin(b *testing.B) {
	testenv.Runtime(b)
	for b.Loop() {
		m, dir, calibration := newBenchDir(b, "zmj")
		args := func(i int) []string {
			a := []string{"provide", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "p"+strconv.Itoa(i)),
				"--max-leases", "2", "--price-per-work", strconv.Itoa(100 * i), "--pow-bits", "8", "--calibration", calibration, "--json"}
			if i > 1 {
				a = append(a, "--peer", m.seed)
			}
			return a
		}
		start := time.Now()
		m.seed = m.provide(b, "provider 1", args(1)...)
		var g errgroup.Group
		procs := make([]*proc, 19)
		for i := range procs {
			procs[i] = m.start(b, "provider "+strconv.Itoa(i+2), args(i+2)...)
		}
		m.procs = append(m.procs, procs...)
		for _, p := range procs {
			g.Go(func() error {
				var info struct{ Address string }
				err := p.next("provider", &info)
				p.drain()
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		listening := time.Since(start)
		r, config := m.renter(b, "-n", "1", "-m", "128M", "--seed", m.seed, "--pow-bits", "8", "--timeout", "5m", "--json")
		if err := m.ssh(config, "zennet-1"); err != nil {
			r.interrupt(time.Minute)
			b.Fatal(err)
		}
		joined := time.Since(start)
		if err := r.interrupt(time.Minute); err != nil {
			b.Errorf("renter: %v\n%s", err, r.stderr.String())
		}
		cmd := exec.Command(m.zennet, "providers", "--json", "--pow-bits", "8")
		cmd.Env = m.env
		out, err := cmd.Output()
		var e envelope
		var rows []struct{ Address string }
		if err != nil || json.Unmarshal(out, &e) != nil || json.Unmarshal(e.Data, &rows) != nil {
			b.Fatalf("zennet providers: %v\n%s", err, out)
		}
		m.stop(b)
		b.ReportMetric(listening.Seconds(), "listening-s")
		b.ReportMetric(joined.Seconds(), "join-s")
		b.ReportMetric(float64(len(rows)), "known")
		b.Logf("twenty providers listening %.2fs after the first started; the renter's first host answered ssh at %.2fs; it knew %d providers",
			listening.Seconds(), joined.Seconds(), len(rows))
	}
}
