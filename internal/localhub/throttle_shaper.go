package localhub

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"time"
)

// Errors of a shaper's acquire, testable with errors.Is.
var (
	// errThrottled: the request would wait longer than the backlog allows.
	errThrottled = errors.New("localhub: throttled: the backlog is full")
	// errBacklogRequests: too many requests already wait.
	errBacklogRequests = errors.New("localhub: throttled: too many requests wait in the backlog")
)

// shaper is a token bucket that shapes instead of refusing at once: a
// request that finds too few tokens reserves them and waits until the rate
// has refilled them, unless that wait would exceed window or maxQueued
// requests already wait (0: no bound on either). A nil shaper admits
// everything. It is safe for concurrent use and holds no lock while a
// request waits.
type shaper struct {
	rate      float64 // tokens per second
	burst     float64 // the bucket's size
	window    time.Duration
	maxQueued int

	mu     sync.Mutex
	tokens float64 // may be negative: tokens reserved by waiting requests
	last   time.Time
	queued int
}

func newShaper(rate, burst float64, window time.Duration, maxQueued int) *shaper {
	return &shaper{rate: rate, burst: burst, window: window, maxQueued: maxQueued, tokens: burst}
}

// acquire takes n tokens, waiting while the backlog allows. It returns nil
// once admitted, errThrottled or errBacklogRequests when refused, or ctx's
// cause when ctx ends first (the tokens are then given back), at once when
// ctx's deadline comes before the turn.
func (s *shaper) acquire(ctx context.Context, n float64) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if s == nil {
		return nil
	}
	s.mu.Lock()
	now := time.Now()
	if !s.last.IsZero() {
		s.tokens = math.Min(s.burst, s.tokens+now.Sub(s.last).Seconds()*s.rate)
	}
	s.last = now
	s.tokens -= n
	if s.tokens >= 0 {
		s.mu.Unlock()
		return nil
	}
	wait := time.Duration(math.Ceil(-s.tokens / s.rate * float64(time.Second)))
	deadline, hasDeadline := ctx.Deadline()
	switch {
	case hasDeadline && !now.Add(wait).Before(deadline):
		// The turn would come when ctx has ended: a job out of time.
		s.tokens += n
		s.mu.Unlock()
		return context.DeadlineExceeded
	case s.window > 0 && wait > s.window:
		s.tokens += n
		s.mu.Unlock()
		return errThrottled
	case s.maxQueued > 0 && s.queued >= s.maxQueued:
		s.tokens += n
		s.mu.Unlock()
		return errBacklogRequests
	}
	s.queued++
	s.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case <-t.C:
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	s.mu.Lock()
	s.queued--
	if err != nil {
		s.tokens += n
	}
	s.mu.Unlock()
	return err
}

// jobDeviceOperation waits for a job device operation's turn; it fails only
// when ctx ends.
func (t *throttles) jobDeviceOperation(ctx context.Context) error {
	return t.jobDeviceOps.acquire(ctx, 1)
}

// admit runs a request of n units past shaper s (nil: no limit), waiting
// while it is shaped. When s refuses it, or the request ends while it
// waits, admit answers it and returns false.
func (h *Hub) admit(w http.ResponseWriter, r *http.Request, s *shaper, n float64, operation string) bool {
	err := s.acquire(r.Context(), n)
	switch {
	case err == nil:
		return true
	case errors.Is(err, errThrottled):
		h.log.Info("rest: throttled", "operation", operation, "path", r.URL.Path)
		errThrottling(operation).write(w)
	case errors.Is(err, errBacklogRequests):
		h.log.Info("rest: throttled: backlog full", "operation", operation, "path", r.URL.Path)
		errBacklogLimit(operation).write(w)
	default: // the caller left, or the hub is closing
		errServiceUnavailable().write(w)
	}
	return false
}
