package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/localhub"
)

// TestStuckHandler: handlers that never return (they ignore their
// context) are answered 504 at MethodTimeout on their behalf, while other
// methods keep working, keep-alive keeps the connection up, and Close
// returns within ShutdownTimeout plus a margin.
func TestStuckHandler(t *testing.T) {
	const (
		keepAlive       = time.Second
		methodTimeout   = 2 * time.Second
		shutdownTimeout = time.Second
		stuckCalls      = 3
	)
	// The handlers ignore their context: the test releases them at its
	// end, after the client has given up on them.
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			release := make(chan struct{})
			var stuck sync.WaitGroup
			var started atomic.Int32 // stuck handlers entered; each overruns
			mux := echoMux()
			entered := make(chan struct{}, stuckCalls+1)
			mux.HandleFunc("stuck", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				stuck.Add(1)
				defer stuck.Done()
				started.Add(1)
				entered <- struct{}{}
				<-release // ignores its context on purpose
				return &device.MethodResponse{Status: 200}, nil
			})
			dialer, _ := fastDeadPeerDialer(t, tr, keepAlive)
			states := newStateLog()
			cs, err := hub.ConnectionString("dev-1")
			if err != nil {
				t.Fatal(err)
			}
			opts := deviceOptions(t, hub, tr)
			states.tweak(opts)
			// A released handler's result is dropped, with a log line, on
			// its own goroutine: the test waits for those lines, so that
			// nothing logs to it after it ends.
			dropped := &logSignal{pattern: []byte("returned after its deadline"), seen: make(chan struct{})}
			opts.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), dropped), &slog.HandlerOptions{Level: slog.LevelWarn}))
			opts.Transport, opts.KeepAlive = dialer, keepAlive
			opts.MethodTimeout, opts.ShutdownTimeout, opts.MaxConcurrentMethods = methodTimeout, shutdownTimeout, 8
			client, err := device.NewClientFromConnectionString(cs, opts)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- client.Run(context.Background(), mux) }() // joined below
			defer func() {
				close(release) // the stuck handlers end with the test
				stuck.Wait()
				dropped.waitFor(t, int(started.Load()), 30*time.Second)
			}()
			waitSubscribed(t, hub, "dev-1")
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 60*time.Second)

			stuckErrs := make(chan error, stuckCalls)
			for range stuckCalls {
				go func() { // owned by the test: ends with its call, joined by reading stuckErrs
					res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "stuck", ResponseTimeoutInSeconds: 30})
					if err == nil && res.Status != 504 {
						err = fmt.Errorf("status %d %s, want 504 from the device", res.Status, res.Payload)
					}
					stuckErrs <- err
				}()
			}
			for range stuckCalls {
				<-entered
			}
			// Other methods keep working through several keep-alive
			// intervals, and past the stuck handlers' deadline.
			begin := time.Now()
			for i := 0; time.Since(begin) < methodTimeout+3*keepAlive; i++ {
				payload := fmt.Sprint(i)
				res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(payload)})
				if err != nil || res.Status != 200 || string(res.Payload) != payload {
					t.Fatalf("echo %d beside stuck handlers = %+v, %v", i, res, err)
				}
			}
			for range stuckCalls {
				if err := <-stuckErrs; err != nil {
					t.Errorf("stuck call: %v", err)
				}
			}
			if n := states.count(device.StateDisconnected); n > 0 {
				t.Errorf("the connection dropped %d times while handlers were stuck: %v", n, states.snapshot())
			}
			// One more stuck handler, well within its deadline when Close
			// starts: Close waits ShutdownTimeout for it, then gives up.
			lastErr := make(chan error, 1)
			go func() { // owned by the test: ends when the hub or the client ends the call, joined below
				_, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "stuck", ResponseTimeoutInSeconds: 30})
				lastErr <- err
			}()
			<-entered
			closeBegin := time.Now()
			client.Close()
			took := time.Since(closeBegin)
			<-lastErr // answered (503/504) or failed: either way it has ended
			if err := <-done; !errors.Is(err, device.ErrClientClosed) {
				t.Errorf("Run = %v, want ErrClientClosed", err)
			}
			t.Logf("figure: stuck-handler-close transport=%s seconds=%.2f", tr, took.Seconds())
			if took < shutdownTimeout || took > shutdownTimeout+3*time.Second {
				t.Errorf("Close took %v with stuck handlers, want about ShutdownTimeout %v", took, shutdownTimeout)
			}
		})
	}
}

// TestBurstAgainstPool: 1,000 REST invocations from 200 simultaneous
// callers against a pool of 8 handlers are all answered 200, each handled
// exactly once, with never more than 8 handlers running.
func TestBurstAgainstPool(t *testing.T) {
	const (
		burst    = 1000
		pool     = 8
		workTime = 5 * time.Millisecond
		// callers send the burst at once, each its share in turn: 25
		// times the pool is waiting at the device at any moment, without
		// 1,000 TLS handshakes per transport on a small CI machine.
		callers = 200
	)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			var mu sync.Mutex
			running, peak := 0, 0
			requests := newRequestLog()
			echo := requests.echoHandler()
			handler := device.MethodHandlerFunc(func(ctx context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
				mu.Lock()
				running++
				peak = max(peak, running)
				mu.Unlock()
				defer func() {
					mu.Lock()
					running--
					mu.Unlock()
				}()
				// A few milliseconds of simulated work, so that the pool fills.
				work := time.NewTimer(workTime)
				defer work.Stop()
				select {
				case <-work.C:
				case <-ctx.Done():
				}
				return echo.ServeMethod(ctx, r)
			})
			runDevice(t, hub, "dev-1", tr, handler, func(o *device.ClientOptions) { o.MaxConcurrentMethods = pool })
			waitSubscribed(t, hub, "dev-1")
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 90*time.Second)
			start := make(chan struct{})
			errs := make(chan error, burst)
			var wg sync.WaitGroup
			for caller := range callers {
				wg.Go(func() { // owned by the test: joined by wg.Wait
					<-start
					for i := caller; i < burst; i += callers {
						payload := fmt.Sprintf(`{"n":%d}`, i)
						res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(payload), ResponseTimeoutInSeconds: 60})
						if err == nil && (res.Status != 200 || compactJSON(res.Payload) != payload) {
							err = fmt.Errorf("answer %d %s, want 200 %s", res.Status, res.Payload, payload)
						}
						if err != nil {
							errs <- fmt.Errorf("call %d: %w", i, err)
						}
					}
				})
			}
			begin := time.Now()
			close(start)
			wg.Wait()
			took := time.Since(begin)
			close(errs)
			failed := 0
			for err := range errs {
				if failed++; failed <= 10 {
					t.Error(err)
				}
			}
			calls, repeated := requests.total()
			if failed > 0 || calls != burst || len(repeated) > 0 {
				t.Errorf("%d calls failed, handler ran %d times for %d calls, %d ids repeated", failed, calls, burst, len(repeated))
			}
			mu.Lock()
			defer mu.Unlock()
			if peak > pool {
				t.Errorf("%d handlers ran at once, want at most %d", peak, pool)
			}
			t.Logf("figure: burst transport=%s calls=%d callers=%d pool=%d peak=%d seconds=%.2f", tr, burst, callers, pool, peak, took.Seconds())
		})
	}
}

// logSignal counts the log writes that contain pattern and signals each.
type logSignal struct {
	pattern []byte
	mu      sync.Mutex
	n       int
	seen    chan struct{} // closed and replaced at each match
}

func (l *logSignal) Write(p []byte) (int, error) {
	if bytes.Contains(p, l.pattern) {
		l.mu.Lock()
		l.n++
		close(l.seen)
		l.seen = make(chan struct{})
		l.mu.Unlock()
	}
	return len(p), nil
}

// waitFor waits until n writes matched.
func (l *logSignal) waitFor(t *testing.T, n int, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		l.mu.Lock()
		got, seen := l.n, l.seen
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-seen:
		case <-timeout:
			t.Errorf("%d log lines with %q within %v, want %d", got, l.pattern, within, n)
			return
		}
	}
}
