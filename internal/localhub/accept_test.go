package localhub

import (
	"encoding/json"
	"math"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAcceptBackoff(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, 5 * time.Millisecond},
		{2, 10 * time.Millisecond},
		{3, 20 * time.Millisecond},
		{8, 640 * time.Millisecond},
		{9, time.Second},
		{10, time.Second},
		{64, time.Second},
		{1 << 30, time.Second},
	}
	for _, tt := range tests {
		if got := acceptBackoff(tt.failures); got != tt.want {
			t.Errorf("acceptBackoff(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

// flakyListener fails its first Accepts with EMFILE, as a process out of
// file descriptors does, then accepts for real.
type flakyListener struct {
	net.Listener
	failures int
	failed   chan struct{} // if set, gets a value at each failure, without blocking

	mu       sync.Mutex
	failedAt []time.Time
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.failedAt) < l.failures {
		l.failedAt = append(l.failedAt, time.Now())
		l.mu.Unlock()
		if l.failed != nil {
			select {
			case l.failed <- struct{}{}:
			default:
			}
		}
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// gaps returns the time between consecutive failures.
func (l *flakyListener) gaps() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(l.failedAt); i++ {
		gaps = append(gaps, l.failedAt[i].Sub(l.failedAt[i-1]))
	}
	return gaps
}

// TestAcceptErrorsRetried has the MQTT and AMQP listeners fail a few
// Accepts with a temporary error: each listener waits 5 ms, 10 ms, 20 ms
// between the attempts, then serves real connections.
func TestAcceptErrorsRetried(t *testing.T) {
	const failures = 4
	listeners := map[string]*flakyListener{}
	var mu sync.Mutex
	h := startHub(t, Options{Devices: []string{"mqtt-dev", "amqp-dev"}, wrapListener: func(protocol string, l net.Listener) net.Listener {
		fl := &flakyListener{Listener: l, failures: failures}
		mu.Lock()
		listeners[protocol] = fl
		mu.Unlock()
		return fl
	}})

	connectDevice(t, h, "mqtt-dev", deviceOptions{})
	res, err := invoke(t, h, "mqtt-dev", MethodCall{MethodName: "m", Payload: json.RawMessage(`{"over":"mqtt"}`)})
	if err != nil {
		t.Fatalf("invoke over MQTT: %v", err)
	}
	if diff := cmp.Diff(&MethodResult{200, json.RawMessage(`{"over":"mqtt"}`)}, res); diff != "" {
		t.Errorf("MQTT result (-want +got):\n%s", diff)
	}

	c := mustDialAMQP(t, h, false)
	c.authenticate("amqp-dev", time.Now().Add(time.Hour))
	m, err := c.attachMethods("amqp-dev", methodPath("amqp-dev"), randomChannelID())
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	m.serve(echo)
	waitSubscribed(t, h, "amqp-dev")
	res, err = invoke(t, h, "amqp-dev", MethodCall{MethodName: "m", Payload: json.RawMessage(`{"over":"amqp"}`)})
	if err != nil {
		t.Fatalf("invoke over AMQP: %v", err)
	}
	if diff := cmp.Diff(&MethodResult{200, json.RawMessage(`{"over":"amqp"}`)}, res); diff != "" {
		t.Errorf("AMQP result (-want +got):\n%s", diff)
	}

	for _, protocol := range []string{"mqtt", "amqp"} {
		mu.Lock()
		fl := listeners[protocol]
		mu.Unlock()
		if fl == nil {
			t.Fatalf("%s listener not wrapped", protocol)
		}
		gaps := fl.gaps()
		if len(gaps) != failures-1 {
			t.Fatalf("%s: %d failed accepts, want %d", protocol, len(gaps)+1, failures)
		}
		for i, gap := range gaps {
			if want := acceptBackoff(i + 1); gap < want {
				t.Errorf("%s: retry %d came %v after the failure, want at least %v", protocol, i+1, gap, want)
			}
		}
	}
}

// TestAcceptLoopEndsOnClose closes a hub whose listeners fail every
// Accept: Close ends the accept loops in their backoff and returns.
func TestAcceptLoopEndsOnClose(t *testing.T) {
	failed := make(chan struct{}, 1)
	h, err := Start(t.Context(), Options{wrapListener: func(_ string, l net.Listener) net.Listener {
		return &flakyListener{Listener: l, failures: math.MaxInt, failed: failed}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-failed:
		case <-time.After(waitTimeout):
			h.Close()
			t.Fatal("no failed Accept")
		}
	}
	closed := make(chan struct{})
	go func() { // owned by the test: ends when Close returns
		defer close(closed)
		h.Close()
	}()
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return while the listeners kept failing")
	}
}
