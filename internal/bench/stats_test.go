package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// ms1to returns 1 ms, 2 ms, … n ms.
func ms1to(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	for _, tt := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample", ms1to(1), 99, time.Millisecond},
		{"p50 of 10", ms1to(10), 50, 5 * time.Millisecond},
		{"p90 of 10", ms1to(10), 90, 9 * time.Millisecond},
		{"p99 of 10", ms1to(10), 99, 10 * time.Millisecond},
		{"p50 of 100", ms1to(100), 50, 50 * time.Millisecond},
		{"p99 of 100", ms1to(100), 99, 99 * time.Millisecond},
		{"p99 of 1000", ms1to(1000), 99, 990 * time.Millisecond},
		{"p90 of 15 rounds up", ms1to(15), 90, 14 * time.Millisecond},
		{"p100 is the max", ms1to(7), 100, 7 * time.Millisecond},
		{"p0 is the min", ms1to(7), 0, time.Millisecond},
		{"clamped above", ms1to(7), 250, 7 * time.Millisecond},
		{"clamped below", ms1to(7), -3, time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%d samples, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSortsAndPicks(t *testing.T) {
	samples := []time.Duration{9, 3, 7, 1, 5, 10, 2, 8, 4, 6}
	want := Latencies{P50: 5, P90: 9, P99: 10, Max: 10}
	if diff := cmp.Diff(want, Summarize(samples)); diff != "" {
		t.Errorf("Summarize (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Latencies{}, Summarize(nil)); diff != "" {
		t.Errorf("Summarize(nil) (-want +got):\n%s", diff)
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{4}, 4}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestPayload(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{{0, ""}, {1, "0"}, {2, `""`}, {5, `"xxx"`}} {
		if got := string(Payload(tt.n)); got != tt.want {
			t.Errorf("Payload(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	if got := len(Payload(DefaultPayloadBytes)); got != DefaultPayloadBytes {
		t.Errorf("len(Payload(%d)) = %d", DefaultPayloadBytes, got)
	}
}
