// Package sandbox runs gVisor sandboxes with runsc: one OCI bundle per
// sandbox over a shared read-only root filesystem image, each sandbox writing
// to its own overlay, with memory and CPU limits from its spec.
package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/zennet/zennet/internal/cgroupv1"
	"github.com/zennet/zennet/netsandbox"
)

// ErrNotFound means no sandbox of that id exists.
var ErrNotFound = errors.New("sandbox not found")

// Config says where the runtime's parts are.
type Config struct {
	// Runsc is the path of the runsc binary.
	Runsc string
	// Image is the root filesystem directory shared read-only by every sandbox.
	Image string
	// StateDir holds runsc's state and one directory per sandbox (bundle and
	// overlay store).
	StateDir string
	// Platform is runsc's --platform; empty means runsc's default (systrap).
	Platform string
	// CgroupParent holds every sandbox's cgroup; empty means one of its
	// own derived from StateDir.
	CgroupParent string
	// Networks gives each sandbox a user-mode network of its own with the
	// egress policy; nil means no network but loopback.
	Networks *netsandbox.Manager
	// Log receives lifecycle events; nil discards them.
	Log *slog.Logger
	// CPUSet, if not empty, are the CPUs sandboxes with a quota are placed
	// on (by the least quota placed on each); empty means every CPU this
	// process may run on. The fairness benchmark puts all its sandboxes
	// on one CPU, so that its ratios compare configurations, not CPUs.
	CPUSet []int
}

// Mount binds a host path into the sandbox.
type Mount struct {
	Source      string
	Destination string
	ReadOnly    bool
}

// Spec is what one sandbox gets.
type Spec struct {
	// ID is the container id; callers use ids of one fixed length because
	// runsc resolves ids by prefix.
	ID string
	// MemoryBytes is the memory limit, which the sandbox sees as MemTotal.
	MemoryBytes int64
	// CPUs is the CPU quota in cores; 0 means unlimited.
	CPUs float64
	// Pids bounds the processes and threads inside (RLIMIT_NPROC); the
	// host cgroup's pids.max is a looser backstop. 0 means unbounded.
	Pids int64
	// DiskBytes bounds what the sandbox can write to its root overlay;
	// past it writes fail with ENOSPC. 0 means runsc's default.
	DiskBytes int64
	// Hostname inside the sandbox.
	Hostname string
	// Args is the argv of the sandbox's first process.
	Args []string
	// Env of the first process, KEY=VALUE.
	Env []string
	// Mounts are bound in addition to the image.
	Mounts []Mount
	// Cluster, if set, gives the sandbox eth1 on its rental session's
	// private network (needs Config.Networks); ClusterReceive gets every
	// frame the sandbox sends on it, ClusterPort takes frames for it.
	Cluster        *netsandbox.ClusterLink
	ClusterReceive func(frame []byte)
}

// Runtime creates, enters and destroys sandboxes.
type Runtime struct {
	cfg Config
	log *slog.Logger

	cpus *cpuPlacer // nil without a cpuset controller

	mu   sync.Mutex
	nets map[string]*netsandbox.Network
}

// New checks cfg and returns a runtime.
func New(cfg Config) (*Runtime, error) {
	if cfg.Runsc == "" {
		return nil, errors.New("no runsc binary configured")
	}
	if fi, err := os.Stat(cfg.Runsc); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("runsc %s is not an executable file; run 'make runsc' or pass --runsc", cfg.Runsc)
	}
	if err := CheckImage(cfg.Image); err != nil {
		return nil, err
	}
	if cfg.StateDir == "" || !filepath.IsAbs(cfg.StateDir) {
		return nil, fmt.Errorf("sandbox state dir %q must be an absolute path", cfg.StateDir)
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "runsc"), 0o700); err != nil {
		return nil, fmt.Errorf("create sandbox state dir: %w", err)
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = CgroupParentFor(cfg.StateDir)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runtime{cfg: cfg, log: log.With("subsystem", "sandbox"), nets: map[string]*netsandbox.Network{}}
	mount, err := cgroupv1.Mount("", "cpuset")
	if err == nil {
		err = fillCpusetParents(mount, cfg.CgroupParent)
	}
	if err == nil {
		r.cpus = newCPUPlacer(cfg.CPUSet)
	} else {
		r.log.Warn("no cpuset controller: a host's nproc says the machine's CPUs, not its quota's", "err", err)
	}
	return r, nil
}

func (r *Runtime) bundleDir(id string) string { return filepath.Join(r.cfg.StateDir, "bundles", id) }

// globalArgs are the runsc flags every subcommand gets. The gofers get a
// network namespace each, so runsc leaves no shared namespace mount behind.
func (r *Runtime) globalArgs() []string {
	args := []string{"--root", filepath.Join(r.cfg.StateDir, "runsc"), "--gofer-network-namespace=new", "--network=none"}
	if r.cfg.Networks != nil {
		args[len(args)-1] = "--network=sandbox"
	}
	if r.cfg.Platform != "" {
		args = append(args, "--platform="+r.cfg.Platform)
	}
	return args
}

// overlayArg puts the sandbox's writes in a file-backed overlay in its own
// bundle, bounded by the disk limit.
func (r *Runtime) overlayArg(s Spec) string {
	arg := "--overlay2=root:dir=" + filepath.Join(r.bundleDir(s.ID), "overlay")
	if s.DiskBytes > 0 {
		arg += ",size=" + strconv.FormatInt(s.DiskBytes, 10)
	}
	return arg
}

// ReaperArgs make a sandbox's first process a shell that waits forever and
// so reaps the orphans reparented to it (dash's wait reaps any child): for
// a sandbox with no resident agent (the benchmarks'). A lease's first
// process is its agent, which reaps as well (agent.ServeInit); a second Go
// process for reaping alone would cost each idle sandbox some 28 MiB,
// measured with BenchmarkLeaseStart.
//
// Its first act (DetachConsole) lets go of the stdio runsc gave it, the
// sandbox's console log on the host: kept, any process of the guest could
// reopen it through /proc/1/fd/1 and grow a host file without limit.
var ReaperArgs = []string{"/bin/sh", "-c", DetachConsole + `trap "exit 0" TERM INT; while :; do sleep 2147483647 & wait $!; done`}

// DetachConsole, at the head of a first process's shell script, points its
// stdio at the guest's /dev/null, so that no guest file refers to the
// host's console log (see ReaperArgs).
const DetachConsole = "exec </dev/null >/dev/null 2>&1; "

// MemoryOverhead is what a sandbox needs on the host beyond the memory its
// guest sees (the Sentry, the gofer, page tables): 64 MiB plus 1/16 of it.
func MemoryOverhead(guest int64) int64 { return 64<<20 + guest/16 }

// PidsBackstop is the host pids.max for a sandbox whose guest may have n
// tasks: the Sentry's and gofer's own threads come on top, and hitting
// pids.max crashes a gVisor sandbox, so it is a backstop that RLIMIT_NPROC
// inside keeps the guest from reaching.
func PidsBackstop(n int64) int64 { return 4*n + 512 }

func (r *Runtime) runsc(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.cfg.Runsc, append(r.globalArgs(), args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return out, fmt.Errorf("runsc %s: %w: %s", args[0], err, msg)
	}
	return out, nil
}

// Create builds the sandbox's bundle and starts it. On any error nothing of
// the sandbox is left behind.
func (r *Runtime) Create(ctx context.Context, s Spec) (err error) {
	if s.ID == "" || strings.ContainsAny(s.ID, "/. ") {
		return fmt.Errorf("invalid sandbox id %q", s.ID)
	}
	if len(s.Args) == 0 {
		return errors.New("sandbox spec has no args")
	}
	start := time.Now()
	dir := r.bundleDir(s.ID)
	if err := os.MkdirAll(filepath.Join(dir, "overlay"), 0o700); err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	defer func() {
		if err != nil {
			// Bounded: a runsc that hung creating the sandbox (the kvm
			// platform where KVM does not work) may hang answering too.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			r.destroy(cctx, s.ID)
		}
	}()
	spec := r.ociSpec(s)
	if cpus := r.cpus.place(s.ID, s.CPUs); cpus != "" {
		spec.Linux.Resources.CPU.Cpus = cpus
	}
	if s.Cluster != nil && (r.cfg.Networks == nil || s.ClusterReceive == nil) {
		return errors.New("a cluster link needs sandbox networks and a receiver")
	}
	if r.cfg.Networks != nil {
		n, err := r.cfg.Networks.CreateWith(ctx, s.ID, s.Cluster)
		if err != nil {
			return fmt.Errorf("sandbox network: %w", err)
		}
		r.mu.Lock()
		r.nets[s.ID] = n
		r.mu.Unlock()
		if s.Cluster != nil {
			if err := n.ServeCluster(s.ClusterReceive); err != nil {
				return err
			}
		}
		if err := r.attachNetwork(spec, dir, n); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	// The sandbox keeps the first process's stdio; give it a log file so
	// that nothing here waits on a pipe the sandbox holds open.
	logf, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, r.cfg.Runsc, append(append(r.globalArgs(), r.overlayArg(s)),
		"create", "--bundle", dir, "--pid-file", filepath.Join(dir, "pid"), s.ID)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("runsc create: %w: %s", err, lastLine(r.Logs(s.ID, 2048)))
	}
	// runsc sized the guest (MemTotal) from the cgroup's limit as it
	// created the sandbox; now give the host side its overhead on top.
	if s.MemoryBytes > 0 {
		if err := r.setLimit("memory", s.ID, "memory.limit_in_bytes", s.MemoryBytes+MemoryOverhead(s.MemoryBytes)); err != nil {
			return err
		}
	}
	if _, err := r.runsc(ctx, "start", s.ID); err != nil {
		return err
	}
	r.log.Info("sandbox started", "id", s.ID, "memory", s.MemoryBytes, "cpus", s.CPUs, "took", time.Since(start))
	return nil
}

func (r *Runtime) ociSpec(s Spec) *specs.Spec {
	env := append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
	}, s.Env...)
	caps := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
		"CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE",
		"CAP_SETFCAP",
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
	}
	for _, m := range s.Mounts {
		opts := []string{"rbind"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	res := &specs.LinuxResources{}
	if s.MemoryBytes > 0 {
		lim := s.MemoryBytes
		res.Memory = &specs.LinuxMemory{Limit: &lim}
	}
	if s.CPUs > 0 {
		period := uint64(100000)
		quota := int64(s.CPUs * float64(period))
		res.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	rlimits := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1 << 16, Soft: 1 << 16}}
	if s.Pids > 0 {
		rlimits = append(rlimits, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Hard: uint64(s.Pids), Soft: uint64(s.Pids)})
		backstop := PidsBackstop(s.Pids)
		res.Pids = &specs.LinuxPids{Limit: &backstop}
	}
	hostname := s.Hostname
	if hostname == "" {
		hostname = s.ID
	}
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0},
			Args: s.Args,
			Env:  env,
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits: rlimits,
		},
		Root:     &specs.Root{Path: r.cfg.Image, Readonly: false},
		Hostname: hostname,
		Mounts:   mounts,
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			Resources:   res,
			CgroupsPath: r.CgroupPath(s.ID),
		},
	}
}

// attachNetwork puts the sandbox in n's namespace and gives it n's DNS.
func (r *Runtime) attachNetwork(spec *specs.Spec, dir string, n *netsandbox.Network) error {
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			spec.Linux.Namespaces[i].Path = n.NetnsPath()
		}
	}
	for name, data := range map[string][]byte{"resolv.conf": n.ResolvConf(), "hosts": n.Hosts()} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/etc/" + name, Type: "bind", Source: path, Options: []string{"rbind", "ro"}})
	}
	return nil
}

// ClusterPort takes frames for sandbox id's cluster link; nil when it has
// none.
func (r *Runtime) ClusterPort(id string) interface{ Deliver(frame []byte) } {
	r.mu.Lock()
	n := r.nets[id]
	r.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.ClusterPort()
}

// SetHosts rewrites sandbox id's /etc/hosts: its network's names, then
// extra lines (the session's hosts). The file is rewritten in place, since
// the sandbox holds it by its inode; readers inside see the new names at
// their next lookup, and never a mix of old and new lines.
func (r *Runtime) SetHosts(id string, extra []byte) error {
	r.mu.Lock()
	n := r.nets[id]
	r.mu.Unlock()
	if n == nil {
		return fmt.Errorf("sandbox %s has no network", id)
	}
	b := append(n.Hosts(), extra...)
	f, err := os.OpenFile(filepath.Join(r.bundleDir(id), "hosts"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// A reader between the write and the truncation must not see the end
	// of the old names after the new ones: a shorter file is first written
	// at the old length, its tail blank lines, which /etc/hosts ignores.
	padded := b
	if info, err := f.Stat(); err == nil && info.Size() > int64(len(b)) {
		padded = append(append([]byte(nil), b...), bytes.Repeat([]byte{'\n'}, int(info.Size())-len(b))...)
	}
	if _, err := f.WriteAt(padded, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(b)))
}

// ErrNoNetwork: the sandbox has no network of its own.
var ErrNoNetwork = errors.New("sandbox has no network")

// DialGuest connects to port on sandbox id's own address from the
// provider's side of its network (see netsandbox.Network.DialGuest).
func (r *Runtime) DialGuest(ctx context.Context, id string, port uint16) (net.Conn, error) {
	r.mu.Lock()
	n := r.nets[id]
	r.mu.Unlock()
	if n == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoNetwork, id)
	}
	return n.DialGuest(ctx, port)
}

// NetCounters returns sandbox id's cumulative network bytes in and out; ok
// is false when it has no network.
func (r *Runtime) NetCounters(id string) (in, out uint64, ok bool) {
	r.mu.Lock()
	n := r.nets[id]
	r.mu.Unlock()
	if n == nil {
		return 0, 0, false
	}
	c := n.Counters()
	return c.BytesIn, c.BytesOut, true
}

// Command returns an unstarted command that runs argv inside sandbox id.
// The caller sets its stdio, starts and waits for it; cancelling ctx kills
// the runsc exec process and with it the process inside.
func (r *Runtime) Command(ctx context.Context, id string, argv ...string) *exec.Cmd {
	args := append(r.globalArgs(), "exec", "--cwd", "/root", id)
	cmd := exec.CommandContext(ctx, r.cfg.Runsc, append(args, argv...)...)
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Destroy kills sandbox id, deletes it and removes its bundle and overlay.
// Destroying a sandbox that does not exist is not an error.
func (r *Runtime) Destroy(ctx context.Context, id string) error {
	if id == "" || strings.ContainsAny(id, "/. ") {
		return fmt.Errorf("invalid sandbox id %q", id)
	}
	return r.destroy(ctx, id)
}

func (r *Runtime) destroy(ctx context.Context, id string) error {
	var errs []error
	if _, err := r.State(ctx, id); err == nil {
		if _, err := r.runsc(ctx, "delete", "--force", id); err != nil {
			errs = append(errs, err)
		}
	} else if !errors.Is(err, ErrNotFound) {
		errs = append(errs, err)
	}
	// Whatever runsc did not take down (a crash lost its state, a create
	// failed half way) goes with the cgroup.
	if err := r.removeCgroup(id); err != nil {
		errs = append(errs, err)
	}
	r.cpus.release(id)
	r.mu.Lock()
	n := r.nets[id]
	delete(r.nets, id)
	r.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close network: %w", err))
		}
	}
	if err := os.RemoveAll(r.bundleDir(id)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		r.log.Info("sandbox destroyed", "id", id)
	}
	return errors.Join(errs...)
}

// State is runsc's view of one sandbox.
type State struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

// State returns the state of sandbox id, or ErrNotFound.
func (r *Runtime) State(ctx context.Context, id string) (State, error) {
	var st State
	out, err := r.runsc(ctx, "state", id)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "no such file") {
			return st, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return st, err
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("runsc state: %w", err)
	}
	if st.ID != id { // runsc matches prefixes; never act on another sandbox
		return State{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return st, nil
}

// List returns the sandboxes runsc knows under this runtime's state dir.
func (r *Runtime) List(ctx context.Context) ([]State, error) {
	out, err := r.runsc(ctx, "list", "--format=json")
	if err != nil {
		return nil, err
	}
	var sts []State
	if len(bytes.TrimSpace(out)) == 0 || bytes.Equal(bytes.TrimSpace(out), []byte("null")) {
		return nil, nil
	}
	if err := json.Unmarshal(out, &sts); err != nil {
		return nil, fmt.Errorf("runsc list: %w", err)
	}
	return sts, nil
}

// Bundles lists the ids that have a bundle directory, whether or not runsc
// still knows them: what a crash may have left behind.
func (r *Runtime) Bundles() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(r.cfg.StateDir, "bundles"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Logs returns the tail of a sandbox's console log, for error messages.
func (r *Runtime) Logs(id string, max int) string {
	f, err := os.Open(filepath.Join(r.bundleDir(id), "console.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// Pause freezes every process of sandbox id (runsc pause): it keeps its
// memory and state but gets no CPU until Resume.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	_, err := r.runsc(ctx, "pause", id)
	return err
}

// Resume thaws a paused sandbox.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	_, err := r.runsc(ctx, "resume", id)
	return err
}
