package e2e

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/faultproxy"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/transport"
)

// TestAnswerNeverReachesAnotherCall drives the race behind IoT Hub's
// per-connection request ids on every transport:
//
//  1. call A's answer is written: the device has sent it, and a black hole
//     between device and hub holds it, so no acknowledgement comes back;
//  2. the connection is cut before the acknowledgement arrives;
//  3. call B, already waiting for the device, is delivered on the new
//     connection as its first request, with the request id A had.
//
// A device that sent A's answer again on the new connection would hand B
// the answer to A. The SDK drops it instead and counts it: B gets its own
// answer, and A the hub's 504101 at its response timeout.
func TestAnswerNeverReachesAnotherCall(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			proxy := startProxy(t, hub, tr)
			startedA, releaseA := make(chan struct{}), make(chan struct{})
			mux := device.NewMethodMux()
			mux.HandleFunc("call", func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
				var who string
				if err := json.Unmarshal(r.Payload, &who); err != nil {
					return nil, err
				}
				if who == "A" {
					close(startedA)
					<-releaseA
				}
				return device.JSONResponse(200, "answer to "+who)
			})
			// No keep-alive traffic during the test, so that what the black
			// hole holds is the answer.
			watch := &answerWatch{origin: map[*transport.MethodRequest]int{}}
			d := runDevice(t, hub, "dev-1", tr, mux, viaProxy(proxy, func(o *device.ClientOptions) {
				o.KeepAlive = 10 * time.Minute
				o.Transport = watch.wrap(o.Transport)
			}))
			waitSubscribed(t, hub, "dev-1")
			svc := hub.ServiceClient()

			type outcome struct {
				res *localhub.MethodResult
				err error
			}
			call := func(who string, connectTimeout int) <-chan outcome {
				done := make(chan outcome, 1)
				go func() { // owned by the test: ends with the invocation, bounded by its context
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "call", Payload: json.RawMessage(`"` + who + `"`),
						ResponseTimeoutInSeconds: 5, ConnectTimeoutInSeconds: connectTimeout})
					done <- outcome{res, err}
				}()
				return done
			}
			wait := ctxTimeout(t, time.Minute) // bounds each step; a loaded machine is slow

			callA := call("A", 0)
			select {
			case <-startedA:
			case <-wait.Done():
				t.Fatal("call A never reached its handler")
			}
			// 1. The answer is written, and held before the hub.
			proxy.BlackHole(faultproxy.ToTarget)
			close(releaseA)
			if err := proxy.WaitHeld(wait, faultproxy.ToTarget); err != nil {
				t.Fatalf("A's answer was never written: %v", err)
			}
			// 2. The connection is cut before the acknowledgement arrives;
			// the device cannot come back until B waits for it.
			proxy.Refuse(0)
			proxy.Reset()
			proxy.Restore()
			// Until the hub has seen the connection go, it would hand B to
			// the dead one.
			if err := hub.WaitOffline(wait, "dev-1"); err != nil {
				t.Fatal(err)
			}
			// 3. B waits for the device, and is its new connection's first
			// request as soon as it subscribes.
			callB := call("B", 30)
			if err := hub.WaitCallsWaiting(wait, "dev-1", 1); err != nil {
				t.Fatalf("call B never waited for the device: %v", err)
			}
			proxy.Accept()

			var b outcome
			select {
			case b = <-callB:
			case <-wait.Done():
				t.Fatal("call B did not end")
			}
			if b.err != nil || string(b.res.Payload) != `"answer to B"` {
				t.Fatalf("call B = %+v, %v; want its own answer", b.res, b.err)
			}
			var a outcome
			select {
			case a = <-callA:
			case <-wait.Done():
				t.Fatal("call A did not end")
			}
			if !isResponseTimeout(a.err) {
				t.Fatalf("call A = %+v, %v; want 504101: its answer was lost with its connection", a.res, a.err)
			}
			if got := d.client.Stats(); got.AnswersLost != 1 {
				t.Errorf("Stats = %+v, want 1 answer lost", got)
			}
			if n := watch.crossings(); n != 0 {
				t.Errorf("%d answers sent on a connection other than their request's", n)
			}
		})
	}
}

// answerWatch wraps a transport to see on which connection each request
// arrived and each answer was sent.
type answerWatch struct {
	mu      sync.Mutex
	conns   int
	origin  map[*transport.MethodRequest]int // request → the connection it arrived on
	crossed int                              // answers sent on another connection
}

func (w *answerWatch) wrap(inner transport.Dialer) transport.Dialer {
	return transport.DialerFunc(func(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
		conn, err := inner.Dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		w.mu.Lock()
		w.conns++
		n := w.conns
		w.mu.Unlock()
		return &watchedConn{Conn: conn, watch: w, n: n}, nil
	})
}

func (w *answerWatch) crossings() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.crossed
}

// watchedConn is one connection under an answerWatch.
type watchedConn struct {
	transport.Conn
	watch *answerWatch
	n     int
}

func (c *watchedConn) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	req, err := c.Conn.Receive(ctx)
	if err == nil {
		c.watch.mu.Lock()
		c.watch.origin[req] = c.n
		c.watch.mu.Unlock()
	}
	return req, err
}

func (c *watchedConn) Respond(ctx context.Context, req *transport.MethodRequest, status int, payload []byte) error {
	c.watch.mu.Lock()
	if c.watch.origin[req] != c.n {
		c.watch.crossed++
	}
	c.watch.mu.Unlock()
	return c.Conn.Respond(ctx, req, status, payload)
}
