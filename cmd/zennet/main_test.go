package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/rogpeppe/go-internal/testscript"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/cli"
	"github.com/zennet/zennet/control"
	"github.com/zennet/zennet/internal/sshsig"
	"github.com/zennet/zennet/internal/testenv"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/p2p"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/provider"
	"github.com/zennet/zennet/sandbox"
	"github.com/zennet/zennet/session"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"zennet": func() { os.Exit(cli.Main()) },
	})
}

func TestScripts(t *testing.T) {
	runScripts(t, testscript.Params{Dir: filepath.Join("..", "..", "testdata", "script")})
}

// TestScriptsAlone runs the scripts that measure the machine's load
// (idle-only providing) or that the load of other scripts would disturb
// (spot checks against a calibration of this machine made in the script,
// which itself loads the machine): 'make test' runs them after the others,
// and they run one after another.
func TestScriptsAlone(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "script-alone", "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata/script-alone: %v", err)
	}
	for _, f := range files {
		// t.Run returns once the script's own (parallel) subtest has.
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txtar"), func(t *testing.T) {
			runScripts(t, testscript.Params{Files: []string{f}})
		})
	}
}

// runScripts runs the scripts p names (Dir or Files) with zennet's
// environment and commands.
func runScripts(t *testing.T, p testscript.Params) {
	for _, tool := range []string{"ssh", "scp", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run 'make test', which installs the OpenSSH client", tool)
		}
	}
	testenv.Runtime(t)
	agent := testenv.AgentBinary(t)
	p.RequireExplicitExec = true
	p.Setup = func(env *testscript.Env) error {
		home := filepath.Join(env.WorkDir, "home")
		env.Setenv("HOME", home)
		env.Setenv("ZENNET_CONFIG_DIR", filepath.Join(env.WorkDir, "config"))
		env.Setenv("ZENNET_DATA_DIR", filepath.Join(env.WorkDir, "data"))
		env.Setenv("ZENNET_AGENT_BINARY", agent)
		for _, v := range []string{"ZENNET_RUNSC", "ZENNET_IMAGE", "ZENNET_CACHE_DIR", "ZENNET_TEST_IMAGE"} {
			env.Setenv(v, os.Getenv(v))
		}
		env.Setenv("SSHCONFIG", filepath.Join(env.WorkDir, "config", "ssh_config"))
		testdata, err := filepath.Abs(filepath.Join("..", "..", "testdata"))
		if err != nil {
			return err
		}
		env.Setenv("TESTDATA", testdata)
		// Providers offer a calibration set measured on the reference
		// machine rather than benchmark this one on first start (a
		// minute); calibration.txtar runs the real first start.
		env.Setenv("ZENNET_CALIBRATION", filepath.Join(testdata, "calibration", "systrap.json"))
		// A script that fails, or SIGKILLs a provider and ends before
		// restarting it, leaves sandboxes behind: destroy them.
		env.Defer(func() { destroySandboxes(env.T(), env.WorkDir) })
		// Deferred last, run first: a detached holder (zennet -n -d)
		// left running is no process of the script's; end it.
		env.Defer(func() { endHolders(env.T(), filepath.Join(env.WorkDir, "config")) })
		return os.MkdirAll(home, 0o700)
	}
	p.Cmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"waitprovider": cmdWaitProvider,
		"waithosts":    cmdWaitHosts,
		"hostport":     cmdHostPort,
		"leftovers":    cmdLeftovers,
		"randfile":     cmdRandFile,
		"scalescores":  cmdScaleScores,
		"freeport":     cmdFreePort,
		"silent":       cmdSilent,
		"waitport":     cmdWaitPort,
		"hostaddr":     cmdHostAddr,
		"waitusage":    cmdWaitUsage,
		"sessionof":    cmdSessionOf,
		"killwait":     cmdKillWait,
		"usagebelow":   cmdUsageBelow,
		"usagerate":    cmdUsageRate,
		"ledgersagree": cmdLedgersAgree,
		"tmuxwait":     cmdTmuxWait,
		"pushbad":      cmdPushBad,
		"netns":        cmdNetns,
		"nat":          cmdNat,
	}
	testscript.Run(t, p)
}

// destroySandboxes destroys every sandbox of the providers whose data dirs
// are in dir (its subdirectories, one or two levels down). It runs before
// testscript interrupts the script's background commands, so a provider
// still running is interrupted first and given time to end its leases
// itself: destroyed under it, they read as sandboxes that stopped on their
// own, which once sent a failure's reader the wrong way.
func destroySandboxes(t testscript.T, dir string) {
	var states []string
	for _, pat := range []string{"*/sandboxes", "*/*/sandboxes"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		states = append(states, m...)
	}
	for _, st := range states {
		stopProvider(filepath.Dir(st))
	}
	for _, st := range states {
		rt, err := sandbox.New(sandbox.Config{Runsc: os.Getenv("ZENNET_RUNSC"), Image: os.Getenv("ZENNET_IMAGE"), StateDir: st})
		if err != nil {
			t.Log(fmt.Sprintf("clean up %s: %v", st, err))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		sts, _ := rt.List(ctx)
		for _, s := range sts {
			if err := rt.Destroy(ctx, s.ID); err != nil {
				t.Log(fmt.Sprintf("clean up sandbox %s: %v", s.ID, err))
			}
		}
		cancel()
		rt.Close()
	}
}

// stopProvider interrupts the provider running on dataDir, if any, and
// waits (a minute at most) for it to end.
func stopProvider(dataDir string) {
	b, err := os.ReadFile(filepath.Join(dataDir, "provider.json"))
	if err != nil {
		return
	}
	var doc struct {
		Data struct {
			Pid int `json:"pid"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &doc) != nil || doc.Data.Pid <= 0 || syscall.Kill(doc.Data.Pid, syscall.SIGINT) != nil {
		return
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(doc.Data.Pid, 0) != nil {
			return
		}
	}
}

// endHolders ends the detached holders of the sessions of configDir that
// are still running: SIGTERM (they release their hosts), then, after a
// minute, SIGKILL.
func endHolders(t testscript.T, configDir string) {
	live, _ := session.Live(configDir)
	for _, r := range live {
		if !r.Detached {
			continue
		}
		t.Log(fmt.Sprintf("ending the holder of session %s (pid %d), left running", r.ID, r.Pid))
		syscall.Kill(r.Pid, syscall.SIGTERM)
		deadline := time.Now().Add(time.Minute)
		for alive(r.Pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		syscall.Kill(r.Pid, syscall.SIGKILL)
	}
}

// alive tells whether process pid is there and not a zombie (a holder
// is no child of the script's, and whoever adopted it may reap it late).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// sessionof VAR: put the id of the only running session in $VAR and its
// pid (its holder's, when detached) in $VAR_PID.
func cmdSessionOf(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: sessionof VAR")
	}
	live, err := session.Live(ts.Getenv("ZENNET_CONFIG_DIR"))
	if err != nil || len(live) != 1 {
		ts.Fatalf("sessionof: running sessions %+v (%v), want one", live, err)
	}
	ts.Setenv(args[0], live[0].ID)
	ts.Setenv(args[0]+"_PID", strconv.Itoa(live[0].Pid))
}

// killwait PID: SIGKILL process PID, not one the script started, and wait
// (a minute at most) until it is gone.
func cmdKillWait(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: killwait PID")
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid <= 1 {
		ts.Fatalf("killwait: bad pid %q", args[0])
	}
	ts.Check(syscall.Kill(pid, syscall.SIGKILL))
	for deadline := time.Now().Add(time.Minute); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			ts.Fatalf("process %d still there a minute after SIGKILL", pid)
		}
	}
}

// waitprovider DATADIR VAR: wait for the provider on DATADIR to be ready
// and put its address in $VAR.
func cmdWaitProvider(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitprovider DATADIR VAR (sets VAR to its gateway's address, VAR_MARKET to its market multiaddr)")
	}
	path := filepath.Join(ts.MkAbs(args[0]), "provider.json")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var doc struct {
				Data struct {
					Address string   `json:"address"`
					Market  []string `json:"market"`
					Pid     int      `json:"pid"`
				} `json:"data"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				ts.Fatalf("provider.json: %v", err)
			}
			// A file left by a provider that is gone is not this one's.
			if doc.Data.Pid > 0 && syscall.Kill(doc.Data.Pid, 0) == nil {
				ts.Setenv(args[1], doc.Data.Address)
				if len(doc.Data.Market) > 0 {
					ts.Setenv(args[1]+"_MARKET", doc.Data.Market[0])
				}
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("provider on %s not ready after 2m", args[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveHosts are the hosts of the running sessions that are ready.
func liveHosts(ts *testscript.TestScript) []session.Host {
	recs, err := session.Live(ts.Getenv("ZENNET_CONFIG_DIR"))
	if err != nil {
		ts.Fatalf("sessions: %v", err)
	}
	var hosts []session.Host
	for _, r := range recs {
		if r.Ready {
			hosts = append(hosts, r.Hosts...)
		}
	}
	return hosts
}

// waithosts N [ADDR]: wait until the running sessions hold N hosts in
// all, none of them of the provider at ADDR.
func cmdWaitHosts(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 && len(args) != 2 {
		ts.Fatalf("usage: waithosts N [ADDR]")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("waithosts: %v", err)
	}
	ok := func() bool {
		hosts := liveHosts(ts)
		for _, h := range hosts {
			if len(args) == 2 && h.Provider == args[1] {
				return false
			}
		}
		return len(hosts) == n
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			ts.Fatalf("after 2m: hosts %+v, want %d (none of %s)", liveHosts(ts), n, args[1:])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostport NAME VAR: put the local port of host NAME in $VAR.
func cmdHostPort(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: hostport NAME VAR")
	}
	for _, h := range liveHosts(ts) {
		if h.Name == args[0] {
			ts.Setenv(args[1], strconv.Itoa(h.LocalPort))
			return
		}
	}
	ts.Fatalf("no live host %s", args[0])
}

// leftovers DATADIR: fail if anything of a lease remains on this machine:
// sandboxes runsc knows, bundle or lease directories, cgroups, processes
// or mounts that name the data dir, or session files of the renter.
func cmdLeftovers(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: leftovers DATADIR")
	}
	dir := ts.MkAbs(args[0])
	var found []string
	out, err := exec.Command(ts.Getenv("ZENNET_RUNSC"), "--root", filepath.Join(dir, "sandboxes", "runsc"), "list", "--quiet").CombinedOutput()
	if err != nil {
		ts.Fatalf("runsc list: %v: %s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		found = append(found, "runsc sandboxes: "+s)
	}
	for _, sub := range []string{"sandboxes/bundles", "leases"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			found = append(found, sub+"/"+e.Name())
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*" + sandbox.CgroupParentFor(filepath.Join(dir, "sandboxes")) + "/*")
	for _, cg := range cgs {
		if fi, err := os.Stat(cg); err == nil && fi.IsDir() {
			found = append(found, "cgroup "+cg)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmd, _ := os.ReadFile(p)
		if bytes.Contains(cmd, []byte(filepath.Join(dir, "sandboxes"))) {
			found = append(found, "process "+p+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(mounts, []byte(dir)) {
		found = append(found, "mounts under "+dir)
	}
	sessions, _ := os.ReadDir(filepath.Join(ts.Getenv("ZENNET_CONFIG_DIR"), "sessions"))
	for _, e := range sessions {
		if e.IsDir() {
			found = append(found, "session dir "+e.Name())
		}
	}
	if len(found) > 0 {
		ts.Fatalf("left behind:\n%s", strings.Join(found, "\n"))
	}
}

// randfile NAME BYTES: write BYTES random bytes to NAME.
func cmdRandFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: randfile NAME BYTES")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("randfile: %v", err)
	}
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(ts.MkAbs(args[0]), b, 0o644); err != nil {
		ts.Fatalf("randfile: %v", err)
	}
	fmt.Fprintf(ts.Stdout(), "wrote %d bytes\n", n)
}

// scalescores IN FACTOR OUT: write calibration set IN to OUT with every
// step's score and work multiplied by FACTOR, unsigned (a provider claiming
// its machine does FACTOR times the work it measured).
func cmdScaleScores(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: scalescores IN FACTOR OUT")
	}
	f, err := strconv.ParseFloat(args[1], 64)
	if err != nil {
		ts.Fatalf("scalescores: %v", err)
	}
	set, err := bench.Decode([]byte(ts.ReadFile(args[0])))
	ts.Check(err)
	for i := range set.Steps {
		set.Steps[i].Score *= f
		set.Steps[i].Ops *= f
	}
	set.Signer, set.Signature = nil, nil
	var b bytes.Buffer
	ts.Check(set.Encode(&b))
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), b.Bytes(), 0o644))
}

// freeport VAR: put a free loopback TCP port in $VAR.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	// A port is handed out once per test process: the kernel may give the
	// port just closed to the next bind(0), and two servers of one script
	// cannot share it.
	freePortsMu.Lock()
	defer freePortsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ts.Fatalf("freeport: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !freePorts[port] {
			freePorts[port] = true
			ts.Setenv(args[0], strconv.Itoa(port))
			return
		}
	}
	ts.Fatalf("freeport: no port not handed out before")
}

// silent VAR: listen on a loopback port that accepts connections and never
// says a word (a provider that hangs, a firewall that drops after
// accepting), and put its HOST:PORT in $VAR; closed when the script ends.
func cmdSilent(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: silent VAR")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ts.Fatalf("silent: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	ts.Defer(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	ts.Setenv(args[0], l.Addr().String())
}

var (
	freePortsMu sync.Mutex
	freePorts   = map[int]bool{}
)

// waitport ADDR: wait until something listens on ADDR.
func cmdWaitPort(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitport ADDR")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", args[0], time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("nothing listens on %s: %v", args[0], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostaddr VAR: put this machine's first non-loopback IPv4 address in $VAR
// (its address on its LAN, as a sandbox would try to reach it).
func cmdHostAddr(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: hostaddr VAR")
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		ts.Fatalf("hostaddr: %v", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			ts.Setenv(args[0], ipn.IP.String())
			return
		}
	}
	ts.Fatalf("hostaddr: no non-loopback IPv4 address")
}

// netns VAR HOSTADDR NSADDR: make a network namespace joined to this one
// by a veth pair, HOSTADDR (CIDR) on this side and NSADDR inside, and no
// other route; its name goes in $VAR (nsenter --net=/var/run/netns/NAME). It is removed
// when the script ends.
func cmdNetns(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: netns VAR HOSTADDR NSADDR")
	}
	name := fmt.Sprintf("zn%d%s", os.Getpid()%100000, strings.ToLower(args[0]))
	if len(name) > 12 {
		name = name[:12]
	}
	host, inside := name+"h", name+"n"
	run := func(argv ...string) {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			ts.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	exec.Command("ip", "netns", "del", name).Run() // a crashed run's
	exec.Command("ip", "link", "del", host).Run()
	run("ip", "netns", "add", name)
	ts.Defer(func() {
		exec.Command("ip", "netns", "del", name).Run()
		exec.Command("ip", "link", "del", host).Run()
	})
	run("ip", "link", "add", host, "type", "veth", "peer", "name", inside)
	run("ip", "link", "set", inside, "netns", name)
	run("ip", "addr", "add", args[1], "dev", host)
	run("ip", "link", "set", host, "up")
	run("ip", "netns", "exec", name, "ip", "addr", "add", args[2], "dev", inside)
	run("ip", "netns", "exec", name, "ip", "link", "set", inside, "up")
	run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
	ts.Setenv(args[0], name)
}

// nat: an internet of network namespaces, with home routers.
//
//	nat internet                  a namespace whose bridge stands for the internet
//	nat public VAR ADDR/PREFIX    a machine on it at ADDR
//	nat home VAR WANADDR/PREFIX N a home router on it at WANADDR masquerading
//	                              (iptables) the LAN 192.168.N.0/24, whose one
//	                              machine, 192.168.N.2, is $VAR
//
// $VAR is the machine's namespace (nsenter --net=/var/run/netns/$VAR),
// $VAR_ADDR its address. Nothing on the internet routes to a LAN: a home
// machine reaches out through its router, and nothing reaches in. None of
// it is joined to this machine's own network, so the internet's addresses
// may be any (libp2p tells public addresses from private ones, and a NAT
// only shows on public ones). Everything is removed when the script ends.
func cmdNat(ts *testscript.TestScript, neg bool, args []string) {
	tag := fmt.Sprintf("zn%d", os.Getpid()%100000)
	inet := tag + "i"
	run := func(argv ...string) {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			ts.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	in := func(ns string, argv ...string) { run(append([]string{"ip", "netns", "exec", ns}, argv...)...) }
	newNS := func(name string) {
		exec.Command("ip", "netns", "del", name).Run() // a crashed run's
		run("ip", "netns", "add", name)
		ts.Defer(func() { exec.Command("ip", "netns", "del", name).Run() })
		in(name, "ip", "link", "set", "lo", "up")
	}
	// link joins namespaces a and b by a veth pair, named ifa in a and ifb
	// in b.
	link := func(a, ifa, b, ifb string) {
		x, y := tag+"x", tag+"y"
		exec.Command("ip", "link", "del", x).Run()
		run("ip", "link", "add", x, "type", "veth", "peer", "name", y)
		run("ip", "link", "set", x, "netns", a)
		run("ip", "link", "set", y, "netns", b)
		in(a, "ip", "link", "set", x, "name", ifa)
		in(b, "ip", "link", "set", y, "name", ifb)
		in(a, "ip", "link", "set", ifa, "up")
		in(b, "ip", "link", "set", ifb, "up")
	}
	onInternet := func(ns, addr string) {
		port := "p" + strings.TrimPrefix(ns, tag)
		link(inet, port, ns, "eth0")
		in(inet, "ip", "link", "set", port, "master", "br0")
		in(ns, "ip", "addr", "add", addr, "dev", "eth0")
	}
	switch {
	case len(args) == 1 && args[0] == "internet":
		newNS(inet)
		in(inet, "ip", "link", "add", "br0", "type", "bridge")
		in(inet, "ip", "link", "set", "br0", "up")
	case len(args) == 3 && args[0] == "public":
		ns := tag + strings.ToLower(args[1])
		newNS(ns)
		onInternet(ns, args[2])
		ts.Setenv(args[1], ns)
		ts.Setenv(args[1]+"_ADDR", strings.Split(args[2], "/")[0])
	case len(args) == 4 && args[0] == "home":
		n, err := strconv.Atoi(args[3])
		if err != nil || n < 1 || n > 254 {
			ts.Fatalf("nat home: N %q is not 1..254", args[3])
		}
		ns, router := tag+strings.ToLower(args[1]), tag+"r"+strings.ToLower(args[1])
		lan := fmt.Sprintf("192.168.%d.", n)
		newNS(router)
		newNS(ns)
		onInternet(router, args[2])
		link(router, "lan", ns, "eth0")
		in(router, "ip", "addr", "add", lan+"1/24", "dev", "lan")
		in(ns, "ip", "addr", "add", lan+"2/24", "dev", "eth0")
		in(ns, "ip", "route", "add", "default", "via", lan+"1")
		in(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		in(router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", lan+"0/24", "-o", "eth0", "-j", "MASQUERADE")
		ts.Setenv(args[1], ns)
		ts.Setenv(args[1]+"_ADDR", lan+"2")
	default:
		ts.Fatalf("usage: nat internet | nat public VAR ADDR/PREFIX | nat home VAR WANADDR/PREFIX N")
	}
}

// waitusage HOST COUNTER MIN: wait until the running session's latest
// accepted usage report of HOST has COUNTER >= MIN.
func cmdWaitUsage(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: waitusage HOST COUNTER MIN")
	}
	min, err := strconv.ParseUint(args[2], 10, 64)
	if err != nil {
		ts.Fatalf("waitusage: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	var last uint64
	for {
		if u, ok := latestUsage(ts, args[0]); ok {
			last = usageFigure(u, args[1])
			if last >= min {
				fmt.Fprintf(ts.Stdout(), "%s %s = %d\n", args[0], args[1], last)
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s %s = %d after 1m, want >= %d", args[0], args[1], last, min)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// usagebelow HOST COUNTER MAX: fail unless the latest accepted usage report
// of HOST has COUNTER <= MAX.
func cmdUsageBelow(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: usagebelow HOST COUNTER MAX")
	}
	max, err := strconv.ParseUint(args[2], 10, 64)
	if err != nil {
		ts.Fatalf("usagebelow: %v", err)
	}
	u, ok := latestUsage(ts, args[0])
	if !ok {
		ts.Fatalf("no usage of %s", args[0])
	}
	v := usageFigure(u, args[1])
	fmt.Fprintf(ts.Stdout(), "%s %s = %d\n", args[0], args[1], v)
	if v > max {
		ts.Fatalf("%s %s = %d > %d", args[0], args[1], v, max)
	}
}

// usagerate HOST COUNTER MAX: fail unless the latest accepted usage
// report of HOST has COUNTER <= MAX per second of the lease's life (from
// its start to the report): a quota's bound, whatever else the host did
// before.
func cmdUsageRate(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: usagerate HOST COUNTER MAX")
	}
	max, err := strconv.ParseFloat(args[2], 64)
	if err != nil {
		ts.Fatalf("usagerate: %v", err)
	}
	u, ok := latestUsage(ts, args[0])
	if !ok {
		ts.Fatalf("no usage of %s", args[0])
	}
	life := u.Time.Sub(u.Start).Seconds()
	if life <= 0 {
		ts.Fatalf("%s: report at %v, before the lease's start %v", args[0], u.Time, u.Start)
	}
	v := usageFigure(u, args[1])
	rate := float64(v) / life
	fmt.Fprintf(ts.Stdout(), "%s %s = %d in %.1fs: %.4g/s\n", args[0], args[1], v, life, rate)
	if rate > max {
		ts.Fatalf("%s %s = %.4g/s > %.4g/s", args[0], args[1], rate, max)
	}
}

// usageFigure is a meter counter of u, or one of its payment figures:
// billed_msat, paid_msat, credited_msat, due_msat.
func usageFigure(u session.Usage, name string) uint64 {
	switch name {
	case "billed_msat":
		return u.BilledMsat
	case "paid_msat":
		return u.PaidMsat
	case "credited_msat":
		return u.CreditedMsat
	case "due_msat":
		return u.DueMsat
	}
	return u.Counters[name]
}

// ledgersagree PROVIDER_DATADIR N: the renter's ledgers (every session of
// $ZENNET_CONFIG_DIR) and the provider's agree on every one of N leases:
// the same reports billed to the msat, all of it paid and counted, every
// account closed.
func cmdLedgersAgree(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: ledgersagree PROVIDER_DATADIR N")
	}
	want, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("ledgersagree: %v", err)
	}
	prov := map[string]pay.Receipt{}
	for _, r := range ledgerReceipts(ts, filepath.Join(args[0], "ledger.db")) {
		prov[r.Terms.Lease] = r
	}
	// Only this provider's leases: renters may have rented from others.
	keyPEM, err := os.ReadFile(filepath.Join(ts.MkAbs(args[0]), "host_key"))
	if err != nil {
		ts.Fatalf("ledgersagree: %v", err)
	}
	hostKey, err := gossh.ParsePrivateKey(keyPEM)
	if err != nil {
		ts.Fatalf("ledgersagree: host key: %v", err)
	}
	me := gossh.FingerprintSHA256(hostKey.PublicKey())
	files, _ := filepath.Glob(filepath.Join(ts.Getenv("ZENNET_CONFIG_DIR"), "ledger", "*.db"))
	n := 0
	for _, f := range files {
		for _, r := range ledgerReceipts(ts, f) {
			if r.Terms.Peer != me {
				continue
			}
			n++
			p, ok := prov[r.Terms.Lease]
			rs, ps := r.Status, p.Status
			switch {
			case !ok:
				ts.Fatalf("lease %s is on the renter's ledger only", r.Terms.Lease)
			case rs.Closed.IsZero() || ps.Closed.IsZero():
				ts.Fatalf("lease %s: account still open (renter closed %v, provider closed %v)", r.Terms.Lease, !rs.Closed.IsZero(), !ps.Closed.IsZero())
			case !r.Terms.Rates.Equal(&p.Terms.Rates):
				ts.Fatalf("lease %s: the renter's rates are not the provider's", r.Terms.Lease)
			case rs.LastSeq != ps.LastSeq || rs.Billed != ps.Billed || rs.Carry != ps.Carry:
				ts.Fatalf("lease %s: renter billed %d msat (+%s) up to report %d, provider %d msat (+%s) up to %d",
					r.Terms.Lease, rs.Billed, rs.Carry, rs.LastSeq, ps.Billed, ps.Carry, ps.LastSeq)
			case rs.Paid != ps.Paid || rs.Billed == 0 || rs.Unpaid >= max(rs.MinPayable, 1):
				ts.Fatalf("lease %s: billed %d msat, renter paid %d, provider counted %d, unpaid %d (minimum %d)",
					r.Terms.Lease, rs.Billed, rs.Paid, ps.Paid, rs.Unpaid, rs.MinPayable)
			}
			fmt.Fprintf(ts.Stdout(), "%s: %d reports, billed %d msat, paid %d msat\n", r.Terms.Lease, rs.Reports, rs.Billed, rs.Paid)
		}
	}
	if n != want {
		ts.Fatalf("the renter's ledgers hold %d leases, want %d", n, want)
	}
}

func ledgerReceipts(ts *testscript.TestScript, path string) []pay.Receipt {
	l, err := pay.Open(path, &pay.Options{Timeout: time.Second})
	if err != nil {
		ts.Fatalf("%v", err)
	}
	defer l.Close()
	rs, err := l.Receipts()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	return rs
}

// latestUsage returns the running sessions' latest usage of host.
func latestUsage(ts *testscript.TestScript, host string) (session.Usage, bool) {
	cfg := ts.Getenv("ZENNET_CONFIG_DIR")
	recs, err := session.Live(cfg)
	if err != nil {
		ts.Fatalf("sessions: %v", err)
	}
	for _, r := range recs {
		us, _ := session.ReadUsage(cfg, r.ID)
		for _, u := range us {
			if u.Name == host {
				return u, true
			}
		}
	}
	return session.Usage{}, false
}

// tmuxwait SOCKET TARGET REGEXP: wait (30s at most) until the tmux pane
// TARGET on server SOCKET shows text matching REGEXP (multi-line mode,
// so ^ and $ match at line ends); print the screen. With !, wait until
// it no longer does.
func cmdTmuxWait(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: tmuxwait SOCKET TARGET REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[2])
	if err != nil {
		ts.Fatalf("tmuxwait: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		screen, err := exec.Command("tmux", "-u", "-S", ts.MkAbs(args[0]), "capture-pane", "-p", "-t", args[1]).Output()
		if err == nil && re.Match(screen) != neg {
			fmt.Fprintf(ts.Stdout(), "%s", screen)
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("after 30s the pane %s %s %q (err %v):\n%s", args[1], map[bool]string{false: "does not show", true: "still shows"}[neg], args[2], err, screen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pushbad DATADIR forged|expired|weak BITS: a raw gossipsub peer (one
// that runs no validator) joins the market's topic at the market node of
// the provider on DATADIR and publishes a bad announcement (another
// provider's, that provider's own identity, signed by itself; an expired
// one; one short of BITS of work). The provider must reject it (its
// status counts it: a rejected message is never forwarded), then take a
// valid one from the same peer.
func cmdPushBad(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: pushbad DATADIR forged|expired|weak BITS")
	}
	kind := args[1]
	bits, err := strconv.ParseUint(args[2], 10, 8)
	if err != nil {
		ts.Fatalf("pushbad: bits: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctl, err := control.Dial(ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("pushbad: %v", err)
	}
	defer ctl.Close()
	status := func() provider.MarketStatus {
		st, err := ctl.Status(ctx)
		if err != nil || st.Market == nil {
			ts.Fatalf("pushbad: the provider's market status: %v", err)
		}
		return *st.Market
	}
	before := status()
	seeds, err := p2p.ParsePeers(before.Addrs[:1])
	if err != nil {
		ts.Fatalf("pushbad: %v", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	key, err := p2p.Key(priv)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	liar, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		ts.Fatalf("pushbad: %v", err)
	}
	defer liar.Close()
	ps, err := pubsub.NewGossipSub(ctx, liar, pubsub.WithMessageIdFn(p2p.MessageID))
	if err != nil {
		ts.Fatalf("pushbad: %v", err)
	}
	topic, err := ps.Join(p2p.Topic)
	if err != nil {
		ts.Fatalf("pushbad: %v", err)
	}
	if err := liar.Connect(ctx, seeds[0]); err != nil {
		ts.Fatalf("pushbad: reach the provider's market node: %v", err)
	}
	for !slices.Contains(topic.ListPeers(), seeds[0].ID) {
		if ctx.Err() != nil {
			ts.Fatalf("pushbad: the provider is not on the topic")
		}
		time.Sleep(50 * time.Millisecond)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	ann := func(addr string) market.Announcement {
		return market.Announcement{Provider: market.ProviderString(signer.PublicKey()), Address: addr,
			Capacity:         market.Capacity{Leases: 100, MemoryBytes: 1 << 40, CPUs: 1000, DiskBytes: 1 << 40},
			PricePerWorkMsat: 1, Score: 100, Methods: []string{"embedded"}, Seq: uint64(now.UnixNano()), Issued: now, Expires: now.Add(time.Hour)}
	}
	bad := ann("192.0.2.1:2222")
	switch kind {
	case "forged":
		// Claim a real provider's identity: this one's, as it answers.
		s, err := liar.NewStream(ctx, seeds[0].ID, p2p.AnnouncementProtocol)
		if err != nil {
			ts.Fatalf("pushbad: ask the provider for its announcement: %v", err)
		}
		s.CloseWrite()
		b, err := io.ReadAll(io.LimitReader(s, market.MaxAnnouncementSize+2))
		s.Close()
		own, derr := market.DecodeAnnouncement(b)
		if err != nil || derr != nil {
			ts.Fatalf("pushbad: the provider's announcement: %v %v", err, derr)
		}
		bad.Provider = own.Provider
	case "expired":
		bad.Issued, bad.Expires = now.Add(-2*time.Hour), now.Add(-time.Hour)
	case "weak":
	default:
		ts.Fatalf("pushbad: unknown kind %q", kind)
	}
	if kind == "weak" {
		for bad.Nonce = 0; market.Work(&bad) >= uint(bits); bad.Nonce++ {
		}
	} else if err := market.Mint(ctx, &bad, uint(bits)); err != nil {
		ts.Fatalf("%v", err)
	}
	if kind == "forged" {
		// Signed, but by the liar's key, not the provider's it names.
		if bad.Signature, err = sshsig.Sign(signer, market.AnnouncementNamespace, bad.CanonicalBytes()); err != nil {
			ts.Fatalf("%v", err)
		}
	} else if err := bad.Sign(signer); err != nil {
		ts.Fatalf("%v", err)
	}
	good := ann("192.0.2.77:2222")
	good.Seq = bad.Seq + 1
	if err := market.Mint(ctx, &good, uint(bits)); err != nil {
		ts.Fatalf("%v", err)
	}
	if err := good.Sign(signer); err != nil {
		ts.Fatalf("%v", err)
	}
	publish := func(a market.Announcement) {
		b, err := market.EncodeAnnouncement(a)
		if err != nil {
			ts.Fatalf("pushbad: encode: %v", err)
		}
		if err := topic.Publish(ctx, b); err != nil {
			ts.Fatalf("pushbad: publish: %v", err)
		}
	}
	await := func(what string, done func(provider.MarketStatus) bool) provider.MarketStatus {
		for {
			st := status()
			if done(st) {
				return st
			}
			if ctx.Err() != nil {
				ts.Fatalf("pushbad: %s: the provider's market status is %+v (before: %+v)", what, st, before)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish(bad)
	mid := await("the "+kind+" announcement was not rejected", func(st provider.MarketStatus) bool { return st.Rejected > before.Rejected })
	publish(good)
	await("a valid announcement of the same peer was not taken after", func(st provider.MarketStatus) bool { return st.Accepted > mid.Accepted })
	fmt.Fprintf(ts.Stdout(), "%s announcement rejected by the provider (rejected %d -> %d); a valid one taken after it\n", kind, before.Rejected, mid.Rejected)
}
