package sim

import (
	"context"

	"github.com/modelship/modelship/checkpoint"
)

// Load inspects the checkpoint at path the way vLLM loads it (every header
// parsed and checked, no hashing) and builds a server answering from its
// response table (see TableFor). A corrupt checkpoint is an error naming the
// bad file; nothing is served for it.
func Load(ctx context.Context, path string, opt Options) (*Server, error) {
	info, err := checkpoint.Inspect(ctx, path, checkpoint.Options{})
	if err != nil {
		return nil, err
	}
	table, err := TableFor(path)
	if err != nil {
		return nil, err
	}
	return New(info, table, opt)
}
