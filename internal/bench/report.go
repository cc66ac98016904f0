package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
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
	Rate float64 `json:"calls_per_second"`
	// CPUPerCall is the CPU time (user and system) the devices spent
	// during the run, per call; 0 when not measured, as when the devices
	// share the process of the hub and the callers.
	CPUPerCall time.Duration `json:"-"`
	Latencies  `json:"-"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

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
		CPUPerCall     float64 `json:"cpu_us_per_call,omitempty"`
	}{plain(r), r.Elapsed.Seconds(), ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), us(r.CPUPerCall)})
}

// String is the one-line text form.
func (r Result) String() string {
	cpu := ""
	if r.CPUPerCall > 0 {
		cpu = fmt.Sprintf(" cpu/call=%.1fµs", us(r.CPUPerCall))
	}
	return fmt.Sprintf("%-8s %-4s calls=%-7d rate=%8.1f/s p50=%s p90=%s p99=%s max=%s%s errors=%d (devices=%d concurrency=%d payload=%dB)",
		r.Transport, r.Device, r.Calls, r.Rate, fmtMS(r.P50), fmtMS(r.P90), fmtMS(r.P99), fmtMS(r.Max), cpu, r.Errors,
		r.Devices, r.Concurrency, r.PayloadBytes)
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.3fms", ms(d)) }

// Targets for the SDK against the raw device and the floor device, as
// examples/bench/README.md states them.
const (
	MaxP50Ratio      = 1.05
	MinRateRatio     = 0.95
	MaxFloorCPURatio = 1.5
)

// Comparison is an SDK device against its raw floor, and on MQTT its
// hand-written floor and handoff floor, on one transport: the medians
// over Runs rounds of one run of each.
type Comparison struct {
	Transport   string `json:"transport"`
	SDKKind     string `json:"sdk_device"`               // KindSDK or KindSDKAtMostOnce
	RawKind     string `json:"raw_device"`               // KindRawAtLeastOnce or KindRaw
	FloorKind   string `json:"floor_device,omitempty"`   // KindFloorAtLeastOnce, KindFloor or none
	HandoffKind string `json:"handoff_device,omitempty"` // KindFloorHandoffAtLeastOnce, KindFloorHandoff or none
	Runs        int    `json:"runs"`
	SDK         Result `json:"sdk"`
	Raw         Result `json:"raw"`
	Floor       Result `json:"floor,omitzero"`
	Handoff     Result `json:"handoff,omitzero"`
	// Medians over the rounds of sdk / raw: p50, rate and CPU per call
	// (0 when the CPU was not measured).
	P50Ratio  float64 `json:"p50_ratio"`
	RateRatio float64 `json:"rate_ratio"`
	CPURatio  float64 `json:"cpu_ratio,omitempty"`
	// The same, of sdk / floor.
	FloorP50Ratio  float64 `json:"floor_p50_ratio,omitempty"`
	FloorRateRatio float64 `json:"floor_rate_ratio,omitempty"`
	FloorCPURatio  float64 `json:"floor_cpu_ratio,omitempty"`
	// The same, of sdk / handoff floor; they have no target.
	HandoffP50Ratio  float64 `json:"handoff_p50_ratio,omitempty"`
	HandoffRateRatio float64 `json:"handoff_rate_ratio,omitempty"`
	HandoffCPURatio  float64 `json:"handoff_cpu_ratio,omitempty"`
}

// Met reports whether the targets are met: p50 and rate against raw and,
// when it was measured, CPU per call against the floor.
func (c Comparison) Met() bool {
	return c.P50Ratio <= MaxP50Ratio && c.RateRatio >= MinRateRatio && c.floorCPUMet()
}

func (c Comparison) floorCPUMet() bool { return c.FloorCPURatio <= MaxFloorCPURatio }

// String is the one-line text form of the ratios.
func (c Comparison) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "compare  %-8s %s vs %s: p50 sdk/raw=%.3f (target <= %.2f: %s) rate sdk/raw=%.3f (target >= %.2f: %s)",
		c.Transport, c.SDKKind, c.RawKind, c.P50Ratio, MaxP50Ratio, verdict(c.P50Ratio <= MaxP50Ratio),
		c.RateRatio, MinRateRatio, verdict(c.RateRatio >= MinRateRatio))
	if c.CPURatio > 0 {
		fmt.Fprintf(&b, " cpu sdk/raw=%.3f", c.CPURatio)
	}
	if c.FloorKind != "" {
		fmt.Fprintf(&b, "; vs %s: p50 sdk/floor=%.3f rate sdk/floor=%.3f", c.FloorKind, c.FloorP50Ratio, c.FloorRateRatio)
		if c.FloorCPURatio > 0 {
			fmt.Fprintf(&b, " cpu sdk/floor=%.3f (target <= %.2f: %s)", c.FloorCPURatio, MaxFloorCPURatio, verdict(c.floorCPUMet()))
		}
	}
	if c.HandoffKind != "" {
		fmt.Fprintf(&b, "; vs %s: p50 sdk/handoff=%.3f rate sdk/handoff=%.3f", c.HandoffKind, c.HandoffP50Ratio, c.HandoffRateRatio)
		if c.HandoffCPURatio > 0 {
			fmt.Fprintf(&b, " cpu sdk/handoff=%.3f", c.HandoffCPURatio)
		}
	}
	fmt.Fprintf(&b, " runs=%d", c.Runs)
	return b.String()
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
