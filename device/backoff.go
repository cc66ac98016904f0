package device

import (
	"math/rand/v2"
	"time"
)

// ExponentialBackoff returns a backoff with full jitter: the delay before
// attempt n (1, 2, …) is drawn uniformly from [0, min(ceiling, base·2ⁿ⁻¹)].
// Full jitter spreads a fleet's reconnects after a hub outage instead of
// synchronizing them.
func ExponentialBackoff(base, ceiling time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		limit := ceiling
		if attempt < 1 {
			attempt = 1
		}
		if attempt <= 62 {
			if d := base << (attempt - 1); d > 0 && d < ceiling {
				limit = d
			}
		}
		if limit <= 0 {
			return 0
		}
		return rand.N(limit + 1)
	}
}
