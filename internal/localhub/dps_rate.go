package localhub

import (
	"sync"
	"time"
)

// dpsRateLimiter is a token bucket: perMinute tokens a minute, up to a
// minute's worth saved. Each registration request takes one.
type dpsRateLimiter struct {
	perSecond float64
	burst     float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newDPSRateLimiter(perMinute int) *dpsRateLimiter {
	return &dpsRateLimiter{perSecond: float64(perMinute) / 60, burst: float64(perMinute), tokens: float64(perMinute)}
}

// take takes a token at now. When there is none it reports false and how
// long until there is one. A nil limiter always has one.
func (l *dpsRateLimiter) take(now time.Time) (ok bool, wait time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.After(l.last) {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.perSecond)
	}
	if l.last.IsZero() || now.After(l.last) {
		l.last = now
	}
	if l.tokens >= 1 {
		l.tokens--
		return true, 0
	}
	return false, time.Duration((1 - l.tokens) / l.perSecond * float64(time.Second))
}
