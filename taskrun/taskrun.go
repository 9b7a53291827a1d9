// Package taskrun is 'zennet run': it rents hosts for K tasks (R
// replicas each, on different providers where it can), runs a command on
// every host over ssh with the task's environment, streams and keeps its
// output, copies back its files, and compares replicas.
package taskrun

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zennet/zennet/renter"
	"github.com/zennet/zennet/session"
)

// RemoteResultsDir is the directory, inside each host, that a task runs
// in and whose contents are copied back as the task's results.
const RemoteResultsDir = "/root/zennet-results"

// Config is a run: the hosts to rent (Rent.Count is Tasks*Replicas), the
// command, and where its results go.
type Config struct {
	Rent     renter.Config
	Tasks    int
	Replicas int
	Command  []string
	// ResultsDir receives the tasks' output and files ("": a new
	// ./zennet-results-SESSION).
	ResultsDir        string
	AllowDisagreement bool
	// Stdout and Stderr receive the commands' output, each line prefixed
	// with its host's name.
	Stdout, Stderr io.Writer
}

// Run is a run's rented hosts and its tasks, placed.
type Run struct {
	cfg      Config
	rentals  []*renter.Rental
	hosts    []session.Host
	configs  map[string]string // ssh_config by host name
	sessions []string
	dir      string
	tasks    []*Task
	// Shared counts the tasks whose replicas share a provider.
	Shared int
}

// Sessions are the ids of the run's sessions (one per provider asked in
// turn with replicas, else one).
func (r *Run) Sessions() []string { return r.sessions }

// Dir is the results directory.
func (r *Run) Dir() string { return r.dir }

// Hosts is how many hosts the run holds.
func (r *Run) Hosts() int { return len(r.hosts) }

// rent rents the run's hosts. With replicas and several providers each
// provider is asked for its share of the hosts in turn (the others
// standing in for what it cannot give), so that a task's replicas can be
// on different providers: one rental per provider.
func rent(ctx context.Context, cfg Config) ([]*renter.Rental, error) {
	ps := cfg.Rent.Providers
	if cfg.Replicas == 1 || len(ps) < 2 {
		r, err := renter.Rent(ctx, cfg.Rent)
		if err != nil {
			return nil, err
		}
		return []*renter.Rental{r}, nil
	}
	var rs []*renter.Rental
	n := cfg.Rent.Count
	for i, p := range ps {
		share := n / len(ps)
		if i < n%len(ps) {
			share++
		}
		if share == 0 {
			continue
		}
		rc := cfg.Rent
		rc.Count = share
		rc.Providers = append([]string{p}, slices.Delete(slices.Clone(ps), i, i+1)...)
		r, err := renter.Rent(ctx, rc)
		if err != nil {
			for _, r := range rs {
				r.Release(context.WithoutCancel(ctx), 30*time.Second)
			}
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// Rent rents the run's hosts, prepares the results directory and places
// the tasks' replicas on the hosts.
func Rent(ctx context.Context, cfg Config) (*Run, error) {
	rentals, err := rent(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r := &Run{cfg: cfg, rentals: rentals, configs: map[string]string{}}
	for _, rl := range rentals {
		for _, h := range rl.Hosts() {
			r.hosts = append(r.hosts, h)
			r.configs[h.Name] = rl.Files().SSHConfig
		}
		r.sessions = append(r.sessions, rl.SessionID())
	}
	dir := cfg.ResultsDir
	if dir == "" {
		dir = "zennet-results-" + r.sessions[0]
		if err := PrepareResultsDir(dir); err != nil {
			_, rerr := r.Release(ctx)
			return nil, errors.Join(err, rerr)
		}
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	r.dir = dir
	providers := make([]string, len(r.hosts))
	for i, h := range r.hosts {
		providers[i] = h.Provider
	}
	for t, s := range assignReplicas(providers, cfg.Tasks, cfg.Replicas) {
		seen := map[string]bool{}
		for ri, hi := range s {
			h := r.hosts[hi]
			seen[h.Provider] = true
			label := taskLabel(t+1, ri+1, cfg.Replicas)
			r.tasks = append(r.tasks, &Task{Task: t + 1, Replica: ri + 1, Host: h.Name, Provider: h.Provider, LeaseID: h.LeaseID, ExitCode: -1,
				Results: filepath.Join(dir, label), Stdout: filepath.Join(dir, label+".stdout"), Stderr: filepath.Join(dir, label+".stderr"), label: label,
				limit: resultsLimit(h.Limits.DiskBytes)})
		}
		if len(seen) < len(s) {
			r.Shared++
		}
	}
	return r, nil
}

// Execute runs every task at once and waits for them all (or for ctx to
// end: then the run is interrupted), and returns the run document: exit
// codes, digests, and the replicas that disagree.
func (r *Run) Execute(ctx context.Context) *Doc {
	cfg := r.cfg
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, tr := range r.tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := [][2]string{{"ZENNET_TASK", strconv.Itoa(tr.Task)}, {"ZENNET_TASKS", strconv.Itoa(cfg.Tasks)},
				{"ZENNET_REPLICA", strconv.Itoa(tr.Replica)}, {"ZENNET_REPLICAS", strconv.Itoa(cfg.Replicas)},
				{"ZENNET_RESULTS", RemoteResultsDir}}
			runTask(ctx, tr, r.configs[tr.Host], remoteScript(cfg.Command, env),
				&linePrefixer{mu: &mu, w: cfg.Stdout, prefix: "[" + tr.Host + "] "},
				&linePrefixer{mu: &mu, w: cfg.Stderr, prefix: "[" + tr.Host + "] "})
		}()
	}
	wg.Wait()
	interrupted := ctx.Err() != nil
	doc := &Doc{Session: r.sessions[0], Sessions: r.sessions, Command: cfg.Command, Count: cfg.Tasks, Replicas: cfg.Replicas, ResultsDir: r.dir,
		Interrupted: interrupted, Tasks: make([]Task, len(r.tasks)), Disagreements: []Disagreement{}}
	for i, tr := range r.tasks {
		doc.Tasks[i] = *tr
	}
	if !interrupted {
		doc.Disagreements = compareReplicas(doc.Tasks)
	}
	doc.OK = !interrupted && len(doc.Failed(cfg.AllowDisagreement)) == 0
	return doc
}

// Failed lists, in order, the tasks that failed: a replica that did not
// exit 0, or (unless allowDisagreement) replicas that disagree.
func (d *Doc) Failed(allowDisagreement bool) []int {
	failed := map[int]bool{}
	for _, tr := range d.Tasks {
		if tr.ExitCode != 0 || tr.Error != "" {
			failed[tr.Task] = true
		}
	}
	if !allowDisagreement {
		for _, dg := range d.Disagreements {
			failed[dg.Task] = true
		}
	}
	return slices.Sorted(maps.Keys(failed))
}

// Label names a task's replica in file names and tables: "3", or "3-r2"
// with replicas.
func (t Task) Label() string { return t.label }

// Release ends every rental of the run and returns their receipts.
func (r *Run) Release(ctx context.Context) ([]renter.Receipt, error) {
	var errs []error
	var receipts []renter.Receipt
	for _, rl := range r.rentals {
		if err := rl.Release(context.WithoutCancel(ctx), 30*time.Second); err != nil {
			errs = append(errs, err)
		}
		receipts = append(receipts, rl.Receipts()...)
	}
	return receipts, errors.Join(errs...)
}

func taskLabel(task, replica, replicas int) string {
	if replicas == 1 {
		return strconv.Itoa(task)
	}
	return fmt.Sprintf("%d-r%d", task, replica)
}

// ErrResultsDir means the results directory cannot be used.
var ErrResultsDir = errors.New("results directory")

type resultsDirError struct{ msg string }

func (e resultsDirError) Error() string        { return e.msg }
func (e resultsDirError) Is(target error) bool { return target == ErrResultsDir }

// PrepareResultsDir creates dir, refusing one that holds files: a run
// never overwrites another's results.
func PrepareResultsDir(dir string) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return resultsDirError{fmt.Sprintf("--results %s already holds files (%s, ...): choose another directory or remove it", dir, ents[0].Name())}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return resultsDirError{fmt.Sprintf("--results: %v", err)}
	}
	return nil
}

// assignReplicas places replica r of task t on a host: slots[t][r] is an
// index into providers, which names each host's provider. The replicas of a
// task go to different providers whenever the hosts allow it: task by
// task, each replica takes a host of the provider, not yet used by the
// task, with the most hosts left (the first such provider on a tie), and
// the provider's first host left. len(providers) must be tasks*replicas.
func assignReplicas(providers []string, tasks, replicas int) [][]int {
	var order []string
	left := map[string][]int{}
	for i, p := range providers {
		if _, ok := left[p]; !ok {
			order = append(order, p)
		}
		left[p] = append(left[p], i)
	}
	slots := make([][]int, tasks)
	for t := range slots {
		used := map[string]bool{}
		for range replicas {
			best := ""
			for _, p := range order {
				if len(left[p]) == 0 {
					continue
				}
				if best == "" || used[best] && !used[p] || used[best] == used[p] && len(left[p]) > len(left[best]) {
					best = p
				}
			}
			if best == "" {
				return slots // fewer hosts than tasks*replicas
			}
			used[best] = true
			slots[t] = append(slots[t], left[best][0])
			left[best] = left[best][1:]
		}
	}
	return slots
}

// remoteScript is the command line a host's shell runs for one task: args
// run as given (each quoted), in the results dir, with the task's
// environment.
func remoteScript(args []string, env [][2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mkdir -p %s && cd %s && export", RemoteResultsDir, RemoteResultsDir)
	for _, kv := range env {
		fmt.Fprintf(&b, " %s=%s", kv[0], renter.ShellQuote(kv[1]))
	}
	b.WriteString(" && exec")
	for _, a := range args {
		b.WriteString(" " + renter.ShellQuote(a))
	}
	return b.String()
}

// maxPrefixedLine is the longest line a linePrefixer holds back; a longer
// one is broken.
const maxPrefixedLine = 64 << 10

// linePrefixer writes every line written to it to w, prefixed, as one
// Write under mu: lines of several prefixers sharing mu never interleave.
// A last line without a newline is written, with one, by Flush.
type linePrefixer struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *linePrefixer) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		end := len(b)
		if i >= 0 {
			end = i
		}
		if room := maxPrefixedLine - len(p.buf); end > room {
			p.buf = append(p.buf, b[:room]...)
			b = b[room:]
			p.emit()
			continue
		}
		p.buf = append(p.buf, b[:end]...)
		if i < 0 {
			break
		}
		b = b[i+1:]
		p.emit()
	}
	return n, nil
}

// emit writes the buffered line and a newline. Errors writing to the
// terminal are ignored: the output is also kept in files.
func (p *linePrefixer) emit() {
	line := make([]byte, 0, len(p.prefix)+len(p.buf)+1)
	line = append(append(append(line, p.prefix...), p.buf...), '\n')
	p.mu.Lock()
	p.w.Write(line)
	p.mu.Unlock()
	p.buf = p.buf[:0]
}

// Flush writes a last line that has no newline.
func (p *linePrefixer) Flush() {
	if len(p.buf) > 0 {
		p.emit()
	}
}

// Task is one replica of one task, as the run document shows it.
type Task struct {
	Task     int    `json:"task"`
	Replica  int    `json:"replica"`
	Host     string `json:"host"`
	Provider string `json:"provider"`
	LeaseID  string `json:"lease_id"`
	// ExitCode is the command's exit code (255 also when ssh failed), or
	// -1 when it has none: interrupted, or ssh did not start.
	ExitCode      int     `json:"exit_code"`
	Seconds       float64 `json:"seconds"`
	StdoutSHA256  string  `json:"stdout_sha256"`
	ResultsSHA256 string  `json:"results_sha256"`
	Results       string  `json:"results"`
	Stdout        string  `json:"stdout"`
	Stderr        string  `json:"stderr"`
	Error         string  `json:"error,omitempty"`

	label string
	// limit bounds what the host's results may write here.
	limit archiveLimit
}

// archiveLimit bounds what a host's results archive may write: a provider
// (or a job) could send any stream, a sparse file as its full size, or a
// million empty files.
type archiveLimit struct {
	Bytes   int64
	Entries int
}

// Bounds of a host's results.
const (
	// DefaultResultsBytes bounds a host's results when its disk limit is
	// not known.
	DefaultResultsBytes = 4 << 30
	// MaxResultsEntries bounds the files, directories and links of one
	// host's results.
	MaxResultsEntries = 100_000
)

// resultsLimit is what a host with disk bytes of disk may send back: no
// more than it can hold.
func resultsLimit(disk int64) archiveLimit {
	if disk <= 0 {
		disk = DefaultResultsBytes
	}
	return archiveLimit{Bytes: disk, Entries: MaxResultsEntries}
}

// Disagreement is a task whose replicas differ.
type Disagreement struct {
	Task    int    `json:"task"`
	Message string `json:"message"`
}

// Doc is the run document: what ran where, and how it ended.
type Doc struct {
	Session       string         `json:"session"`
	Sessions      []string       `json:"sessions"`
	Command       []string       `json:"command"`
	Count         int            `json:"count"`
	Replicas      int            `json:"replicas"`
	ResultsDir    string         `json:"results_dir"`
	OK            bool           `json:"ok"`
	Interrupted   bool           `json:"interrupted"`
	Tasks         []Task         `json:"tasks"`
	Disagreements []Disagreement `json:"disagreements"`
}

// runTask runs one task over ssh, keeping its output and exit code in the
// results dir and copying back its files.
func runTask(ctx context.Context, tr *Task, sshConfig, script string, stdout, stderr *linePrefixer) {
	outF, err := os.Create(tr.Stdout)
	if err != nil {
		tr.Error = err.Error()
		return
	}
	defer outF.Close()
	errF, err := os.Create(tr.Stderr)
	if err != nil {
		tr.Error = err.Error()
		return
	}
	defer errF.Close()
	h := sha256.New()
	c := renter.SSH(ctx, sshConfig, tr.Host, script)
	c.Stdout = io.MultiWriter(outF, h, stdout)
	c.Stderr = io.MultiWriter(errF, stderr)
	// Its own process group: a Ctrl-C on the terminal reaches zennet,
	// which stops ssh itself.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.WaitDelay = 5 * time.Second
	start := time.Now()
	err = c.Run()
	tr.Seconds = time.Since(start).Round(time.Millisecond).Seconds()
	stdout.Flush()
	stderr.Flush()
	tr.StdoutSHA256 = hex.EncodeToString(h.Sum(nil))
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		tr.Error = "interrupted"
		return
	case err == nil:
		tr.ExitCode = 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		tr.ExitCode = ee.ExitCode()
	default:
		tr.Error = fmt.Sprintf("ssh: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(tr.Stdout), tr.label+".exit"), []byte(strconv.Itoa(tr.ExitCode)+"\n"), 0o644); err != nil {
		tr.Error = err.Error()
		return
	}
	if err := fetchResults(ctx, sshConfig, tr.Host, tr.Results, tr.limit); err != nil {
		tr.Error = fmt.Sprintf("copy its results: %v", err)
		return
	}
	d, err := treeDigest(tr.Results)
	if err != nil {
		tr.Error = fmt.Sprintf("digest its results: %v", err)
		return
	}
	tr.ResultsSHA256 = d
}

// fetchResults copies the host's results dir into dir, through tar.
func fetchResults(ctx context.Context, sshConfig, host, dir string, limit archiveLimit) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c := renter.SSH(ctx, sshConfig, host, "tar -C "+RemoteResultsDir+" -cf - .")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	pipe, err := c.StdoutPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	xerr := extractTar(pipe, dir, limit)
	if xerr != nil {
		c.Process.Kill() // the rest is not wanted: stop the host's tar
		io.Copy(io.Discard, pipe)
	}
	werr := c.Wait()
	if werr != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			werr = fmt.Errorf("%w: %s", werr, msg)
		}
	}
	return errors.Join(xerr, werr)
}

// extractTar writes a tar stream's directories, regular files and
// symbolic links under dir; nothing it writes can land outside dir.
// Symbolic links are made last, so no file is written through one. It
// stops with an error past limit's bytes or entries, keeping what it
// wrote.
func extractTar(r io.Reader, dir string, limit archiveLimit) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	type link struct{ name, target string }
	var links []link
	var skipped []string
	tr := tar.NewReader(r)
	var written int64
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if entries >= limit.Entries {
			return fmt.Errorf("the results hold more than %d entries: the rest is left out", limit.Entries)
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if name == "." {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("the archive names a path outside the results: %q", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if d := filepath.Dir(name); d != "." {
				if err := root.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			f, err := root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, fs.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			n, err := io.Copy(f, io.LimitReader(tr, limit.Bytes-written+1))
			written += n
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil && written > limit.Bytes {
				err = fmt.Errorf("the results are larger than the host's %s of disk: %s is cut short, the rest left out", fmt.Sprintf("%d MiB", limit.Bytes>>20), h.Name)
			}
			if err != nil {
				return err
			}
			root.Chtimes(name, h.ModTime, h.ModTime)
		case tar.TypeSymlink:
			links = append(links, link{name, h.Linkname})
		default:
			skipped = append(skipped, h.Name)
		}
	}
	for _, l := range links {
		if err := root.Symlink(l.target, l.name); err != nil {
			return err
		}
	}
	if len(skipped) > 0 {
		return fmt.Errorf("left out %s that are neither files, directories nor symbolic links: %s", renter.Plural(len(skipped), "entry"), strings.Join(skipped, ", "))
	}
	return nil
}

// treeDigest is a SHA-256 over a directory tree: every entry's path, type
// and content (a link's target), in lexical order.
func treeDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "d %q\n", rel)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %q %q\n", rel, t)
		case d.Type().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %q %x\n", rel, fh.Sum(nil))
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// compareReplicas reports every task whose replicas that ran to the end
// differ in stdout or in their results' files.
func compareReplicas(runs []Task) []Disagreement {
	byTask := map[int][]Task{}
	var order []int
	for _, tr := range runs {
		if tr.Error != "" {
			continue
		}
		if _, ok := byTask[tr.Task]; !ok {
			order = append(order, tr.Task)
		}
		byTask[tr.Task] = append(byTask[tr.Task], tr)
	}
	ds := []Disagreement{}
	for _, t := range order {
		rs := byTask[t]
		stdout, results := false, false
		for _, tr := range rs[1:] {
			stdout = stdout || tr.StdoutSHA256 != rs[0].StdoutSHA256
			results = results || tr.ResultsSHA256 != rs[0].ResultsSHA256
		}
		if !stdout && !results {
			continue
		}
		what, digest := "", func(tr Task) string { return tr.StdoutSHA256 }
		switch {
		case stdout && results:
			what = " (stdout and files)"
		case results:
			what, digest = " (files)", func(tr Task) string { return tr.ResultsSHA256 }
		}
		// One replica per distinct digest, in order.
		var parts []string
		seen := map[string]bool{}
		for _, tr := range rs {
			k := tr.StdoutSHA256 + tr.ResultsSHA256
			if seen[k] {
				continue
			}
			seen[k] = true
			parts = append(parts, fmt.Sprintf("%s (provider %s) %s…", tr.Host, tr.Provider, shortDigest(digest(tr))))
		}
		ds = append(ds, Disagreement{Task: t, Message: fmt.Sprintf("task %d: replicas disagree%s: %s", t, what, strings.Join(parts, " vs "))})
	}
	return ds
}

func shortDigest(d string) string { return d[:min(len(d), 12)] }
