// Command gen writes the test checkpoints: go run ./internal/testmodels/gen -out testdata/models
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/modelship/modelship/internal/testmodels"
)

func main() {
	out := flag.String("out", "testdata/models", "directory to write the test checkpoints into")
	flag.Parse()
	if err := testmodels.Generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
