package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/faultproxy"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/google/go-cmp/cmp"
)

func soakTestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// collectReports returns a report callback that keeps every report.
func collectReports() (*[]SoakReport, func(SoakReport)) {
	var reports []SoakReport
	return &reports, func(r SoakReport) { reports = append(reports, r) }
}

// TestSoakShort runs a few seconds of soak on every transport, faults and
// a hub restart included, and checks the report's invariants.
func TestSoakShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	reports, report := collectReports()
	cfg := SoakConfig{
		Devices: 1, Callers: 2, Duration: 4 * time.Second, ReportEvery: time.Second, Seed: 1,
		KeepAlive: 2 * time.Second, FaultGap: 600 * time.Millisecond,
		RestartGap:      2 * time.Second, // the first restart comes 1 to 3 s in
		ConnectTimeouts: []int{0, 2}, ResponseTimeouts: []int{5},
		Logger: soakTestLogger(t),
	}
	begin := time.Now()
	end, err := Soak(ctx, cfg, report)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: soak %v in all: %s", time.Since(begin).Round(time.Millisecond), end)

	if diff := cmp.Diff([]string(nil), end.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	var phases []string
	var calls int64
	for _, r := range *reports {
		if len(phases) == 0 || phases[len(phases)-1] != r.Phase {
			phases = append(phases, r.Phase)
		}
		if r.Calls < calls {
			t.Errorf("%s report: calls went down from %d to %d", r.Phase, calls, r.Calls)
		}
		calls = r.Calls
	}
	if diff := cmp.Diff([]string{SoakStart, SoakProgress, SoakEnd}, phases); diff != "" {
		t.Errorf("report phases (-want +got):\n%s", diff)
	}
	if last := (*reports)[len(*reports)-1]; last.Phase != SoakEnd || last.Calls != end.Calls {
		t.Errorf("the last report is not the one returned: %+v", last)
	}

	failed := int64(0)
	for _, n := range end.Failed {
		failed += n
	}
	faults := int64(0)
	for _, n := range end.Faults {
		faults += n
	}
	devices := len(cfg.withDefaults().Transports) * cfg.Devices
	switch {
	case end.Calls != end.Answered+failed:
		t.Errorf("calls %d != answered %d + failed %d", end.Calls, end.Answered, failed)
	case end.Answered == 0:
		t.Error("no call was answered")
	case end.WrongAnswers != 0 || end.Failed[outcomeWrong] != 0:
		t.Errorf("wrong answers: %d", end.WrongAnswers)
	case end.Faults[FaultHubRestart] < 1 || faults-end.Faults[FaultHubRestart] < 1:
		t.Errorf("faults = %v, want a hub restart and a device fault at least", end.Faults)
	case end.Reconnects < int64(devices): // every device reconnects after a hub restart
		t.Errorf("reconnects = %d, want at least %d", end.Reconnects, devices)
	case end.Devices != devices || end.Callers != devices*cfg.Callers || end.Recovered != devices || len(end.Unrecovered) != 0:
		t.Errorf("devices %d, callers %d, recovered %d, unrecovered %v; want %d devices, all recovered",
			end.Devices, end.Callers, end.Recovered, end.Unrecovered, devices)
	case end.Baseline == nil || end.Running == nil || end.Memory.Goroutines > end.Baseline.Goroutines+SoakGoroutineSlack:
		t.Errorf("memory: %+v, baseline %+v", end.Memory, end.Baseline)
	}
}

// TestSoakCountsWrongAnswers gives the devices a handler that answers some
// calls with the answer of the call before: the soak counts them as wrong
// answers and fails.
func TestSoakCountsWrongAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	right := soakHandler()
	var (
		mu       sync.Mutex
		previous *device.MethodRequest
	)
	swap := device.MethodHandlerFunc(func(ctx context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		if !strings.Contains(string(req.Payload), ".c0.") { // the soak's first, probe and last calls are answered right
			return right.ServeMethod(ctx, req)
		}
		mu.Lock()
		answer := previous
		previous = req
		mu.Unlock()
		if answer == nil {
			answer = req
		}
		return right.ServeMethod(ctx, answer)
	})
	cfg := SoakConfig{
		Transports: []string{"mqtt"}, Devices: 1, Callers: 1, Duration: time.Second,
		FaultGap: time.Hour, RestartGap: time.Hour, ResponseTimeouts: []int{5},
		Logger: slog.New(slog.DiscardHandler), handler: swap,
	}
	end, err := Soak(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if end.WrongAnswers < 1 || end.Failed[outcomeWrong] != end.WrongAnswers {
		t.Fatalf("wrong answers %d, failed %v; want some counted", end.WrongAnswers, end.Failed)
	}
	if diff := cmp.Diff([]string{fmt.Sprintf("%d wrong answers", end.WrongAnswers)}, end.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
}

func TestSoakRequestPayload(t *testing.T) {
	for _, size := range []int{0, 10, 64, 100, 4096, device.MaxPayloadSize} {
		req := soakRequest{Token: "soak-mqtt-00.c1.42.0badcafe", Answer: 1234, DelayMS: 56}
		p := soakRequestPayload(req, size)
		if len(p) != max(size, len(soakRequestPayload(req, 0))) {
			t.Errorf("size %d: payload of %d bytes", size, len(p))
		}
		var got soakRequest
		if err := json.Unmarshal(p, &got); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if diff := cmp.Diff(req, got); diff != "" {
			t.Errorf("size %d: decoded (-want +got):\n%s", size, diff)
		}
	}
}

func TestSoakAnswerIsTheCalls(t *testing.T) {
	a, b := "soak-amqp-03.c0.7.00000001", "soak-amqp-03.c1.7.00000002"
	for _, size := range []int{0, 50, 1000, device.MaxPayloadSize} {
		p := soakAnswer(a, size)
		if !json.Valid(p) || len(p) != max(size, len(soakAnswer(a, 0))) {
			t.Errorf("soakAnswer(%d) = %d bytes, valid JSON %v", size, len(p), json.Valid(p))
		}
	}
	call := soakCall{token: a, answer: 300}
	result := func(token string, status, size int) *localhub.MethodResult {
		return &localhub.MethodResult{Status: status, Payload: soakAnswer(token, size)}
	}
	altered := result(a, soakStatus(a), 300)
	altered.Payload[len(altered.Payload)-3]++
	for _, tt := range []struct {
		name          string
		res           *localhub.MethodResult
		outcome, from string
	}{
		{"its own", result(a, soakStatus(a), 300), outcomeOK, ""},
		{"another call's", result(b, soakStatus(b), 300), outcomeWrong, b},
		{"another call's with its status", result(b, soakStatus(a), 300), outcomeWrong, b},
		{"its own, another size", result(a, soakStatus(a), 301), outcomeWrong, a},
		{"its own, another status", result(a, soakStatus(a)+100, 300), outcomeWrong, a},
		{"altered", altered, outcomeWrong, a},
		{"the SDK's timeout", &localhub.MethodResult{Status: 504, Payload: []byte(`{"message":"timed out"}`)}, "device-504", ""},
		{"a 2xx not from the handler", &localhub.MethodResult{Status: 200, Payload: []byte(`null`)}, outcomeWrong, ""},
	} {
		outcome, from := verify(call, tt.res)
		if outcome != tt.outcome || from != tt.from {
			t.Errorf("%s: verify = %q, %q; want %q, %q", tt.name, outcome, from, tt.outcome, tt.from)
		}
	}
	if soakStatus(a) < 200 || soakStatus(a) > 299 {
		t.Errorf("soakStatus = %d", soakStatus(a))
	}
}

func TestFailureKind(t *testing.T) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tt := range []struct {
		ctx  context.Context
		err  error
		want string
	}{
		{t.Context(), &localhub.ServiceError{HTTPStatus: 404, ErrorCode: 404103}, "404103"},
		{t.Context(), fmt.Errorf("wrapped: %w", &localhub.ServiceError{HTTPStatus: 504, ErrorCode: 504101}), "504101"},
		{t.Context(), &localhub.ServiceError{HTTPStatus: 502}, "http-502"},
		{t.Context(), errors.New("dial tcp: connection refused"), outcomeHubDown},
		{cancelled, context.Canceled, outcomeCancelled},
	} {
		if got := failureKind(tt.ctx, tt.err); got != tt.want {
			t.Errorf("failureKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestPickFault checks the faults' lengths against the keep-alive: short
// black holes end before it, long ones after it, and every kind and
// direction is drawn.
func TestPickFault(t *testing.T) {
	const keepAlive = 5 * time.Second
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 2000 {
		f := pickFault(rng, keepAlive)
		seen[f.name()] = true
		var lo, hi time.Duration
		switch f.kind {
		case FaultReset:
			lo, hi = 0, 0
		case FaultBlackHoleShort:
			lo, hi = keepAlive/5, keepAlive*4/5
		case FaultBlackHoleLong:
			lo, hi = keepAlive*3/2, 3*keepAlive
		case FaultStall:
			lo, hi = keepAlive/5, 2*keepAlive
		case FaultSlowLink:
			lo, hi = 2*keepAlive, 6*keepAlive
			if f.bandwidth <= 0 {
				t.Errorf("slow link without a bandwidth: %+v", f)
			}
		default:
			t.Fatalf("unknown fault %+v", f)
		}
		if f.lasts < lo || f.lasts > hi {
			t.Errorf("%s lasts %v, want %v to %v", f.name(), f.lasts, lo, hi)
		}
	}
	var want []string
	for _, kind := range []string{FaultBlackHoleShort, FaultBlackHoleLong, FaultStall} {
		for _, dir := range []faultproxy.Direction{faultproxy.ToTarget, faultproxy.ToClient, faultproxy.Both} {
			want = append(want, kind+"/"+dirName(dir))
		}
	}
	want = append(want, FaultReset, FaultSlowLink)
	for _, name := range want {
		if !seen[name] {
			t.Errorf("%s never drawn", name)
		}
	}
}

func TestSoakReportText(t *testing.T) {
	base := SoakMemory{Goroutines: 3, Heap: 1 << 20, RSS: 8 << 20}
	r := SoakReport{
		Phase: SoakEnd, Seed: 9, Elapsed: 61 * time.Second, Transports: []string{"mqtt"}, Devices: 2, Callers: 4,
		Calls: 10, Answered: 7, Failed: map[string]int64{"504101": 2, outcomeWrong: 1}, WrongAnswers: 1,
		Faults: map[string]int64{FaultReset: 3}, Memory: base, Baseline: &base, Running: &base,
		Recovered: 2, Failures: []string{"1 wrong answers"},
	}
	text := r.String()
	for _, want := range []string{"calls=10 answered=7 failed=504101:2,wrong-answer:1 wrong-answers=1", "faults=reset:3", "recovered=2/2", "FAIL: 1 wrong answers"} {
		if !strings.Contains(text, want) {
			t.Errorf("end report %q lacks %q", text, want)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["passed"] != false || back["elapsed_s"] != 61.0 || back["wrong_answers"] != 1.0 {
		t.Errorf("JSON %s", b)
	}
}
