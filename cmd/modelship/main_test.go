package main

import (
	"os"
	"testing"
)

// asMainEnv makes the test binary behave as the modelship binary, so a test
// that needs `modelship sim` as a real child process runs os.Args[0] instead
// of building the command again.
const asMainEnv = "MODELSHIP_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// modelshipBinary is the path of a binary that runs as `modelship`: this
// test binary (see TestMain). The variable that makes it so is set for this
// test's children only, not for fuzz workers or other tests.
func modelshipBinary(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(asMainEnv, "1")
	return bin
}
