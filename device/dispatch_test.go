package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/transport/transporttest"
	"github.com/google/go-cmp/cmp"
)

func TestAnswers(t *testing.T) {
	big := `"` + strings.Repeat("x", device.MaxPayloadSize) + `"`
	setup := func(m *device.MethodMux) {
		m.HandleFunc("echo", func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
			return &device.MethodResponse{Status: 200, Payload: r.Payload}, nil
		})
		m.HandleFunc("nothing", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			return nil, nil
		})
		m.HandleFunc("zeroStatus", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			return &device.MethodResponse{Payload: json.RawMessage(`{"ok":true}`)}, nil
		})
		m.HandleFunc("fail", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			return nil, errors.New("disk on fire at /dev/sda")
		})
		m.HandleFunc("teapot", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			return nil, fmt.Errorf("wrapped: %w", device.Errorf(418, "short and stout"))
		})
		m.HandleFunc("customError", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			return nil, &device.MethodError{Status: 409, Payload: json.RawMessage(`{"busy":true}`)}
		})
		m.HandleFunc("panic", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			panic("handler bug")
		})
		m.HandleFunc("notJSON", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			return &device.MethodResponse{Status: 200, Payload: json.RawMessage(`{oops`)}, nil
		})
		m.HandleFunc("tooBig", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			return &device.MethodResponse{Status: 200, Payload: json.RawMessage(big)}, nil
		})
		m.HandleFunc("typed", func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
			var in struct {
				Speed int `json:"speed"`
			}
			if err := r.Unmarshal(&in); err != nil {
				return nil, err
			}
			return device.JSONResponse(200, map[string]int{"speed": in.Speed * 2})
		})
	}
	h := start(t, nil, nil, setup)
	defer h.stop()
	ctx := ctxTimeout(t, 10*time.Second)

	tests := []struct {
		name, method, payload string
		wantStatus            int
		wantBody              string
	}{
		{"echo object", "echo", `{"a":[1,2]}`, 200, `{"a":[1,2]}`},
		{"echo scalar", "echo", `5`, 200, `5`},
		{"empty payload means null", "echo", ``, 200, `null`},
		{"nil response", "nothing", `{}`, 200, `null`},
		{"zero status means 200", "zeroStatus", ``, 200, `{"ok":true}`},
		{"unknown method", "nope", `{}`, 501, `{"error":"method not implemented","method":"nope"}`},
		{"request not JSON", "echo", `{bad`, 400, `{"error":"request payload is not valid JSON"}`},
		{"handler error hides details", "fail", ``, 500, `{"error":"method handler failed"}`},
		{"typed error status", "teapot", ``, 418, `{"error":"short and stout"}`},
		{"typed error payload", "customError", ``, 409, `{"busy":true}`},
		{"panic", "panic", ``, 500, `{"error":"method handler panicked"}`},
		{"response not JSON", "notJSON", ``, 500, `{"error":"invalid response: payload is not valid JSON"}`},
		{"response too big", "tooBig", ``, 500, fmt.Sprintf(`{"error":"invalid response: payload of %d bytes exceeds the limit of %d"}`, len(big), device.MaxPayloadSize)},
		{"typed payload", "typed", `{"speed":2}`, 200, `{"speed":4}`},
		{"typed payload missing", "typed", ``, 400, `{"error":"the method needs a payload"}`},
		{"typed payload wrong type", "typed", `{"speed":"fast"}`, 400, ""},
		{"request too big", "echo", big, 413, fmt.Sprintf(`{"error":"request payload of %d bytes exceeds the limit of %d"}`, len(big), device.MaxPayloadSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.invoke(ctx, tt.method, tt.payload)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %.200s)", status, tt.wantStatus, body)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body mismatch (-want +got):\n%s", cmp.Diff(tt.wantBody, body))
			}
			if !json.Valid([]byte(body)) {
				t.Errorf("body is not JSON: %.200s", body)
			}
		})
	}
	if n := h.fake.DuplicateAnswers(); n != 0 {
		t.Errorf("%d duplicate answers", n)
	}
	// The panic did not stop the client.
	if status, _ := h.invoke(ctx, "echo", `1`); status != 200 {
		t.Errorf("after the panic, echo answered %d", status)
	}
}

func TestDefaultHandler(t *testing.T) {
	h := start(t, nil, nil, func(m *device.MethodMux) {
		m.HandleDefault(device.MethodHandlerFunc(func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
			return device.JSONResponse(200, "caught "+r.Name)
		}))
	})
	defer h.stop()
	status, body := h.invoke(ctx10(t), "anything", "")
	if diff := cmp.Diff([]any{200, `"caught anything"`}, []any{status, body}); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func ctx10(t *testing.T) context.Context { return ctxTimeout(t, 10*time.Second) }

func TestMuxRegistrationPanics(t *testing.T) {
	h := device.MethodHandlerFunc(func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) { return nil, nil })
	tests := []struct {
		name string
		do   func(m *device.MethodMux)
	}{
		{"empty name", func(m *device.MethodMux) { m.Handle("", h) }},
		{"nil handler", func(m *device.MethodMux) { m.Handle("x", nil) }},
		{"nil func", func(m *device.MethodMux) { m.HandleFunc("x", nil) }},
		{"duplicate", func(m *device.MethodMux) { m.Handle("x", h); m.Handle("x", h) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.do(device.NewMethodMux())
		})
	}
}

func TestHandlerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var cancelled atomic.Bool
		h := start(t, nil, &device.ClientOptions{MethodTimeout: 2 * time.Second, MaxConcurrentMethods: 1}, func(m *device.MethodMux) {
			m.HandleFunc("polite", func(ctx context.Context, _ *device.MethodRequest) (*device.MethodResponse, error) {
				<-ctx.Done()
				cancelled.Store(true)
				return nil, ctx.Err()
			})
			m.HandleFunc("stuck", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				<-release // ignores its context
				return device.JSONResponse(200, "late")
			})
			m.HandleFunc("quick", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				return device.JSONResponse(200, "quick")
			})
		})
		ctx := context.Background()
		begin := time.Now()
		status, body := h.invoke(ctx, "polite", "")
		if status != 504 || !strings.Contains(body, "did not answer within 2s") {
			t.Errorf("polite: %d %s, want 504", status, body)
		}
		if waited := time.Since(begin); waited != 2*time.Second {
			t.Errorf("answered after %v, want the 2s deadline", waited)
		}
		synctest.Wait() // the handler returns after its context ends
		if !cancelled.Load() {
			t.Error("the handler's context was not cancelled at the deadline")
		}

		// A handler that never returns is answered at its deadline and
		// does not hold the only slot.
		begin = time.Now()
		status, _ = h.invoke(ctx, "stuck", "")
		if status != 504 || time.Since(begin) != 2*time.Second {
			t.Errorf("stuck: status %d after %v, want 504 after 2s", status, time.Since(begin))
		}
		if status, body := h.invoke(ctx, "quick", ""); status != 200 || body != `"quick"` {
			t.Errorf("quick after stuck: %d %s", status, body)
		}
		close(release)
		synctest.Wait()
		if err := h.stop(); !errors.Is(err, device.ErrClientClosed) {
			t.Errorf("Run = %v, want ErrClientClosed", err)
		}
		if n := h.fake.DuplicateAnswers(); n != 0 {
			t.Errorf("%d duplicate answers: the late result was sent too", n)
		}
	})
}

func TestPoolBoundsConcurrency(t *testing.T) {
	const pool, calls = 8, 200
	var running, peak atomic.Int32
	gate := make(chan struct{})
	h := start(t, nil, &device.ClientOptions{MaxConcurrentMethods: pool}, func(m *device.MethodMux) {
		m.HandleFunc("work", func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-gate
			return &device.MethodResponse{Payload: r.Payload}, nil
		})
	})
	defer h.stop()
	ctx := ctxTimeout(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make(chan string, calls)
	for i := range calls {
		wg.Go(func() {
			want := fmt.Sprintf(`{"i":%d}`, i)
			status, body, err := h.fake.Invoke(ctx, "work", []byte(want))
			if err != nil || status != 200 || string(body) != want {
				errs <- fmt.Sprintf("call %d: status %d body %s err %v", i, status, body, err)
			}
		})
	}
	close(gate)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if p := peak.Load(); p > pool || p < 1 {
		t.Errorf("peak concurrency %d, want 1..%d", p, pool)
	}
}

// TestQueueFullAnswers503: requests beyond the handler slots wait in the
// transport's queue, the only one, and the transport answers 503 beyond
// it.
func TestQueueFullAnswers503(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := start(t, &transporttest.FakeOptions{QueueSize: 2}, &device.ClientOptions{MaxConcurrentMethods: 1}, func(m *device.MethodMux) {
			m.HandleFunc("slow", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				<-release
				return nil, nil
			})
		})
		ctx := context.Background()
		results := make(chan int, 4)
		for range 3 { // one runs, two wait
			go func() { status, _ := h.invoke(ctx, "slow", ""); results <- status }()
			synctest.Wait()
		}
		status, body := h.invoke(ctx, "slow", "")
		if status != 503 || !strings.Contains(body, "too many pending") {
			t.Errorf("fourth call: %d %s, want 503", status, body)
		}
		close(release)
		for range 3 {
			if s := <-results; s != 200 {
				t.Errorf("queued call answered %d", s)
			}
		}
		h.stop()
	})
}

// TestUnmarshalErrorsSpeakJSON checks that the 400 a handler returns from
// MethodRequest.Unmarshal tells the caller what is wrong in JSON terms,
// never in Go's (no type names, no struct tags).
func TestUnmarshalErrorsSpeakJSON(t *testing.T) {
	type fan struct {
		Speed int    `json:"speed"`
		Mode  string `json:"mode"`
	}
	tests := []struct {
		payload string
		want    string
	}{
		{`[1,2]`, "the payload must be a JSON object, not an array"},
		{`{"speed":"fast"}`, `"speed" must be a number, not a string`},
		{`{"mode":3}`, `"mode" must be a string, not a number`},
		{`{"speed":1.5}`, `"speed" must be a whole number that fits, not 1.5`},
		{`{"speed":1`, "the payload is not valid JSON"},
	}
	for _, tt := range tests {
		var v fan
		req := &device.MethodRequest{Name: "m", Payload: json.RawMessage(tt.payload)}
		err := req.Unmarshal(&v)
		var me *device.MethodError
		if !errors.As(err, &me) || me.Status != 400 {
			t.Fatalf("Unmarshal(%s) = %v, want a 400 MethodError", tt.payload, err)
		}
		if me.Message != "invalid payload: "+tt.want {
			t.Errorf("Unmarshal(%s) says %q, want %q", tt.payload, me.Message, "invalid payload: "+tt.want)
		}
		for _, goSyntax := range []string{"Go", "struct", "int", "json:"} {
			if strings.Contains(me.Message, goSyntax) {
				t.Errorf("Unmarshal(%s) says %q, which contains %q", tt.payload, me.Message, goSyntax)
			}
		}
	}
}
