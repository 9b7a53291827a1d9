// Package tui is the provider's terminal dashboard: a bubbletea model that
// polls a running provider's status (normally over its control socket) and
// lets the operator pause, resume and end leases and drain the provider.
//
// All I/O happens in tea.Cmds; Update and View never block.
package tui

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/zennet/zennet/control"
)

// Source is the provider the dashboard shows and acts on. control.Client
// implements it.
type Source interface {
	Status(ctx context.Context) (control.Status, error)
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	End(ctx context.Context, id string) error
	Drain(ctx context.Context, on bool) error
}

// Options configure a Model.
type Options struct {
	// Interval is how often the status is polled (default 1s).
	Interval time.Duration
	// Now is the clock for ages and uptime (default time.Now).
	Now func() time.Time
	// Location is the time zone times are shown in (default time.Local).
	Location *time.Location
	// Renderer styles the view (default: lipgloss's, which detects the
	// terminal's colours).
	Renderer *lipgloss.Renderer
	// NoColor draws without any colour or attribute (NO_COLOR).
	NoColor bool
}

// NoColorEnv reports whether NO_COLOR asks for no colour (set and not
// empty, as no-color.org defines it).
func NoColorEnv() bool { return os.Getenv("NO_COLOR") != "" }

// Timeouts of the dashboard's requests.
const (
	statusTimeout = 5 * time.Second
	actionTimeout = 2 * time.Minute // ending a lease destroys its sandbox
)

// history bounds.
const (
	maxSamples = 240              // per lease, for the sparkline
	rateWindow = 10 * time.Minute // of the earnings rate
)

// sparkKind is what the sparkline shows.
type sparkKind int

const (
	sparkCPU sparkKind = iota
	sparkEarnings
)

// Messages.
type (
	statusMsg struct {
		st  control.Status
		err error
	}
	tickMsg   struct{ gen int }
	actionMsg struct {
		verb, id string // verb: "paused", "resumed", "ended", "drain on", "drain off"
		err      error
	}
)

// confirmation is an action waiting for y/n.
type confirmation struct {
	prompt string
	verb   string // pause, resume, end, drain
	id     string
	on     bool // drain
}

// leaseHist is what the dashboard remembers of a lease between snapshots.
type leaseHist struct {
	prevT      time.Time
	prevEarned uint64
	// prevReport and prevCPU are the latest usage report's time and CPU
	// counter: CPU % is the counter's rate over the reports' own times
	// (one every metering interval), never over the snapshots' (every
	// refresh), which would see 0% between reports and the whole
	// interval's CPU time in the refresh after one.
	prevReport time.Time
	prevCPU    uint64
	cpuPct     []float64 // % of one core
	earnRate   []float64 // msat per hour
}

type sample struct {
	t    time.Time
	msat uint64
}

// Model is the dashboard.
type Model struct {
	src Source
	opt Options
	sty styles

	st      *control.Status
	leases  []control.LeaseStatus // st.Leases in display order
	err     error                 // of the latest status request
	errAt   time.Time
	hist    map[string]*leaseHist
	earned  []sample
	lastT   time.Time
	gen     int  // of the live tick
	busy    bool // a status request is in flight
	refresh bool // request again as soon as it returns

	width, height int
	selected      string // lease id
	offset        int    // first lease row shown
	confirm       *confirmation
	flash         string
	flashErr      bool
	help          bool
	spark         sparkKind
}

// New returns a dashboard of src.
func New(src Source, o Options) Model {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	r := o.Renderer
	if o.NoColor {
		r = lipgloss.NewRenderer(io.Discard)
		r.SetColorProfile(termenv.Ascii)
	} else if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	// busy: Init's request is in flight from the start.
	return Model{src: src, opt: o, sty: newStyles(r), hist: map[string]*leaseHist{}, width: 80, height: 24, busy: true}
}

// Init starts polling.
func (m Model) Init() tea.Cmd {
	return fetchStatus(m.src)
}

// fetch asks for the status.
func (m *Model) fetch() tea.Cmd {
	m.busy = true
	return fetchStatus(m.src)
}

func fetchStatus(src Source) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
		defer cancel()
		st, err := src.Status(ctx)
		return statusMsg{st: st, err: err}
	}
}

// tick schedules the next poll; an older tick still pending is void.
func (m *Model) tick() tea.Cmd {
	m.gen++
	gen := m.gen
	return tea.Tick(m.opt.Interval, func(time.Time) tea.Msg { return tickMsg{gen: gen} })
}

// refreshNow polls at once (after the request in flight, if any).
func (m *Model) refreshNow() tea.Cmd {
	if m.busy {
		m.refresh = true
		return nil
	}
	return m.fetch()
}

// Update handles a message.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.scroll()
		return m, nil
	case statusMsg:
		m.busy = false
		if msg.err != nil {
			if m.err == nil {
				m.errAt = m.opt.Now()
			}
			m.err = msg.err
		} else {
			m.err = nil
			m.ingest(msg.st)
		}
		if m.refresh {
			m.refresh = false
			return m, m.fetch()
		}
		return m, m.tick()
	case tickMsg:
		if msg.gen != m.gen || m.busy {
			return m, nil
		}
		return m, m.fetch()
	case actionMsg:
		if msg.err != nil {
			m.setFlash(fmt.Sprintf("%s: %v", msg.verb, msg.err), true)
		} else {
			m.setFlash(msg.verb, false)
		}
		return m, m.refreshNow()
	case tea.KeyMsg:
		return m.key(msg)
	}
	return m, nil
}

func (m *Model) setFlash(s string, isErr bool) {
	m.flash, m.flashErr = s, isErr
}

func (m Model) key(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste {
		// Keys typed quickly arrive as one message: one key each.
		var cmds []tea.Cmd
		var cur tea.Model = m
		for _, r := range k.Runes {
			var cmd tea.Cmd
			cur, cmd = cur.(Model).key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: k.Alt})
			cmds = append(cmds, cmd)
		}
		return cur, tea.Sequence(cmds...)
	}
	if k.Type == tea.KeyCtrlC {
		return m, tea.Quit
	}
	if c := m.confirm; c != nil {
		switch k.String() {
		case "y", "Y":
			m.confirm = nil
			return m, m.do(c)
		case "n", "N", "esc", "q":
			m.confirm = nil
			m.setFlash("cancelled", false)
		}
		return m, nil
	}
	if k.String() == "q" {
		return m, tea.Quit
	}
	m.flash = ""
	switch k.String() {
	case "?", "h":
		m.help = !m.help
	case "esc":
		m.help = false
	case "up", "k":
		m.move(-1)
	case "down", "j":
		m.move(1)
	case "home", "g":
		m.move(-len(m.leases))
	case "end", "G":
		m.move(len(m.leases))
	case "s":
		m.spark = 1 - m.spark
	case "p":
		m.ask("pause", "Pause")
	case "r":
		m.ask("resume", "Resume")
	case "e":
		m.ask("end", "End")
	case "d":
		if m.st == nil {
			m.setFlash("no status from the provider yet", true)
			break
		}
		on := !m.st.Draining
		prompt := "Drain: take no new leases (current ones go on)? y/n"
		if !on {
			prompt = "Stop draining: take new leases again? y/n"
		}
		m.confirm = &confirmation{prompt: prompt, verb: "drain", on: on}
	}
	return m, nil
}

// ask asks to confirm an action on the selected lease.
func (m *Model) ask(verb, title string) {
	l, ok := m.selectedLease()
	if !ok {
		m.setFlash("no lease selected", true)
		return
	}
	what := ""
	switch verb {
	case "end":
		what = " and destroy its sandbox"
	}
	m.confirm = &confirmation{verb: verb, id: l.ID,
		prompt: fmt.Sprintf("%s lease %s (renter %s)%s? y/n", title, l.ID, shortKey(l.Renter, 8), what)}
}

// do runs a confirmed action.
func (m *Model) do(c *confirmation) tea.Cmd {
	src := m.src
	var run func(context.Context) error
	var done string
	switch c.verb {
	case "pause":
		run = func(ctx context.Context) error { return src.Pause(ctx, c.id) }
		done = "paused " + c.id
	case "resume":
		run = func(ctx context.Context) error { return src.Resume(ctx, c.id) }
		done = "resumed " + c.id
	case "end":
		run = func(ctx context.Context) error { return src.End(ctx, c.id) }
		done = "ended " + c.id
	case "drain":
		run = func(ctx context.Context) error { return src.Drain(ctx, c.on) }
		done = "draining: no new leases"
		if !c.on {
			done = "no longer draining: taking new leases"
		}
	}
	if c.verb == "drain" {
		m.setFlash("asking the provider …", false)
	} else {
		m.setFlash(c.verb+" "+c.id+" …", false)
	}
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), actionTimeout)
		defer cancel()
		if err := run(ctx); err != nil {
			if c.verb == "drain" {
				return actionMsg{verb: "drain", err: err}
			}
			return actionMsg{verb: c.verb + " " + c.id, err: err}
		}
		return actionMsg{verb: done}
	}
}

// ingest takes a new snapshot: the rates since the last one, the lease
// order, the selection.
func (m *Model) ingest(st control.Status) {
	t := st.Time
	if t.IsZero() {
		t = m.opt.Now()
	}
	fresh := !t.Equal(m.lastT) // the same snapshot twice adds no sample
	m.lastT = t
	live := map[string]bool{}
	for _, l := range st.Leases {
		live[l.ID] = true
		h := m.hist[l.ID]
		if h == nil {
			h = &leaseHist{}
			m.hist[l.ID] = h
		}
		if !fresh {
			continue
		}
		if rt := l.LastReport; !rt.IsZero() && !rt.Equal(h.prevReport) {
			if dt := rt.Sub(h.prevReport); !h.prevReport.IsZero() && dt > 0 && l.CPUNs >= h.prevCPU {
				h.cpuPct = appendCap(h.cpuPct, float64(l.CPUNs-h.prevCPU)/float64(dt.Nanoseconds())*100)
			}
			h.prevReport, h.prevCPU = rt, l.CPUNs
		}
		if dt := t.Sub(h.prevT); !h.prevT.IsZero() && dt > 0 {
			if l.EarnedMsat >= h.prevEarned {
				h.earnRate = appendCap(h.earnRate, float64(l.EarnedMsat-h.prevEarned)/dt.Hours())
			}
		}
		h.prevT, h.prevEarned = t, l.EarnedMsat
	}
	for id := range m.hist {
		if !live[id] {
			delete(m.hist, id)
		}
	}
	if fresh {
		e := st.Earnings.SessionMsat
		if n := len(m.earned); n > 0 && e < m.earned[n-1].msat {
			m.earned = nil // a new provider session
		}
		m.earned = append(m.earned, sample{t, e})
		for len(m.earned) > 2 && t.Sub(m.earned[0].t) > rateWindow {
			m.earned = m.earned[1:]
		}
	}

	// Keep the selection on its lease, or on the row where it was.
	idx := m.index()
	m.st = &st
	m.leases = append(m.leases[:0:0], st.Leases...)
	sort.SliceStable(m.leases, func(i, j int) bool {
		a, b := m.leases[i], m.leases[j]
		if !a.Started.Equal(b.Started) {
			return a.Started.Before(b.Started)
		}
		return a.ID < b.ID
	})
	if _, ok := m.selectedLease(); !ok {
		m.selected = ""
		if len(m.leases) > 0 {
			m.selected = m.leases[min(max(idx, 0), len(m.leases)-1)].ID
		}
	}
	m.scroll()
}

func appendCap(s []float64, v float64) []float64 {
	s = append(s, v)
	if len(s) > maxSamples {
		s = s[len(s)-maxSamples:]
	}
	return s
}

// index returns the selected lease's row, or -1.
func (m *Model) index() int {
	for i, l := range m.leases {
		if l.ID == m.selected {
			return i
		}
	}
	return -1
}

func (m *Model) selectedLease() (control.LeaseStatus, bool) {
	if i := m.index(); i >= 0 {
		return m.leases[i], true
	}
	return control.LeaseStatus{}, false
}

func (m *Model) move(d int) {
	if len(m.leases) == 0 {
		return
	}
	i := min(max(m.index()+d, 0), len(m.leases)-1)
	m.selected = m.leases[i].ID
	m.scroll()
}

// scroll keeps the selected row in the table's window.
func (m *Model) scroll() {
	rows := m.layout().rows
	i := max(m.index(), 0)
	if rows <= 0 {
		m.offset = i
		return
	}
	if i < m.offset {
		m.offset = i
	}
	if i >= m.offset+rows {
		m.offset = i - rows + 1
	}
	m.offset = max(min(m.offset, len(m.leases)-rows), 0)
}

// rate returns the earnings per hour over the rate window, if known.
func (m *Model) rate() (float64, bool) {
	if len(m.earned) < 2 {
		return 0, false
	}
	a, b := m.earned[0], m.earned[len(m.earned)-1]
	dt := b.t.Sub(a.t)
	if dt <= 0 {
		return 0, false
	}
	return float64(b.msat-a.msat) / dt.Hours(), true
}

// Selected returns the id of the selected lease ("" if none).
func (m Model) Selected() string { return m.selected }

// Err returns the error of the latest status request, if it failed.
func (m Model) Err() error { return m.err }
