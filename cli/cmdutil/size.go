package cmdutil

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSize reads a memory size: a number with an optional binary unit,
// K/M/G/T (also KiB, MiB, GiB, TiB, and KB, MB, GB, TB, all powers of 1024,
// as in 'zennet -m 512M'). A bare number is bytes.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty size; use a number with a unit such as 512M or 2G")
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToUpper(strings.TrimSpace(in[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("size %q is not a number with a unit; use for example 512M or 2G", s)
	}
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KB": 10, "KIB": 10, "M": 20, "MB": 20, "MIB": 20,
		"G": 30, "GB": 30, "GIB": 30, "T": 40, "TB": 40, "TIB": 40}
	sh, ok := shift[unit]
	if !ok {
		return 0, fmt.Errorf("size %q has unknown unit %q; use K, M, G or T (powers of 1024), e.g. 512M", s, in[i:])
	}
	b := v * float64(uint64(1)<<sh)
	if b >= math.MaxInt64/2 || math.IsNaN(b) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(b), nil
}

// FormatSize prints bytes in the largest binary unit not above them: as an
// integer where it divides evenly (ParseSize reads it back exactly), else
// with one decimal (22.5G).
func FormatSize(b int64) string {
	for _, u := range []struct {
		s     string
		shift uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if b < 1<<u.shift {
			continue
		}
		if b%(1<<u.shift) == 0 {
			return strconv.FormatInt(b>>u.shift, 10) + u.s
		}
		return strconv.FormatFloat(float64(b)/float64(uint64(1)<<u.shift), 'f', 1, 64) + u.s
	}
	return strconv.FormatInt(b, 10)
}
