package pay

import (
	"strconv"
	"strings"
)

// FormatMsat formats an amount in msat with thousands separators:
// 1234567 is "1,234,567".
func FormatMsat(v uint64) string {
	s := strconv.FormatUint(v, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
