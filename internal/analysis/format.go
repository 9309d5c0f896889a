package analysis

import (
	"fmt"
	"strconv"
)

// fmtMS formats milliseconds for people: whole above 10 ms, else one
// decimal (two below 1 ms).
func fmtMS(v float64) string {
	switch {
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 1:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

// fmtRate formats a ratio 0..1 as a percentage with two decimals.
func fmtRate(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }

// fmtCount formats a count as it is ("3", "2.5").
func fmtCount(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// fmtTimes formats a/b as a factor with two decimals ("2.05×"), "∞×" for
// a above a b of 0.
func fmtTimes(a, b float64) string {
	switch {
	case b == 0 && a == 0:
		return "1.00×"
	case b == 0:
		return "∞×"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// fmtLimit formats a ratio limit as the user gave it ("1.5×").
func fmtLimit(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) + "×" }

// fmtP formats a p-value with three decimals ("p = 0.043", "p < 0.001").
func fmtP(p float64) string {
	if p < 0.001 {
		return "p < 0.001"
	}
	return fmt.Sprintf("p = %.3f", p)
}
