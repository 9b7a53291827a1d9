package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/meter"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/sandbox"
	"github.com/zennet/zennet/session"
	"github.com/zennet/zennet/sshgate"
)

// usageBook checks every usage report a rental receives and keeps the
// latest accepted one per lease.
type usageBook struct {
	sess *session.Session

	mu      sync.Mutex
	terms   map[string]meter.Terms
	prev    map[string]*meter.Report
	hosts   map[string]*session.Usage
	dirty   bool
	notices chan string
}

func newUsageBook(sess *session.Session) *usageBook {
	return &usageBook{sess: sess, terms: map[string]meter.Terms{}, prev: map[string]*meter.Report{},
		hosts: map[string]*session.Usage{}, notices: make(chan string, 64)}
}

// add starts checking reports for a host.
func (b *usageBook) add(h session.Host, le proto.Lease, c *sshgate.Client) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.terms[le.ID] = meter.Terms{
		Lease: le.ID, Key: c.HostKey, Start: le.Started, CPUs: le.Limits.CPUs,
		MemoryBytes: le.Limits.MemoryBytes + sandbox.MemoryOverhead(le.Limits.MemoryBytes),
	}
	b.hosts[le.ID] = &session.Usage{Name: h.Name, LeaseID: le.ID, Provider: c.Addr, Start: le.Started}
}

// drain reads c's reports until it is done or ctx ends.
func (b *usageBook) drain(ctx context.Context, c *sshgate.Client) {
	for {
		select {
		case rep := <-c.Usage():
			b.check(rep)
		case <-c.Done():
			for { // what arrived before the end still counts
				select {
				case rep := <-c.Usage():
					b.check(rep)
				default:
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

func (b *usageBook) check(rep meter.Report) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.terms[rep.Lease]
	h := b.hosts[rep.Lease]
	if !ok || h == nil {
		return // not (or no longer) ours; reports are cumulative, the next covers it
	}
	t.Now = time.Now()
	if err := meter.Check(t, b.prev[rep.Lease], rep); err != nil {
		h.Rejected++
		h.LastRejection = err.Error()
		b.dirty = true
		select {
		case b.notices <- fmt.Sprintf("%s (provider %s): %v", h.Name, h.Provider, err):
		default:
		}
		return
	}
	r := rep
	b.prev[rep.Lease] = &r
	h.Accepted++
	h.Seq, h.Time = rep.Seq, rep.Time
	h.Counters = counterMap(rep.Counters)
	b.dirty = true
}

func counterMap(v meter.Vector) map[string]uint64 {
	m := make(map[string]uint64, meter.NumCounters)
	for c := meter.Counter(0); c < meter.NumCounters; c++ {
		m[c.Name()] = v[c]
	}
	return m
}

// flush writes the session's usage file if anything changed.
func (b *usageBook) flush() error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	b.dirty = false
	out := make([]session.Usage, 0, len(b.hosts))
	for _, h := range b.hosts {
		out = append(out, *h)
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return hostOrder(out[i].Name) < hostOrder(out[j].Name) })
	return b.sess.WriteUsage(out)
}

// hostOrder sorts zennet-2 before zennet-10.
func hostOrder(name string) int {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] < '0' || name[i] > '9' {
			n, _ := strconv.Atoi(name[i+1:])
			return n
		}
	}
	return 0
}

type usageOptions struct {
	IO   IOStreams
	G    *globalOptions
	JSON bool
}

func newCmdUsage(io IOStreams, g *globalOptions) *cobra.Command {
	o := &usageOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show the metered usage of the running sessions' hosts",
		Long: `usage prints, for every host of every running session, the latest usage report
its provider signed and this machine checked: CPU time, memory integrated over
time, peak memory, network and I/O bytes, and how many reports were accepted
or rejected.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runUsage(o) },
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the usage as JSON, with every counter")
	return cmd
}

func runUsage(o *usageOptions) error {
	live, err := session.Live(o.G.ConfigDir)
	if err != nil {
		return err
	}
	var all []session.Usage
	for _, r := range live {
		u, err := session.ReadUsage(o.G.ConfigDir, r.ID)
		if err != nil {
			return fmt.Errorf("read usage of session %s: %w", r.ID, err)
		}
		all = append(all, u...)
	}
	if o.JSON {
		if all == nil {
			all = []session.Usage{}
		}
		return writeJSON(o.IO.Out, "usage", all)
	}
	rows := make([][]string, 0, len(all))
	for _, u := range all {
		c := u.Counters
		status := "ok"
		if u.Rejected > 0 {
			status = fmt.Sprintf("%d rejected: %s", u.Rejected, u.LastRejection)
		}
		rows = append(rows, []string{u.Name, strconv.Itoa(u.Accepted),
			strconv.FormatFloat(float64(c["cpu_ns"])/1e9, 'f', 2, 64),
			strconv.FormatFloat(float64(c["memory_mib_ms"])/1e3, 'f', 1, 64),
			FormatSize(int64(c["memory_peak_bytes"])),
			FormatSize(int64(c["net_in_bytes"])), FormatSize(int64(c["net_out_bytes"])),
			FormatSize(int64(c["io_read_bytes"])), FormatSize(int64(c["io_write_bytes"])), status})
	}
	table(o.IO.Out, []string{"HOST", "REPORTS", "CPU s", "MEM MiB·s", "PEAK", "NET IN", "NET OUT", "READ", "WRITE", "STATUS"}, rows)
	if len(all) == 0 && isTerminal(o.IO.ErrOut) {
		fmt.Fprintln(o.IO.ErrOut, "zennet: no running sessions")
	}
	return nil
}
