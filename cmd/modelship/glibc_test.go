package main

import (
	"debug/elf"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/modelship/modelship/serving"
)

// glibcVersion orders "2.35" style versions.
func glibcVersion(v string) (major, minor int) {
	a, b, _ := strings.Cut(v, ".")
	major, _ = strconv.Atoi(a)
	minor, _ = strconv.Atoi(b)
	return major, minor
}

// TestBinaryRunsOnTheVLLMImage: the modelship binary is copied into the
// pinned vLLM image, which is built on an older distribution than the Go
// image modelship is compiled in. Every glibc symbol version the binary
// needs must exist in that base's glibc, or `modelship serve` (the image's
// entrypoint) would not start there. This test binary is built the same
// way (cgo, the same packages), so its needs are the binary's.
func TestBinaryRunsOnTheVLLMImage(t *testing.T) {
	base := serving.VLLM().ImageBase
	if base.Glibc == "" {
		t.Fatal("vllm.json records no glibc for the vLLM image's base")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Logf("static binary (no dynamic symbols: %v): it needs no glibc", err)
		return
	}
	haveMaj, haveMin := glibcVersion(base.Glibc)
	highest, by := "", ""
	for _, s := range syms {
		v, ok := strings.CutPrefix(s.Version, "GLIBC_")
		if !ok {
			continue
		}
		maj, min := glibcVersion(v)
		if hm, hn := glibcVersion(highest); highest == "" || maj > hm || (maj == hm && min > hn) {
			highest, by = v, s.Name
		}
		if maj > haveMaj || (maj == haveMaj && min > haveMin) {
			t.Errorf("the binary needs %s@GLIBC_%s; %s (%s) has glibc %s", s.Name, v, serving.VLLMImage(), base.OS, base.Glibc)
		}
	}
	t.Logf("highest glibc symbol version needed: %s (%s); %s has %s", highest, by, serving.VLLMImage(), base.Glibc)
}
