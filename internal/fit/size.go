package fit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"tib", 1 << 40}, {"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
	{"tb", 1e12}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3},
	{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10},
	{"b", 1},
}

// ParseSize reads a memory size such as "80GiB", "81559MiB", "80 GB" or a
// plain byte count. Binary units (KiB, MiB, GiB, TiB, and the bare letters
// K, M, G, T) are powers of 1024; KB, MB, GB, TB are powers of 1000.
func ParseSize(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || strings.ContainsAny(t, "xXpP_") {
		return 0, fmt.Errorf("memory size %q: want a number with an optional unit, e.g. 80GiB or 81920MiB", s)
	}
	b := v * mult
	if math.IsNaN(b) || b < 1 || b >= 1<<63 {
		return 0, fmt.Errorf("memory size %q: want at least one byte and below 8 EiB", s)
	}
	return uint64(b), nil
}
