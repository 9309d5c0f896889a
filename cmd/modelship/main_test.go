package main

import (
	"os"
	"testing"
)

// asMainEnv makes the test binary behave as the modelship binary. TestMain
// sets it for every child the tests start, so a test that needs
// `modelship sim` as a real process runs os.Args[0] instead of building the
// command again.
const asMainEnv = "MODELSHIP_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		return
	}
	os.Setenv(asMainEnv, "1")
	os.Exit(m.Run())
}

// modelshipBinary is the path of a binary that runs as `modelship`: this
// test binary (see TestMain).
func modelshipBinary(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
