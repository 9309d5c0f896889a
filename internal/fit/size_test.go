package fit

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := map[string]uint64{
		"80GiB": 80 << 30, "80gib": 80 << 30, " 80 GiB ": 80 << 30, "80G": 80 << 30,
		"81920MiB": 80 << 30, "80GB": 80e9, "1.5GiB": 3 << 29, "1024": 1024, "1TiB": 1 << 40, "512k": 512 << 10,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1GiB", "0", "eightyGiB", "80XB", "NaN", "Inf", "1e30GiB", "0x50G", "8_0G"} {
		if _, err := ParseSize(in); err == nil || !strings.Contains(err.Error(), "memory size") {
			t.Errorf("ParseSize(%q) err = %v, want a memory size error", in, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"80GiB", "81920MiB", "1.5G", "80 GB", "7", "-3k", "1e3MiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err == nil && v == 0 {
			t.Fatalf("ParseSize(%q) = 0 without error", s)
		}
	})
}
