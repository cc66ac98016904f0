package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Result is the outcome of one run: one transport, one device kind. In
// JSON, latencies are in milliseconds and the elapsed time in seconds.
type Result struct {
	Transport    string `json:"transport"`
	Device       string `json:"device"` // one of the Kind constants
	Devices      int    `json:"devices"`
	Concurrency  int    `json:"concurrency"`
	PayloadBytes int    `json:"payload_bytes"`
	// Calls counts every invocation made, Errors those that failed or
	// came back different; latencies cover all of them.
	Calls   int           `json:"calls"`
	Errors  int           `json:"errors"`
	Elapsed time.Duration `json:"-"`
	// Rate is successful calls per second of Elapsed.
	Rate      float64 `json:"calls_per_second"`
	Latencies `json:"-"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// MarshalJSON writes the durations as milliseconds (elapsed in seconds).
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result // drops the method, so the embedding does not recurse
	return json.Marshal(struct {
		plain
		ElapsedSeconds float64 `json:"elapsed_s"`
		P50            float64 `json:"p50_ms"`
		P90            float64 `json:"p90_ms"`
		P99            float64 `json:"p99_ms"`
		Max            float64 `json:"max_ms"`
	}{plain(r), r.Elapsed.Seconds(), ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max)})
}

// String is the one-line text form.
func (r Result) String() string {
	return fmt.Sprintf("%-8s %-4s calls=%-7d rate=%8.1f/s p50=%s p90=%s p99=%s max=%s errors=%d (devices=%d concurrency=%d payload=%dB)",
		r.Transport, r.Device, r.Calls, r.Rate, fmtMS(r.P50), fmtMS(r.P90), fmtMS(r.P99), fmtMS(r.Max), r.Errors,
		r.Devices, r.Concurrency, r.PayloadBytes)
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.3fms", ms(d)) }

// Targets for the SDK against the raw device, as examples/bench/README.md
// states them.
const (
	MaxP50Ratio  = 1.15
	MinRateRatio = 0.9
)

// Comparison is an SDK device against its raw floor on one transport: the
// medians over Runs alternating runs of each.
type Comparison struct {
	Transport string  `json:"transport"`
	SDKKind   string  `json:"sdk_device"` // KindSDK or KindSDKAtMostOnce
	RawKind   string  `json:"raw_device"` // KindRawAtLeastOnce or KindRaw
	Runs      int     `json:"runs"`
	SDK       Result  `json:"sdk"`
	Raw       Result  `json:"raw"`
	P50Ratio  float64 `json:"p50_ratio"`  // median over the rounds of p50(sdk) / p50(raw)
	RateRatio float64 `json:"rate_ratio"` // median over the rounds of rate(sdk) / rate(raw)
}

// Met reports whether both targets are met.
func (c Comparison) Met() bool { return c.P50Ratio <= MaxP50Ratio && c.RateRatio >= MinRateRatio }

// String is the one-line text form of the ratios.
func (c Comparison) String() string {
	return fmt.Sprintf("compare  %-8s %s vs %s: p50 sdk/raw=%.3f (target <= %.2f: %s) rate sdk/raw=%.3f (target >= %.2f: %s) runs=%d",
		c.Transport, c.SDKKind, c.RawKind, c.P50Ratio, MaxP50Ratio, verdict(c.P50Ratio <= MaxP50Ratio),
		c.RateRatio, MinRateRatio, verdict(c.RateRatio >= MinRateRatio), c.Runs)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// Write prints v (a Result, a Comparison or a FleetResult) as one line of
// text, or of JSON when asJSON is set.
func Write(w io.Writer, v fmt.Stringer, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("bench: encode result: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(w, v.String())
	return err
}
