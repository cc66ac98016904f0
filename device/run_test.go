package device_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/transporttest"
	"github.com/google/go-cmp/cmp"
)

func echoMux(m *device.MethodMux) {
	m.HandleFunc("echo", func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Payload: r.Payload}, nil
	})
}

// recordingBackoff returns fixed delays and remembers the attempts asked.
type recordingBackoff struct {
	mu       sync.Mutex
	attempts []int
}

func (b *recordingBackoff) delay(attempt int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts = append(b.attempts, attempt)
	return time.Duration(attempt) * time.Second
}

func (b *recordingBackoff) get() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.attempts...)
}

func TestReconnectWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &recordingBackoff{}
		h := start(t, nil, &device.ClientOptions{Backoff: b.delay}, echoMux)
		ctx := context.Background()
		if err := h.fake.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		// Three refused attempts after the drop: delays of 1, 2, 3 and 4 s
		// (the drop itself is attempt 1).
		h.fake.FailDials(3, nil)
		begin := time.Now()
		h.fake.Drop(nil)
		if status, _ := h.invoke(ctx, "echo", `1`); status != 200 {
			t.Errorf("after reconnect, echo answered %d", status)
		}
		if got, want := time.Since(begin), (1+2+3+4)*time.Second; got != want {
			t.Errorf("reconnected after %v, want %v", got, want)
		}
		if diff := cmp.Diff([]int{1, 2, 3, 4}, b.get()); diff != "" {
			t.Errorf("backoff attempts (-want +got):\n%s", diff)
		}
		if got := h.fake.Dials(); got != 5 {
			t.Errorf("%d dials, want 5", got)
		}
		// A connection that stays up a minute restarts the count.
		time.Sleep(2 * time.Minute) // virtual time inside the synctest bubble
		h.fake.Drop(nil)
		if status, _ := h.invoke(ctx, "echo", `2`); status != 200 {
			t.Errorf("after second reconnect, echo answered %d", status)
		}
		if got := b.get(); got[len(got)-1] != 1 {
			t.Errorf("attempt after a stable connection = %d, want 1", got[len(got)-1])
		}
		h.stop()
		want := []device.State{
			device.StateConnecting, device.StateConnected, device.StateDisconnected,
			device.StateConnecting, device.StateDisconnected, device.StateConnecting, device.StateDisconnected,
			device.StateConnecting, device.StateDisconnected,
			device.StateConnecting, device.StateConnected, device.StateDisconnected,
			device.StateConnecting, device.StateConnected, device.StateClosed,
		}
		if diff := cmp.Diff(want, h.states.get()); diff != "" {
			t.Errorf("states (-want +got):\n%s", diff)
		}
	})
}

func TestDefaultBackoffHasFullJitterAndCap(t *testing.T) {
	b := device.ExponentialBackoff(time.Second, 8*time.Second)
	for attempt, ceiling := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 10: 8 * time.Second, 100: 8 * time.Second} {
		var lo, hi time.Duration = ceiling, 0
		for range 2000 {
			d := b(attempt)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", attempt, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter: the draws cover most of the range.
		if lo > ceiling/10 || hi < ceiling*9/10 {
			t.Errorf("attempt %d: delays span [%v, %v], want most of [0, %v]", attempt, lo, hi, ceiling)
		}
	}
}

func TestThrottledWaitsLonger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := transporttest.NewFake(nil)
		// Armed before Run starts, so that the very first dial is refused.
		fake.FailDials(1, fmt.Errorf("quota: %w", transport.ErrThrottled))
		cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
		c, err := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{
			Transport: fake,
			Backoff:   func(int) time.Duration { return time.Millisecond },
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		begin := time.Now()
		go func() { done <- c.Run(context.Background(), device.NewMethodMux()) }()
		if err := fake.WaitConnected(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(begin); got < 10*time.Second {
			t.Errorf("connected %v after a throttled refusal, want at least 10s", got)
		}
		if n := fake.Dials(); n != 2 {
			t.Errorf("%d dials, want 2", n)
		}
		c.Close()
		<-done
	})
}

func TestFatalErrorEndsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := transporttest.NewFake(nil)
		fake.RejectCredentials()
		var states stateLog
		cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
		c, err := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{Transport: fake, OnStateChange: states.add})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Run(context.Background(), device.NewMethodMux())
		var de *device.Error
		if !errors.As(err, &de) || de.Code != device.CodeUnauthorized || !errors.Is(err, transport.ErrUnauthorized) {
			t.Fatalf("Run = %v, want *device.Error with CodeUnauthorized wrapping ErrUnauthorized", err)
		}
		if n := fake.Dials(); n != 1 {
			t.Errorf("%d dials, want 1: a fatal error is not retried", n)
		}
		if diff := cmp.Diff([]device.State{device.StateConnecting, device.StateDisconnected, device.StateClosed}, states.get()); diff != "" {
			t.Errorf("states (-want +got):\n%s", diff)
		}
		if last := states.errs[len(states.errs)-1]; !errors.Is(last, transport.ErrUnauthorized) {
			t.Errorf("StateClosed error = %v", last)
		}
		c.Close()
	})
}

func TestWrongKeyIsFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := transporttest.NewFake(&transporttest.FakeOptions{Key: []byte("another key entirely")})
		cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
		c, _ := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{Transport: fake})
		err := c.Run(context.Background(), device.NewMethodMux())
		if !errors.Is(err, sastoken.ErrBadSignature) || !errors.Is(err, transport.ErrUnauthorized) {
			t.Fatalf("Run = %v, want a bad-signature unauthorized error", err)
		}
	})
}

func TestRenewalByReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, &transporttest.FakeOptions{Key: testKey}, &device.ClientOptions{TokenLifetime: time.Hour}, echoMux)
		ctx := context.Background()
		if err := h.fake.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		// Two renewals: at 48 min, and 48 min after that.
		for i := range 2 {
			time.Sleep(47 * time.Minute) // virtual time inside the synctest bubble
			if n := h.fake.Dials(); n != 1+i {
				t.Fatalf("after %v: %d dials, want %d", time.Since(begin), n, 1+i)
			}
			time.Sleep(time.Minute + time.Second) // virtual time inside the synctest bubble
			synctest.Wait()
			if n := h.fake.Dials(); n != 2+i {
				t.Fatalf("after %v: %d dials, want %d (renewal at 80%% of the lifetime)", time.Since(begin), n, 2+i)
			}
			if status, _ := h.invoke(ctx, "echo", `1`); status != 200 {
				t.Errorf("after renewal %d, echo answered %d", i+1, status)
			}
		}
		h.stop()
		// No disconnection is reported for a planned renewal... but the
		// connection did change, so the states say so.
		for _, st := range h.states.get() {
			if st == device.StateClosed {
				return
			}
		}
		t.Error("no StateClosed")
	})
}

func TestRenewalInBand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, &transporttest.FakeOptions{Key: testKey, InBandRefresh: true}, &device.ClientOptions{TokenLifetime: 10 * time.Minute}, echoMux)
		ctx := context.Background()
		if err := h.fake.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		// Ten renewals over more than ten lifetimes, invoking throughout.
		for i := range 10 {
			time.Sleep(8*time.Minute + time.Second) // virtual time inside the synctest bubble
			synctest.Wait()
			if status, _ := h.invoke(ctx, "echo", fmt.Sprint(i)); status != 200 {
				t.Fatalf("invoke %d answered %d", i, status)
			}
		}
		if n := h.fake.Dials(); n != 1 {
			t.Errorf("%d dials, want 1: renewal is in band", n)
		}
		if n := h.fake.Refreshes(); n != 10 {
			t.Errorf("%d refreshes, want 10", n)
		}
		h.stop()
	})
}

// TestRenewalWaitsForCallsInFlight checks that a renewal by reconnection
// keeps the connection until the calls it delivered are answered, since
// their answers can go nowhere else.
func TestRenewalWaitsForCallsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		h := start(t, &transporttest.FakeOptions{Key: testKey}, &device.ClientOptions{TokenLifetime: time.Hour, MethodTimeout: 10 * time.Minute}, func(m *device.MethodMux) {
			m.HandleFunc("slow", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				close(started)
				<-release
				return device.JSONResponse(200, "done")
			})
		})
		ctx := context.Background()
		if err := h.fake.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(47 * time.Minute) // virtual time inside the synctest bubble
		answer := make(chan string, 1)
		go func() {
			status, body := h.invoke(ctx, "slow", "")
			answer <- fmt.Sprint(status, " ", body)
		}()
		<-started
		time.Sleep(5 * time.Minute) // the renewal is due at 48 min
		synctest.Wait()
		if n := h.fake.Dials(); n != 1 {
			t.Fatalf("%d dials while a call of the connection was running, want 1", n)
		}
		close(release)
		if got := <-answer; got != `200 "done"` {
			t.Errorf("answer = %s", got)
		}
		synctest.Wait()
		if n := h.fake.Dials(); n != 2 {
			t.Errorf("%d dials once the call was answered, want 2", n)
		}
		if got := h.client.Stats(); got != (device.Stats{}) {
			t.Errorf("Stats = %+v, want nothing lost", got)
		}
		h.stop()
	})
}

// TestRefusedInBandRenewal checks that a put-token refused on the live
// connection leads to a new connection with a fresh token, and ends Run
// only when that dial is refused too.
func TestRefusedInBandRenewal(t *testing.T) {
	for _, redialRefused := range []bool{false, true} {
		t.Run(fmt.Sprint("redial refused=", redialRefused), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := start(t, &transporttest.FakeOptions{Key: testKey, InBandRefresh: true}, &device.ClientOptions{TokenLifetime: 10 * time.Minute}, echoMux)
				ctx := context.Background()
				if err := h.fake.WaitConnected(ctx); err != nil {
					t.Fatal(err)
				}
				h.fake.RefuseRefreshes(1)
				if redialRefused {
					h.fake.RejectCredentials()
				}
				time.Sleep(8*time.Minute + time.Second) // virtual time inside the synctest bubble
				synctest.Wait()
				if n := h.fake.Dials(); n != 2 {
					t.Fatalf("%d dials after the refused renewal, want 2", n)
				}
				if redialRefused {
					var de *device.Error
					if err := <-h.done; !errors.As(err, &de) || de.Code != device.CodeUnauthorized {
						t.Fatalf("Run = %v, want CodeUnauthorized", err)
					}
					h.done <- nil // for stop
					h.stop()
					return
				}
				if status, _ := h.invoke(ctx, "echo", `1`); status != 200 {
					t.Errorf("echo after the reconnection answered %d", status)
				}
				select {
				case err := <-h.done:
					t.Fatalf("Run ended: %v", err)
				default:
				}
				h.stop()
			})
		})
	}
}

func TestFixedTokenExpiryStopsWithoutLooping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := transporttest.NewFake(&transporttest.FakeOptions{Key: testKey})
		token := sas.Sign(testKey, sas.Resource(testHost, "dev-1", ""), "", time.Now().Add(10*time.Minute))
		cred, err := sas.NewTokenCredential(token)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{Transport: fake})
		begin := time.Now()
		mux := device.NewMethodMux()
		echoMux(mux)
		done := make(chan error, 1)
		go func() { done <- c.Run(context.Background(), mux) }()
		if err := fake.WaitConnected(context.Background()); err != nil {
			t.Fatal(err)
		}
		err = <-done
		var de *device.Error
		if !errors.As(err, &de) || de.Code != device.CodeUnauthorized || !errors.Is(err, sas.ErrTokenExpired) {
			t.Fatalf("Run = %v, want CodeUnauthorized wrapping sas.ErrTokenExpired", err)
		}
		if got := time.Since(begin); got != 10*time.Minute {
			t.Errorf("stopped after %v, want at the expiry (10m)", got)
		}
		if n := fake.Dials(); n != 2 {
			t.Errorf("%d dials, want 2 (the first, and one that finds the token expired)", n)
		}
	})
}

// TestAnswerNeverCrossesConnections drives the race behind a request id
// reused across connections: a handler's answer is due after its
// connection dropped, and a new call on the new connection carries the
// same request id. The late answer is dropped, logged and counted; it
// never reaches the new call.
func TestAnswerNeverCrossesConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		var logs syncBuffer
		h := start(t, nil, &device.ClientOptions{Backoff: func(int) time.Duration { return time.Second }, Logger: debugLogger(&logs)}, func(m *device.MethodMux) {
			m.HandleFunc("slow", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				close(started)
				<-release
				return device.JSONResponse(200, "answer to slow")
			})
			m.HandleFunc("fast", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				return device.JSONResponse(200, "answer to fast")
			})
		})
		lost := make(chan error, 1)
		go func() {
			_, _, err := h.fake.Invoke(context.Background(), "slow", nil)
			lost <- err
		}()
		<-started
		h.fake.Drop(nil)
		if err := <-lost; !errors.Is(err, transporttest.ErrAnswerLost) {
			t.Fatalf("slow call = %v, want its answer lost with the connection", err)
		}
		if err := h.fake.WaitConnected(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The new connection numbers its requests from 1 again: "fast"
		// gets the id "slow" had. Answer "slow" only after "fast" is in
		// flight, so that a resent answer would find it.
		fast := make(chan string, 1)
		go func() {
			status, body := h.invoke(context.Background(), "fast", "")
			fast <- fmt.Sprint(status, " ", body)
		}()
		synctest.Wait()
		close(release)
		if got := <-fast; got != `200 "answer to fast"` {
			t.Errorf("fast call answered %s", got)
		}
		synctest.Wait() // the slow handler's answer has been dealt with
		if n := h.fake.StrayAnswers(); n != 0 {
			t.Errorf("%d answers sent on a connection other than their request's", n)
		}
		if n := h.fake.DuplicateAnswers(); n != 0 {
			t.Errorf("%d duplicate answers", n)
		}
		if got := h.client.Stats(); got.AnswersLost != 1 {
			t.Errorf("Stats = %+v, want 1 answer lost", got)
		}
		h.stop()
		for _, want := range []string{`"level":"WARN"`, `"method":"slow"`, `"request_id":"1"`} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("logs lack %s:\n%s", want, logs.String())
			}
		}
	})
}

func TestCloseWaitsForRunningHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		var finished bool
		h := start(t, nil, &device.ClientOptions{ShutdownTimeout: time.Minute}, func(m *device.MethodMux) {
			m.HandleFunc("slow", func(ctx context.Context, _ *device.MethodRequest) (*device.MethodResponse, error) {
				close(started)
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				finished = true
				return device.JSONResponse(200, "finished")
			})
		})
		answer := make(chan string, 1)
		go func() { s, b := h.invoke(context.Background(), "slow", ""); answer <- fmt.Sprint(s, " ", b) }()
		<-started
		closed := make(chan error, 1)
		go func() { closed <- h.stop() }()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while a handler was running")
		default:
		}
		time.Sleep(10 * time.Second) // virtual time inside the synctest bubble
		close(release)
		if err := <-closed; !errors.Is(err, device.ErrClientClosed) {
			t.Errorf("Run = %v", err)
		}
		if !finished {
			t.Error("handler did not finish")
		}
		if got := <-answer; got != `200 "finished"` {
			t.Errorf("answer = %s: the in-flight answer must still be sent", got)
		}
	})
}

func TestCloseCancelsHandlersAfterGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		h := start(t, nil, &device.ClientOptions{ShutdownTimeout: 5 * time.Second, MethodTimeout: time.Hour}, func(m *device.MethodMux) {
			m.HandleFunc("forever", func(ctx context.Context, _ *device.MethodRequest) (*device.MethodResponse, error) {
				close(started)
				<-ctx.Done()
				return nil, ctx.Err()
			})
		})
		answer := make(chan int, 1)
		go func() { s, _ := h.invoke(context.Background(), "forever", ""); answer <- s }()
		<-started
		begin := time.Now()
		h.stop()
		if got := time.Since(begin); got != 5*time.Second {
			t.Errorf("Close took %v, want the 5s grace", got)
		}
		if s := <-answer; s != 503 {
			t.Errorf("cancelled handler answered %d, want 503", s)
		}
	})
}

func TestRunOnceAndCloseIdempotent(t *testing.T) {
	h := start(t, nil, nil, echoMux)
	if err := h.fake.WaitConnected(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Run(t.Context(), h.mux); !errors.Is(err, device.ErrAlreadyRunning) {
		t.Errorf("second Run = %v, want ErrAlreadyRunning", err)
	}
	if err := h.stop(); !errors.Is(err, device.ErrClientClosed) {
		t.Errorf("Run = %v, want ErrClientClosed", err)
	}
	if err := h.client.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}

	cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
	c, _ := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{Transport: transporttest.NewFake(nil)})
	c.Close()
	if err := c.Run(t.Context(), device.NewMethodMux()); !errors.Is(err, device.ErrClientClosed) {
		t.Errorf("Run after Close = %v, want ErrClientClosed", err)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	fake := transporttest.NewFake(nil)
	cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
	c, _ := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{Transport: fake})
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, device.NewMethodMux()) }()
	if err := fake.WaitConnected(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	stopErr := errors.New("shutting down for maintenance")
	cancel(stopErr)
	if err := <-done; !errors.Is(err, stopErr) {
		t.Errorf("Run = %v, want the context's cause", err)
	}
	if fake.Connected() {
		t.Error("still connected after Run returned")
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	var logs syncBuffer
	h := start(t, nil, &device.ClientOptions{Logger: debugLogger(&logs), Backoff: func(int) time.Duration { return time.Millisecond }}, func(m *device.MethodMux) {
		echoMux(m)
		m.HandleFunc("fail", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			return nil, errors.New("boom")
		})
		m.HandleFunc("panic", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) { panic("bang") })
	})
	ctx := ctx10(t)
	const secretPayload = `{"password":"hunter2-payload-secret"}`
	h.invoke(ctx, "echo", secretPayload)
	h.invoke(ctx, "fail", secretPayload)
	h.invoke(ctx, "panic", secretPayload)
	h.invoke(ctx, "missing", secretPayload)
	h.invoke(ctx, "echo", `{not json`)
	h.fake.Drop(nil)
	h.invoke(ctx, "echo", secretPayload)
	h.stop()
	out := logs.String()
	token := sas.Sign(testKey, sas.Resource(testHost, "dev-1", ""), "", time.Now().Add(time.Hour))
	sig := token[strings.Index(token, "sig=")+4 : strings.Index(token, "&se=")]
	for _, secret := range []string{testKeyB64, "hunter2-payload-secret", "sig=", sig[:10]} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
	for _, want := range []string{`"method":"echo"`, `"request_id"`, "method handler panicked", "connection lost"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

func TestRequestsDuringShutdownAnswered503(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		h := start(t, nil, &device.ClientOptions{ShutdownTimeout: time.Minute}, func(m *device.MethodMux) {
			echoMux(m)
			m.HandleFunc("slow", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
				close(started)
				<-release
				return nil, nil
			})
		})
		go h.invoke(context.Background(), "slow", "")
		<-started
		closed := make(chan error, 1)
		go func() { closed <- h.stop() }()
		synctest.Wait() // Close is waiting for the slow handler
		begin := time.Now()
		status, body := h.invoke(context.Background(), "echo", `1`)
		if status != 503 || !strings.Contains(body, "shutting down") || time.Since(begin) != 0 {
			t.Errorf("request during shutdown: %d %s after %v, want 503 at once", status, body, time.Since(begin))
		}
		close(release)
		<-closed
	})
}

// TestHandlerContextCarriesRunValues checks that what a user puts in
// Run's context (a trace id, a logger) reaches every handler, while the
// handler's deadline is the method's own.
func TestHandlerContextCarriesRunValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type traceKey struct{}
		fake := transporttest.NewFake(nil)
		cred, err := sas.NewKeyCredential(testKeyB64, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		client, err := device.NewClient(testHost, "dev-1", cred, &device.ClientOptions{Transport: fake, MethodTimeout: 7 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		type seen struct {
			Trace    any
			Deadline time.Duration
		}
		got := make(chan seen, 1)
		mux := device.NewMethodMux()
		mux.HandleFunc("m", func(ctx context.Context, _ *device.MethodRequest) (*device.MethodResponse, error) {
			dl, _ := ctx.Deadline()
			got <- seen{ctx.Value(traceKey{}), time.Until(dl)}
			return nil, nil
		})
		ctx := context.WithValue(context.Background(), traceKey{}, "trace-42")
		done := make(chan error, 1)
		go func() { done <- client.Run(ctx, mux) }()
		if _, _, err := fake.Invoke(context.Background(), "m", nil); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(seen{"trace-42", 7 * time.Second}, <-got); diff != "" {
			t.Errorf("handler saw (-want +got):\n%s", diff)
		}
		client.Close()
		<-done
	})
}

// TestShutdownBoundedByContext checks Shutdown's two ends: handlers that
// finish within ctx are answered and Shutdown returns nil; a handler still
// running when ctx ends is cancelled and answered 503, and Shutdown
// returns ctx's error once the client has stopped.
func TestShutdownBoundedByContext(t *testing.T) {
	for _, handlerTakes := range []time.Duration{time.Second, time.Hour} {
		t.Run(fmt.Sprint("handler takes ", handlerTakes), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				started := make(chan struct{})
				h := start(t, nil, &device.ClientOptions{ShutdownTimeout: time.Minute, MethodTimeout: 2 * time.Hour}, func(m *device.MethodMux) {
					m.HandleFunc("work", func(ctx context.Context, _ *device.MethodRequest) (*device.MethodResponse, error) {
						close(started)
						select {
						case <-time.After(handlerTakes):
							return device.JSONResponse(200, "done")
						case <-ctx.Done():
							return nil, ctx.Err()
						}
					})
				})
				answer := make(chan int, 1)
				go func() { s, _ := h.invoke(context.Background(), "work", ""); answer <- s }()
				<-started
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				begin := time.Now()
				err := h.client.Shutdown(ctx)
				took := time.Since(begin)
				if handlerTakes < 3*time.Second {
					if err != nil || took != handlerTakes {
						t.Errorf("Shutdown = %v after %v, want nil once the handler finished (%v)", err, took, handlerTakes)
					}
					if s := <-answer; s != 200 {
						t.Errorf("handler answered %d, want 200", s)
					}
				} else {
					if !errors.Is(err, context.DeadlineExceeded) || took != 3*time.Second {
						t.Errorf("Shutdown = %v after %v, want the context's deadline after 3s", err, took)
					}
					if s := <-answer; s != 503 {
						t.Errorf("cancelled handler answered %d, want 503", s)
					}
				}
				if err := <-h.done; !errors.Is(err, device.ErrClientClosed) {
					t.Errorf("Run = %v, want ErrClientClosed", err)
				}
				h.done <- nil // for the harness
			})
		})
	}
}
