package checkpoint

import (
	"fmt"
	"strconv"
)

// FormatParameters prints a parameter count as "8.03B (8,030,261,248)";
// counts under a thousand are printed plainly.
func FormatParameters(n int64) string {
	var short string
	switch {
	case n >= 1e12:
		short = fmt.Sprintf("%.2fT", float64(n)/1e12)
	case n >= 1e9:
		short = fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		short = fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		short = fmt.Sprintf("%.2fK", float64(n)/1e3)
	default:
		return strconv.FormatInt(n, 10)
	}
	return short + " (" + GroupDigits(n) + ")"
}

// GroupDigits prints n with thousands separators: 8,030,261,248.
func GroupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return neg + string(out)
}
