package localhub

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseTier(t *testing.T) {
	tests := []struct {
		sku     string
		units   int
		want    Tier
		wantErr bool
	}{
		{"S1", 1, Tier{"S1", 1}, false},
		{"s2", 200, Tier{"S2", 200}, false},
		{" S3 ", 10, Tier{"S3", 10}, false},
		{"F1", 1, Tier{"F1", 1}, false},
		{"none", 5, Tier{}, false},
		{"", 0, Tier{}, false},
		{"F1", 2, Tier{}, true},
		{"S3", 11, Tier{}, true},
		{"S1", 201, Tier{}, true},
		{"S1", 0, Tier{}, true},
		{"B1", 1, Tier{}, true}, // the basic tier has no direct methods or jobs
		{"S4", 1, Tier{}, true},
	}
	for _, tt := range tests {
		got, err := ParseTier(tt.sku, tt.units)
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrInvalidTier)) {
			t.Errorf("ParseTier(%q, %d) error = %v, wantErr %v", tt.sku, tt.units, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("ParseTier(%q, %d) = %v, want %v", tt.sku, tt.units, got, tt.want)
		}
	}
	if _, err := Start(t.Context(), Options{Tier: Tier{SKU: "S1", Units: 0}}); !errors.Is(err, ErrInvalidTier) {
		t.Errorf("Start with S1×0 = %v, want ErrInvalidTier", err)
	}
}

// TestTierRates checks each tier's figures against the quotas and
// throttling page, per second for the whole hub.
func TestTierRates(t *testing.T) {
	tests := []struct {
		tier Tier
		want tierRates
	}{
		{Tier{"F1", 1}, tierRates{methods: 40, queries: 20.0 / 60, twinReads: 100, twinUpdates: 50, jobsOps: 100.0 / 60, jobDeviceOps: 10, maxActiveJobs: 1}},
		{Tier{"S1", 3}, tierRates{methods: 120, queries: 1, twinReads: 100, twinUpdates: 50, jobsOps: 5, jobDeviceOps: 10, maxActiveJobs: 1}},
		{Tier{"S2", 2}, tierRates{methods: 240, queries: 40.0 / 60, twinReads: 100, twinUpdates: 50, jobsOps: 200.0 / 60, jobDeviceOps: 10, maxActiveJobs: 5}},
		{Tier{"S2", 30}, tierRates{methods: 3600, queries: 10, twinReads: 300, twinUpdates: 150, jobsOps: 50, jobDeviceOps: 30, maxActiveJobs: 5}},
		{Tier{"S3", 2}, tierRates{methods: 12288, queries: 2000.0 / 60, twinReads: 1000, twinUpdates: 500, jobsOps: 10000.0 / 60, jobDeviceOps: 100, maxActiveJobs: 10}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.tier.rates(), cmp.AllowUnexported(tierRates{})); diff != "" {
			t.Errorf("%v rates (-want +got):\n%s", tt.tier, diff)
		}
	}
	for _, tt := range []struct {
		bytes int
		want  float64
	}{{0, 1}, {1, 1}, {4096, 1}, {4097, 2}, {8192, 2}, {128 * 1024, 32}} {
		if got := methodMeters(tt.bytes); got != tt.want {
			t.Errorf("methodMeters(%d) = %v, want %v", tt.bytes, got, tt.want)
		}
	}
}

// TestShaper runs a shaper of 10 tokens a second with a budget of 20 and
// a backlog of 2 s: the budget goes at once, then requests wait their turn
// at the rate, and one that would wait more than 2 s is refused.
func TestShaper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newShaper(10, 20, 2*time.Second, 3)
		start := time.Now()
		if err := s.acquire(t.Context(), 20); err != nil || time.Since(start) != 0 {
			t.Fatalf("the budget: %v after %v, want at once", err, time.Since(start))
		}
		if err := s.acquire(t.Context(), 5); err != nil || time.Since(start) != 500*time.Millisecond {
			t.Fatalf("shaped: %v after %v, want 500ms", err, time.Since(start))
		}
		// 15 more tokens would be ready in 1.5 s; then 10 in 2.5 s is too late.
		if err := s.acquire(t.Context(), 15); err != nil || time.Since(start) != 2*time.Second {
			t.Fatalf("shaped: %v after %v, want 2s", err, time.Since(start))
		}
		// A request that leaves the backlog gives its tokens back.
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.acquire(ctx, 5) }() // owned by the bubble: ends with ctx
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled wait = %v, want context.Canceled", err)
		}
		for range 2 {
			go s.acquire(t.Context(), 10) // owned by the bubble: waits 1 s, then 2 s
		}
		synctest.Wait()
		if err := s.acquire(t.Context(), 1); !errors.Is(err, errThrottled) {
			t.Errorf("beyond the backlog = %v, want errThrottled", err)
		}
		time.Sleep(2 * time.Second) // the two waiters are served
		synctest.Wait()
		if err := s.acquire(t.Context(), 10); err != nil || time.Since(start) != 5*time.Second {
			t.Errorf("after the backlog drained: %v after %v, want 5s", err, time.Since(start))
		}
	})
}

// TestShaperBacklogCount refuses a request when maxQueued already wait.
func TestShaperBacklogCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newShaper(1, 1, time.Hour, 2)
		if err := s.acquire(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			go s.acquire(t.Context(), 1) // owned by the bubble: served within 2 s
		}
		synctest.Wait()
		if err := s.acquire(t.Context(), 1); !errors.Is(err, errBacklogRequests) {
			t.Errorf("third waiter = %v, want errBacklogRequests", err)
		}
	})
}

// TestJobPacing takes ten job device operations on S1 (10/s): one at once,
// then one every 100 ms.
func TestJobPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottles(Tier{"S1", 1})
		start := time.Now()
		for range 10 {
			if err := th.jobDeviceOperation(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if got := time.Since(start); got != 900*time.Millisecond {
			t.Errorf("10 operations took %v, want 900ms", got)
		}
		var none throttles
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := none.jobDeviceOperation(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("no throttle, ended context = %v, want context.Canceled", err)
		}
	})
}
