// Package sticky is the one hash that puts a sticky header's value on a
// side of a canary split. The Docker gateway and `modelship serve` on
// Kubernetes both decide with it, so a conversation id lands on the same
// version whichever target runs the rollout, and stays there while the
// canary's percent grows.
package sticky

import "math"

// Buckets is the resolution of a split: 0.01 percent.
const Buckets = 10000

// Bucket is FNV-1a (32 bits) of v modulo Buckets: v's fixed place, so
// that a value below one percent's Threshold is below every larger one's.
func Bucket(v string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(v); i++ {
		h ^= uint32(v[i])
		h *= 16777619
	}
	return h % Buckets
}

// Threshold is the bucket below which a value goes to the canary when it
// takes percent (0..100) of the values.
func Threshold(percent float64) uint32 {
	return uint32(math.Round(percent * Buckets / 100))
}

// Canary reports whether value goes to the canary when it takes percent
// of the values.
func Canary(value string, percent float64) bool {
	return Bucket(value) < Threshold(percent)
}
