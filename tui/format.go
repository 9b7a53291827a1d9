package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// fit truncates s to width w (with an ellipsis) and pads it with spaces to
// exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	if n := w - ansi.StringWidth(s); n > 0 {
		s += strings.Repeat(" ", n)
	}
	return s
}

// right aligns s to the right of w cells (truncating it on the right if it
// does not fit).
func right(s string, w int) string {
	n := w - ansi.StringWidth(s)
	if n <= 0 {
		return fit(s, w)
	}
	return strings.Repeat(" ", n) + s
}

// size formats bytes in binary units: 512M, 1.5G, 300K, 0B.
func size(b uint64) string {
	const units = "KMGTPE"
	if b < 1024 {
		return fmt.Sprintf("%dB", b)
	}
	v := float64(b)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v < 10 && v != float64(int(v)) {
		return fmt.Sprintf("%.1f%c", v, units[i])
	}
	return fmt.Sprintf("%.0f%c", v, units[i])
}

// sat formats millisatoshis as satoshis: 0.250, 4.000, 12.3, 45.7k, 1.23M.
func sat(msat uint64) string {
	return satf(float64(msat))
}

func satf(msat float64) string {
	s := msat / 1000
	switch {
	case msat == 0:
		return "0"
	case s < 10:
		return fmt.Sprintf("%.3f", s)
	case s < 1000:
		return fmt.Sprintf("%.1f", s)
	case s < 1e6:
		return fmt.Sprintf("%.1fk", s/1e3)
	}
	return fmt.Sprintf("%.2fM", s/1e6)
}

// age formats a duration compactly: 45s, 10m02s, 2h05m, 3d04h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// cpus formats a CPU quota: 1, 0.5, 1.25.
func cpus(c float64) string {
	return fmt.Sprintf("%gc", float64(int64(c*100+0.5))/100)
}

// shortKey returns the first n characters of a key fingerprint's hash:
// "SHA256:Ab3dEf..." gives "Ab3dEf12".
func shortKey(fp string, n int) string {
	fp = strings.TrimPrefix(fp, "SHA256:")
	if len(fp) > n {
		return fp[:n]
	}
	return fp
}

// shortLease returns zn- and the first 8 hex digits of a lease id.
func shortLease(id string) string {
	if len(id) > 11 {
		return id[:11]
	}
	return id
}

// shortMethod abbreviates a payment method.
func shortMethod(m string) string {
	switch m {
	case "embedded":
		return "emb"
	case "lightning":
		return "ln"
	}
	return m
}

// sparkline draws values in w cells, latest on the right, scaled to top
// (or to the largest value if that is more).
func sparkline(values []float64, w int, top float64) string {
	const bars = "▁▂▃▄▅▆▇█"
	levels := []rune(bars)
	if w <= 0 {
		return ""
	}
	if len(values) > w {
		values = values[len(values)-w:]
	}
	for _, v := range values {
		top = max(top, v)
	}
	var b strings.Builder
	for _, v := range values {
		i := 0
		if top > 0 && v > 0 {
			i = int(v / top * float64(len(levels)-1))
			i = min(max(i, 1), len(levels)-1) // anything above zero shows
		}
		b.WriteRune(levels[i])
	}
	return b.String()
}
