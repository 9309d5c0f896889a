package main

import (
	"fmt"
	"os"
	"testing"
	"time"
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

// waitUntil polls cond until it holds, for a command running in the
// background whose exit code arrives on done. It fails the test, showing
// the command's log, when the command exits first, or after 20s: a bound
// on a hang, not a speed requirement.
func waitUntil(t *testing.T, done <-chan int, log fmt.Stringer, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		select {
		case code := <-done:
			t.Fatalf("exited %d before %s:\n%s", code, what, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 20s:\n%s", what, log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
