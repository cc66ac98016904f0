package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/internal/faultproxy"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
)

// isWebSocket and isAMQP key transport-specific choices by name.
func isWebSocket(transportName string) bool { return strings.Contains(transportName, "ws") }
func isAMQP(transportName string) bool      { return strings.HasPrefix(transportName, "amqp") }

// hubAddr returns the hub address transportName connects to: HTTPS for
// WebSockets, else the protocol's own port.
func hubAddr(hub *localhub.Hub, transportName string) string {
	switch {
	case isWebSocket(transportName):
		return hub.HTTPSAddr()
	case isAMQP(transportName):
		return hub.AMQPAddr()
	}
	return hub.MQTTAddr()
}

// startProxy starts a fault proxy in front of the hub's port for
// transportName, closed at the end of the test.
func startProxy(t *testing.T, hub *localhub.Hub, transportName string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(hubAddr(hub, transportName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// viaProxy returns a tweak that makes the device dial the proxy; host
// names and TLS stay those of the hub.
func viaProxy(p *faultproxy.Proxy, more ...func(*device.ClientOptions)) func(*device.ClientOptions) {
	return func(o *device.ClientOptions) {
		o.Port = p.Port()
		for _, f := range more {
			f(o)
		}
	}
}

// pingTimeout is what the black-hole and stuck-handler tests give MQTT
// for a PINGRESP, so that dead links are noticed in seconds.
const pingTimeout = 2 * time.Second

// fastDeadPeerDialer returns the transport with a short ping timeout where
// the transport has one, and its detection bound after the keep-alive
// interval: MQTT waits PingTimeout for a PINGRESP; other transports
// promise detection within about twice the keep-alive.
func fastDeadPeerDialer(t *testing.T, transportName string, keepAlive time.Duration) (transport.Dialer, time.Duration) {
	t.Helper()
	if strings.HasPrefix(transportName, "mqtt") {
		opts := &mqtt.Options{PingTimeout: pingTimeout}
		if isWebSocket(transportName) {
			return mqttws.NewDialer(opts), keepAlive + pingTimeout
		}
		return mqtt.NewDialer(opts), keepAlive + pingTimeout
	}
	d, err := deviceflag.Dialer(transportName)
	if err != nil {
		t.Fatal(err)
	}
	return d, 2 * keepAlive
}

// stateEvent is one OnStateChange call.
type stateEvent struct {
	state device.State
	err   error
	at    time.Time
}

// stateLog records a client's state changes and lets tests wait for them.
type stateLog struct {
	mu      sync.Mutex
	events  []stateEvent
	changed chan struct{} // closed and replaced on each event
}

func newStateLog() *stateLog { return &stateLog{changed: make(chan struct{})} }

// record is an OnStateChange callback.
func (l *stateLog) record(s device.State, err error) {
	l.mu.Lock()
	l.events = append(l.events, stateEvent{s, err, time.Now()})
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// tweak installs the log as OnStateChange.
func (l *stateLog) tweak(o *device.ClientOptions) { o.OnStateChange = l.record }

func (l *stateLog) snapshot() []stateEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]stateEvent(nil), l.events...)
}

// count returns how many events of state were recorded.
func (l *stateLog) count(s device.State) int {
	n := 0
	for _, e := range l.snapshot() {
		if e.state == s {
			n++
		}
	}
	return n
}

// waitFor waits until the n-th event (counting from 1) of state has been
// recorded and returns it.
func (l *stateLog) waitFor(t *testing.T, s device.State, n int, within time.Duration) stateEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	e, err := l.wait(ctx, s, n)
	if err != nil {
		t.Fatalf("no %s event #%d within %v; events: %v", s, n, within, l.snapshot())
	}
	return e
}

// wait is waitFor for goroutines other than the test's: it returns ctx's
// error instead of failing the test.
func (l *stateLog) wait(ctx context.Context, s device.State, n int) (stateEvent, error) {
	for {
		l.mu.Lock()
		seen := 0
		for _, e := range l.events {
			if e.state == s {
				if seen++; seen == n {
					l.mu.Unlock()
					return e, nil
				}
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return stateEvent{}, ctx.Err()
		}
	}
}

func (e stateEvent) String() string {
	if e.err != nil {
		return fmt.Sprintf("%s(%v)", e.state, e.err)
	}
	return e.state.String()
}

// requestLog counts, in a handler, how often each payload was seen. The
// tests give every call a payload of its own, so a payload seen twice is
// a request handled twice. (Request ids cannot tell: IoT Hub numbers them
// per connection, so they repeat across reconnections.)
type requestLog struct {
	mu   sync.Mutex
	seen map[string]int
}

func newRequestLog() *requestLog {
	return &requestLog{seen: map[string]int{}}
}

// sawPayload reports whether the handler received payload.
func (r *requestLog) sawPayload(payload string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[payload] > 0
}

// echoHandler answers 200 with the request's payload after recording it.
func (r *requestLog) echoHandler() device.MethodHandler {
	return device.MethodHandlerFunc(func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		r.mu.Lock()
		r.seen[compactJSON(req.Payload)]++
		r.mu.Unlock()
		return &device.MethodResponse{Status: 200, Payload: req.Payload}, nil
	})
}

// total returns the handler calls and the payloads seen more than once.
func (r *requestLog) total() (calls int, repeated []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for payload, n := range r.seen {
		calls += n
		if n > 1 {
			repeated = append(repeated, payload)
		}
	}
	return calls, repeated
}

// invokeResult is the outcome of one invocation by an invoker.
type invokeResult struct {
	payload string
	err     error // nil for a 200 with the payload sent
	at      time.Time
	took    time.Duration
}

// invokerResponseTimeout is the hub's wait for each answer of an invoker.
const invokerResponseTimeout = 5 // the least the hub accepts

// invoker invokes "echo" on a device continuously, one call at a time,
// each with a payload of its own, until stopped.
type invoker struct {
	mu      sync.Mutex
	results []invokeResult
	stopped chan struct{}
	done    chan struct{}
	tick    chan struct{} // closed and replaced after each call
}

// startInvoker starts calling, each call with invokerResponseTimeout;
// stop (also run at cleanup) ends and joins it.
func startInvoker(t *testing.T, svc *localhub.ServiceClient, deviceID, name string, connectTimeout int) *invoker {
	return startInvokerWaiting(t, svc, deviceID, name, connectTimeout, invokerResponseTimeout)
}

// startInvokerWaiting is startInvoker with the hub's wait for each answer,
// in seconds.
func startInvokerWaiting(t *testing.T, svc *localhub.ServiceClient, deviceID, name string, connectTimeout, responseTimeout int) *invoker {
	inv := &invoker{stopped: make(chan struct{}), done: make(chan struct{}), tick: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // owned by the invoker: ends after stop, joined by stop
		defer close(inv.done)
		defer cancel()
		for i := 0; ; i++ {
			select {
			case <-inv.stopped:
				return
			default:
			}
			payload := fmt.Sprintf(`{"invoker":%q,"n":%d}`, name, i)
			begin := time.Now()
			callCtx, cancelCall := context.WithTimeout(ctx, time.Duration(connectTimeout+responseTimeout+15)*time.Second)
			res, err := svc.Invoke(callCtx, deviceID, "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(payload), ConnectTimeoutInSeconds: connectTimeout, ResponseTimeoutInSeconds: responseTimeout})
			cancelCall()
			if err == nil && (res.Status != 200 || compactJSON(res.Payload) != payload) {
				err = fmt.Errorf("answer %d %s, want 200 %s", res.Status, res.Payload, payload)
			}
			inv.mu.Lock()
			inv.results = append(inv.results, invokeResult{payload: payload, err: err, at: time.Now(), took: time.Since(begin)})
			close(inv.tick)
			inv.tick = make(chan struct{})
			inv.mu.Unlock()
		}
	}()
	t.Cleanup(inv.stop)
	return inv
}

// stop ends the loop after the call in flight and waits for it.
func (inv *invoker) stop() {
	select {
	case <-inv.stopped:
	default:
		close(inv.stopped)
	}
	<-inv.done
}

func (inv *invoker) snapshot() []invokeResult {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return append([]invokeResult(nil), inv.results...)
}

// waitSuccesses waits until n calls made after since have succeeded.
func (inv *invoker) waitSuccesses(t *testing.T, since time.Time, n int, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	for {
		inv.mu.Lock()
		ok := 0
		var lastErr error
		for _, r := range inv.results {
			if r.err == nil && r.at.After(since) {
				ok++
			}
			if r.err != nil {
				lastErr = r.err
			}
		}
		tick := inv.tick
		inv.mu.Unlock()
		if ok >= n {
			return
		}
		select {
		case <-tick:
		case <-ctx.Done():
			t.Fatalf("fewer than %d successful calls within %v after %v; last error: %v", n, within, since.Format(time.StampMilli), lastErr)
		}
	}
}

// isResponseTimeout reports whether err is the hub's 504101.
func isResponseTimeout(err error) bool {
	var se *localhub.ServiceError
	return errors.As(err, &se) && se.HTTPStatus == 504 && se.ErrorCode == 504101
}

// isDeviceNotOnline reports whether err is the hub's 404103.
func isDeviceNotOnline(err error) bool {
	var se *localhub.ServiceError
	return errors.As(err, &se) && se.HTTPStatus == 404 && se.ErrorCode == 404103
}
