package bench

import (
	"math"
	"slices"
	"time"
)

// Latencies summarizes one run's call latencies.
type Latencies struct {
	P50, P90, P99, Max time.Duration
}

// Summarize returns the percentiles of samples, which it sorts in place.
// An empty slice gives zeros.
func Summarize(samples []time.Duration) Latencies {
	if len(samples) == 0 {
		return Latencies{}
	}
	slices.Sort(samples)
	return Latencies{
		P50: Percentile(samples, 50),
		P90: Percentile(samples, 90),
		P99: Percentile(samples, 99),
		Max: samples[len(samples)-1],
	}
}

// Percentile returns the nearest-rank p-th percentile (0 ≤ p ≤ 100) of
// sorted: the smallest sample that at least p % of the samples do not
// exceed. It returns 0 for an empty slice; p is clamped to [0, 100].
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	p = min(max(p, 0), 100)
	// rank = ceil(p/100 * n); the epsilon keeps 0.9*10 = 9.000000000000002
	// at rank 9.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// median returns the median of values (the lower middle for an even
// count), or 0 for none. It sorts a copy.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
