package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var sampleResult = Result{
	Transport: "mqtt", Device: KindSDK, Devices: 2, Concurrency: 16, PayloadBytes: 100,
	Calls: 1000, Errors: 1, Elapsed: 2 * time.Second, Rate: 499.5,
	Latencies: Latencies{P50: 1500 * time.Microsecond, P90: 2 * time.Millisecond, P99: 3 * time.Millisecond, Max: 40 * time.Millisecond},
}

func TestResultText(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sampleResult, false); err != nil {
		t.Fatal(err)
	}
	want := "mqtt     sdk  calls=1000    rate=   499.5/s p50=1.500ms p90=2.000ms p99=3.000ms max=40.000ms errors=1 (devices=2 concurrency=16 payload=100B)\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}

func TestResultWithCPU(t *testing.T) {
	r := sampleResult
	r.CPUPerCall = 12500 * time.Nanosecond
	if s := r.String(); !strings.Contains(s, " max=40.000ms cpu/call=12.5µs errors=1 ") {
		t.Errorf("text = %q, want the CPU per call after max", s)
	}
	var got struct {
		CPU float64 `json:"cpu_us_per_call"`
	}
	var buf bytes.Buffer
	if err := Write(&buf, r, true); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil || got.CPU != 12.5 {
		t.Errorf("JSON %s: cpu_us_per_call = %v (%v), want 12.5", buf.Bytes(), got.CPU, err)
	}
}

func TestResultJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sampleResult, true); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(buf.String(), "}\n") || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("not one JSON line: %q", buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"transport": "mqtt", "device": "sdk", "devices": 2.0, "concurrency": 16.0, "payload_bytes": 100.0,
		"calls": 1000.0, "errors": 1.0, "calls_per_second": 499.5, "elapsed_s": 2.0,
		"p50_ms": 1.5, "p90_ms": 2.0, "p99_ms": 3.0, "max_ms": 40.0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}

func TestComparison(t *testing.T) {
	for _, tt := range []struct {
		name           string
		p50, rate, cpu float64
		met            bool
		text           string
	}{
		{"both met", 1.05, 0.95, 0, true, "p50 sdk/raw=1.050 (target <= 1.05: met) rate sdk/raw=0.950 (target >= 0.95: met) runs=3"},
		{"latency missed", 1.06, 0.95, 0, false, "p50 sdk/raw=1.060 (target <= 1.05: MISSED)"},
		{"rate missed", 1.00, 0.94, 0, false, "rate sdk/raw=0.940 (target >= 0.95: MISSED)"},
		{"floor CPU met", 1.00, 1.00, 1.5, true, "cpu sdk/raw=0.900; vs floor-at-least-once: p50 sdk/floor=1.200 rate sdk/floor=0.800 cpu sdk/floor=1.500 (target <= 1.50: met) runs=3"},
		{"floor CPU missed", 1.00, 1.00, 1.6, false, "cpu sdk/floor=1.600 (target <= 1.50: MISSED)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Comparison{Transport: "mqtt-ws", SDKKind: KindSDK, RawKind: KindRawAtLeastOnce, Runs: 3, SDK: sampleResult, Raw: sampleResult, P50Ratio: tt.p50, RateRatio: tt.rate}
			if tt.cpu > 0 {
				c.FloorKind, c.Floor, c.CPURatio = KindFloorAtLeastOnce, sampleResult, 0.9
				c.FloorP50Ratio, c.FloorRateRatio, c.FloorCPURatio = 1.2, 0.8, tt.cpu
			}
			if c.Met() != tt.met {
				t.Errorf("Met() = %v, want %v", c.Met(), tt.met)
			}
			if s := c.String(); !strings.Contains(s, tt.text) || !strings.Contains(s, "mqtt-ws") {
				t.Errorf("String() = %q, want it to contain %q", s, tt.text)
			}
			var buf bytes.Buffer
			if err := Write(&buf, c, true); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Transport string  `json:"transport"`
				P50Ratio  float64 `json:"p50_ratio"`
				SDK       struct {
					P50 float64 `json:"p50_ms"`
				} `json:"sdk"`
			}
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Transport != "mqtt-ws" || got.P50Ratio != tt.p50 || got.SDK.P50 != 1.5 {
				t.Errorf("JSON = %s", buf.Bytes())
			}
		})
	}
}

func TestComparisonWithHandoffFloor(t *testing.T) {
	c := Comparison{Transport: "mqtt", SDKKind: KindSDK, RawKind: KindRawAtLeastOnce, Runs: 3, SDK: sampleResult, Raw: sampleResult, P50Ratio: 1, RateRatio: 1, CPURatio: 0.9,
		FloorKind: KindFloorAtLeastOnce, Floor: sampleResult, FloorP50Ratio: 1.2, FloorRateRatio: 0.8, FloorCPURatio: 1.6,
		HandoffKind: KindFloorHandoffAtLeastOnce, Handoff: sampleResult, HandoffP50Ratio: 1.1, HandoffRateRatio: 0.9, HandoffCPURatio: 1.3}
	if c.Met() { // the handoff floor has no target: the floor's CPU ratio still decides
		t.Error("Met() = true with the CPU ratio to the floor missed")
	}
	want := "cpu sdk/floor=1.600 (target <= 1.50: MISSED); vs floor-handoff-at-least-once: p50 sdk/handoff=1.100 rate sdk/handoff=0.900 cpu sdk/handoff=1.300 runs=3"
	if s := c.String(); !strings.Contains(s, want) {
		t.Errorf("String() = %q, want it to contain %q", s, want)
	}
	handoffFields := func(c Comparison) map[string]any {
		t.Helper()
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var all map[string]any
		if err := json.Unmarshal(b, &all); err != nil {
			t.Fatal(err)
		}
		fields := map[string]any{}
		for k, v := range all {
			if strings.HasPrefix(k, "handoff") {
				fields[k] = v
			}
		}
		if h, ok := fields["handoff"].(map[string]any); ok {
			fields["handoff"] = h["device"]
		}
		return fields
	}
	wantJSON := map[string]any{
		"handoff_device": KindFloorHandoffAtLeastOnce, "handoff": sampleResult.Device,
		"handoff_p50_ratio": 1.1, "handoff_rate_ratio": 0.9, "handoff_cpu_ratio": 1.3,
	}
	if diff := cmp.Diff(wantJSON, handoffFields(c)); diff != "" {
		t.Errorf("JSON's handoff fields (-want +got):\n%s", diff)
	}
	c.HandoffKind, c.Handoff, c.HandoffP50Ratio, c.HandoffRateRatio, c.HandoffCPURatio = "", Result{}, 0, 0, 0
	if diff := cmp.Diff(map[string]any{}, handoffFields(c)); diff != "" {
		t.Errorf("JSON without the handoff floor (-want +got):\n%s", diff)
	}
	if s := c.String(); strings.Contains(s, "handoff") {
		t.Errorf("String() without the handoff floor = %q", s)
	}
}

func TestMedianResult(t *testing.T) {
	mk := func(p50 time.Duration, rate float64, calls int) Result {
		return Result{Transport: "mqtt", Device: KindRaw, Calls: calls, Rate: rate, CPUPerCall: 10 * p50, Latencies: Latencies{P50: p50, P90: p50, P99: p50, Max: p50}}
	}
	got := medianResult([]Result{mk(3, 30, 1), mk(1, 10, 2), mk(2, 20, 4)})
	want := Result{Transport: "mqtt", Device: KindRaw, Calls: 7, Rate: 20, CPUPerCall: 20, Latencies: Latencies{P50: 2, P90: 2, P99: 2, Max: 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("medianResult (-want +got):\n%s", diff)
	}
}

func TestFleetResultText(t *testing.T) {
	f := FleetResult{Clients: 100, ConnectTime: 1500 * time.Millisecond, HeapPerClient: 32 * 1024, StackPerClient: 16 * 1024, GoroutinesPerClient: 2, RSSPerClient: 80 * 1024,
		HubRSSPerSession: 40 * 1024, InvokeTime: 2 * time.Second, Invoked: 100, FileLimit: 20000}
	want := "fleet    clients=100 connect=1.5s heap/client=32.0KB (target <= 64KB: met) stack/client=16.0KB goroutines/client=2.0 rss/client=80.0KB hub-rss/session=40.0KB invoke-all=2s (target < 30s: met) invoked=100 errors=0 fd-limit=20000 (hub in another process)"
	if diff := cmp.Diff(want, f.String()); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
	f.Errors, f.HeapPerClient, f.HubInProcess = 1, 65*1024, true
	if s := f.String(); strings.Count(s, "MISSED") != 2 || !strings.Contains(s, "hub in this process") {
		t.Errorf("text with misses = %q", s)
	}
}

func TestRoundRatios(t *testing.T) {
	mk := func(p50 time.Duration, rate float64, cpu time.Duration) Result {
		return Result{Rate: rate, CPUPerCall: cpu, Latencies: Latencies{P50: p50}}
	}
	tests := []struct {
		name                   string
		sdk, raw               []Result
		wantP50, want, wantCPU float64
	}{
		{"none", nil, nil, 0, 0, 0},
		{"one round", []Result{mk(110, 90, 30)}, []Result{mk(100, 100, 20)}, 1.1, 0.9, 1.5},
		// Load rose during rounds 2 and 3: the ratio of the medians
		// would be 150/100 = 1.5, the rounds' ratios say 1.0 to 1.1.
		{"drifting load", []Result{mk(100, 100, 10), mk(200, 50, 20), mk(300, 40, 30)}, []Result{mk(100, 100, 10), mk(190, 50, 19), mk(300, 40, 30)}, 1.0, 1.0, 1.0},
		{"other without figures is skipped", []Result{mk(120, 80, 12), mk(100, 100, 10)}, []Result{mk(0, 0, 0), mk(100, 100, 10)}, 1.0, 1.0, 1.0},
		{"CPU not measured", []Result{mk(100, 100, 0)}, []Result{mk(100, 100, 0)}, 1.0, 1.0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p50, rate, cpu := roundRatios(tt.sdk, tt.raw)
			if diff := cmp.Diff([3]float64{tt.wantP50, tt.want, tt.wantCPU}, [3]float64{p50, rate, cpu}, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("roundRatios (-want +got):\n%s", diff)
			}
		})
	}
}
