package gateway

import "github.com/modelship/modelship/internal/measure"

// The gateway measures every request it routes with package measure (the
// serving pods on Kubernetes use the same ring and JSON).
type (
	// Sample is one proxied request as the gateway measured it.
	Sample = measure.Sample
	// Samples is the answer of GET /samples?since=N.
	Samples = measure.Samples
)

// RingSize and MaxSamplesPerAnswer are package measure's.
const (
	RingSize            = measure.RingSize
	MaxSamplesPerAnswer = measure.MaxSamplesPerAnswer
)

// Samples returns the requests measured after seq since (see Samples).
func (g *Gateway) Samples(since uint64) Samples {
	return g.ring.Since(since, MaxSamplesPerAnswer)
}
