package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/zennet/zennet/control"
)

type styles struct {
	title, dim, sel, err, warn, badge, confirm lipgloss.Style
	state                                      map[control.LeaseState]lipgloss.Style
}

func newStyles(r *lipgloss.Renderer) styles {
	s := r.NewStyle
	return styles{
		title:   s().Bold(true),
		dim:     s().Faint(true),
		sel:     s().Reverse(true).Bold(true),
		err:     s().Foreground(lipgloss.Color("1")).Bold(true),
		warn:    s().Foreground(lipgloss.Color("3")),
		badge:   s().Foreground(lipgloss.Color("3")).Reverse(true).Bold(true),
		confirm: s().Foreground(lipgloss.Color("3")).Bold(true),
		state: map[control.LeaseState]lipgloss.Style{
			control.StateStarting:     s().Foreground(lipgloss.Color("6")),
			control.StateRunning:      s().Foreground(lipgloss.Color("2")),
			control.StatePaused:       s().Foreground(lipgloss.Color("3")),
			control.StatePausedUnpaid: s().Foreground(lipgloss.Color("1")),
			control.StateEnded:        s().Faint(true),
		},
	}
}

// layout is how the screen's height is shared.
type layout struct {
	rows  int  // lease rows
	table bool // the table's title and header
	spark bool // the selected lease's line and sparkline
	panes int  // lines of the payments and log panes (0: none)
}

// headerLines and footerLines are always shown (as far as they fit).
const headerLines, footerLines = 3, 1

func (m *Model) layout() layout {
	avail := m.height - headerLines - footerLines
	n := max(len(m.leases), 1)
	switch {
	case avail >= 8: // table title+header, spark 2, panes title: 5; rows and panes >= 3
		rest := avail - 5
		rows := min(n, rest-max(2, rest/3))
		return layout{rows: rows, table: true, spark: true, panes: rest - rows}
	case avail >= 3:
		return layout{rows: min(n, avail-2), table: true}
	}
	return layout{}
}

// wide is the layout for terminals of 110 columns or more.
func (m *Model) wide() bool { return m.width >= 110 }

// View draws the dashboard: exactly the terminal's height in lines, none
// wider than the terminal.
func (m Model) View() string {
	w, h := m.width, m.height
	if w <= 0 || h <= 0 {
		return ""
	}
	lines := m.header()
	switch {
	case m.help:
		lines = append(lines, m.helpLines()...)
	case m.st == nil:
		lines = append(lines, "")
		msg := "waiting for the provider's status …"
		if m.err != nil {
			msg = m.err.Error()
		}
		lines = append(lines, strings.Split(ansi.Wrap(oneLine(msg), max(w-2, 1), ""), "\n")...)
	default:
		lo := m.layout()
		if lo.table {
			lines = append(lines, m.table(lo.rows)...)
		}
		if lo.spark {
			lines = append(lines, m.sparkLines()...)
		}
		if lo.panes > 0 {
			lines = append(lines, m.panes(lo.panes)...)
		}
	}
	body := max(h-footerLines, 0)
	if len(lines) > body {
		lines = lines[:body]
	}
	for len(lines) < body {
		lines = append(lines, "")
	}
	if h >= footerLines {
		lines = append(lines, m.footer())
	}
	for i, l := range lines {
		lines[i] = fit(l, w)
	}
	return strings.Join(lines, "\n")
}

func (m *Model) now() time.Time { return m.opt.Now() }

func (m *Model) header() []string {
	w := m.width
	st := m.st
	if st == nil {
		l1 := m.sty.title.Render("zennet provider")
		msg := "waiting for the provider's status …"
		if m.err != nil {
			msg = "no answer from the provider"
		}
		return []string{l1, msg, ""}
	}
	id := st.Identity
	fp := id.Fingerprint
	if !m.wide() && len(fp) > 7+12 {
		fp = fp[:7+12] + "…"
	}
	left := m.sty.title.Render("zennet provider") + "  " + fp + "  " + id.Address
	if !id.Started.IsZero() {
		left += "  up " + age(m.now().Sub(id.Started))
	}
	if id.Version != "" {
		left += "  " + id.Version
	}
	var badges []string
	if st.Draining {
		badges = append(badges, m.sty.badge.Render(" DRAINING "))
	}
	if m.err != nil {
		badges = append(badges, m.sty.err.Render(" NO ANSWER "))
	}
	l1 := left
	if len(badges) > 0 {
		b := strings.Join(badges, " ")
		bw := lipgloss.Width(b)
		l1 = fit(left, max(w-bw-1, 0)) + " " + b
	}
	c, u := st.Capacity, st.Used
	l2 := fmt.Sprintf("leases %d/%d  memory %s/%s  cpus %s/%s  disk %s/%s",
		u.Leases, c.Leases, size(uint64(max(u.MemoryBytes, 0))), size(uint64(max(c.MemoryBytes, 0))),
		strings.TrimSuffix(cpus(u.CPUs), "c"), strings.TrimSuffix(cpus(c.CPUs), "c"),
		size(uint64(max(u.DiskBytes, 0))), size(uint64(max(c.DiskBytes, 0))))
	if m.wide() && st.IntervalS > 0 {
		l2 += fmt.Sprintf("  metering every %ds", st.IntervalS)
	}
	rate := "-"
	if r, ok := m.rate(); ok {
		rate = satf(r)
	}
	l3 := fmt.Sprintf("earned sat: session %s  today %s  rate %s/h", sat(st.Earnings.SessionMsat), sat(st.Earnings.TodayMsat), rate)
	if st.PaymentFailures > 0 {
		l3 += "  " + m.sty.err.Render(fmt.Sprintf("payment failures %d", st.PaymentFailures))
	}
	return []string{l1, l2, l3}
}

// rule is a section title: ─ title ──────.
func (m *Model) rule(title string, w int) string {
	t := "─ " + m.sty.title.Render(title) + " "
	return t + m.sty.dim.Render(strings.Repeat("─", max(w-lipgloss.Width(t), 0)))
}

type column struct {
	title string
	w     int
	right bool
}

func (m *Model) columns() []column {
	switch {
	case m.wide():
		return []column{{"LEASE", 20, false}, {"RENTER", 12, false}, {"AGE", 6, true}, {"LIMITS", 15, false},
			{"CPU%", 5, true}, {"MEM", 6, true}, {"NET IN/OUT", 13, false}, {"STATE", 13, false}, {"EARNED", 9, true}}
	case m.width >= 77:
		return []column{{"RENTER", 8, false}, {"AGE", 6, true}, {"LIMITS", 10, false}, {"CPU%", 5, true},
			{"MEM", 5, true}, {"NET IN/OUT", 11, false}, {"STATE", 13, false}, {"EARNED", 8, true}}
	}
	return []column{{"RENTER", 8, false}, {"AGE", 6, true}, {"CPU%", 5, true}, {"MEM", 5, true},
		{"STATE", 13, false}, {"EARNED", 8, true}}
}

// cells formats a row's values into the columns' widths.
func cells(cols []column, vals []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		if c.right {
			out[i] = right(vals[i], c.w)
		} else {
			out[i] = fit(vals[i], c.w)
		}
	}
	return out
}

func (m *Model) table(rows int) []string {
	cols := m.columns()
	title := fmt.Sprintf("leases %d", len(m.leases))
	if len(m.leases) > rows && rows > 0 {
		title = fmt.Sprintf("leases %d-%d of %d", m.offset+1, min(m.offset+rows, len(m.leases)), len(m.leases))
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	out := []string{m.rule(title, m.width), m.sty.dim.Render("  " + strings.Join(cells(cols, titles), " "))}
	if rows <= 0 {
		return out
	}
	if len(m.leases) == 0 {
		msg := "  no leases yet"
		if m.st == nil {
			msg = ""
		} else if m.st.Draining {
			msg = "  no leases; draining: taking no new ones"
		}
		return append(out, m.sty.dim.Render(msg))
	}
	now := m.now()
	for i := m.offset; i < min(m.offset+rows, len(m.leases)); i++ {
		l := m.leases[i]
		cs := cells(cols, m.rowValues(cols, l, now))
		mark := "  "
		if l.ID == m.selected {
			mark = "> "
			out = append(out, m.sty.sel.Render(fit(mark+strings.Join(cs, " "), m.width)))
			continue
		}
		for i, c := range cols {
			if st, ok := m.sty.state[l.State]; ok && c.title == "STATE" {
				cs[i] = st.Render(cs[i])
			}
		}
		out = append(out, mark+strings.Join(cs, " "))
	}
	return out
}

// rowValues returns a lease's values for cols.
func (m *Model) rowValues(cols []column, l control.LeaseStatus, now time.Time) []string {
	lim := size(uint64(max(l.Limits.MemoryBytes, 0))) + " " + cpus(l.Limits.CPUs)
	if m.wide() && l.Limits.DiskBytes > 0 {
		lim += " " + size(uint64(l.Limits.DiskBytes))
	}
	pct := "-"
	if h := m.hist[l.ID]; h != nil && len(h.cpuPct) > 0 && l.State != control.StateEnded {
		pct = fmt.Sprintf("%.0f%%", h.cpuPct[len(h.cpuPct)-1])
	}
	vals := make([]string, len(cols))
	for i, c := range cols {
		switch c.title {
		case "LEASE":
			vals[i] = l.ID
		case "RENTER":
			vals[i] = shortKey(l.Renter, c.w)
		case "AGE":
			vals[i] = age(now.Sub(l.Started))
		case "LIMITS":
			vals[i] = lim
		case "CPU%":
			vals[i] = pct
		case "MEM":
			vals[i] = size(l.MemoryBytes)
		case "NET IN/OUT":
			vals[i] = size(l.NetInBytes) + "/" + size(l.NetOutBytes)
		case "STATE":
			vals[i] = string(l.State)
		case "EARNED":
			vals[i] = sat(l.EarnedMsat)
		}
	}
	return vals
}

// sparkLines are the selected lease's details and its sparkline.
func (m *Model) sparkLines() []string {
	l, ok := m.selectedLease()
	if !ok {
		return []string{m.rule("no lease selected", m.width), ""}
	}
	var info []string
	state := string(l.State)
	if l.StateReason != "" {
		state += ": " + l.StateReason
	}
	info = append(info, l.ID, state)
	if l.Method != "" {
		info = append(info, l.Method)
	}
	info = append(info, "billed "+sat(l.BilledMsat), "due "+sat(l.DueMsat))
	title := m.rule(strings.Join(info, " · "), m.width)

	h := m.hist[l.ID]
	var vals []float64
	var label string
	var top float64
	if m.spark == sparkCPU {
		label, top = "cpu", 100*l.Limits.CPUs
		if h != nil {
			vals = h.cpuPct
		}
		if len(vals) > 0 {
			label = fmt.Sprintf("cpu %4.0f%%", vals[len(vals)-1])
		}
	} else {
		label = "earned sat/h"
		if h != nil {
			vals = h.earnRate
		}
		if len(vals) > 0 {
			label = fmt.Sprintf("earned %s sat/h", satf(vals[len(vals)-1]))
		}
	}
	label += " "
	if len(vals) == 0 {
		return []string{title, label + m.sty.dim.Render("collecting …")}
	}
	return []string{title, label + sparkline(vals, m.width-len([]rune(label)), top)}
}

// panes are the latest payments (left) and log lines (right), n lines.
func (m *Model) panes(n int) []string {
	w := m.width
	lw := min(42, (w-1)/2)
	rw := max(w-lw-1, 0)
	out := []string{fit(m.rule("payments", lw), lw) + m.sty.dim.Render("┬") + m.rule("log", rw)}
	n-- // the title
	var pays, logs []string
	loc := m.opt.Location
	if m.st != nil {
		for _, p := range m.st.Payments {
			if len(pays) == n {
				break
			}
			pays = append(pays, fmt.Sprintf("%s %9s %-3s %s", p.Time.In(loc).Format("15:04:05"),
				"+"+sat(p.Msat), shortMethod(p.Method), shortLease(p.Lease)))
		}
		lg := m.st.Log
		if len(lg) > n {
			lg = lg[len(lg)-n:]
		}
		for _, l := range lg {
			lvl := l.Level
			switch strings.ToUpper(lvl) {
			case "WARN", "WARNING":
				lvl = m.sty.warn.Render(lvl)
			case "ERROR":
				lvl = m.sty.err.Render(lvl)
			}
			logs = append(logs, l.Time.In(loc).Format("15:04:05")+" "+lvl+" "+oneLine(l.Msg))
		}
	}
	if len(pays) == 0 && n > 0 {
		pays = []string{m.sty.dim.Render("no payments yet")}
	}
	if len(logs) == 0 && n > 0 {
		logs = []string{m.sty.dim.Render("no log lines")}
	}
	for i := 0; i < n; i++ {
		var p, l string
		if i < len(pays) {
			p = pays[i]
		}
		if i < len(logs) {
			l = logs[i]
		}
		out = append(out, fit(p, lw)+m.sty.dim.Render("│")+fit(l, rw))
	}
	return out
}

// oneLine keeps a log message on one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}

func (m *Model) footer() string {
	switch {
	case m.confirm != nil:
		return m.sty.confirm.Render(m.confirm.prompt)
	case m.flash != "":
		if m.flashErr {
			return m.sty.err.Render(m.flash)
		}
		return m.flash
	case m.err != nil:
		return m.sty.err.Render(fmt.Sprintf("no answer from the provider since %s: %v",
			m.errAt.In(m.opt.Location).Format("15:04:05"), oneLine(m.err.Error())))
	}
	return m.sty.dim.Render("↑↓ select  p pause  r resume  e end  d drain  s cpu/earned  ? help  q quit")
}

func (m *Model) helpLines() []string {
	return []string{
		m.rule("keys", m.width),
		"  ↑ k / ↓ j   select a lease (g first, G last)",
		"  p           pause the selected lease (runsc pause); asks y/n",
		"  r           resume a lease you paused; asks y/n",
		"  e           end the selected lease, destroying its sandbox; asks y/n",
		"  d           drain (take no new leases; current ones go on) or stop; asks y/n",
		"  s           sparkline: CPU or earnings of the selected lease",
		"  ? / esc     this help",
		"  q ctrl-c    quit the dashboard (the provider keeps running)",
		"",
		"CPU% is of one core, between the last two status snapshots; the rate",
		"of earnings is over the last 10 minutes. Amounts are in satoshis.",
		"States: starting, running, paused (by you), paused-unpaid (payment",
		"overdue), ended.",
	}
}
