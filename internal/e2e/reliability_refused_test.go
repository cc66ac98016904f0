package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
)

// backoffCall is one call of a recordingBackoff.
type backoffCall struct {
	attempt int
	delay   time.Duration
	at      time.Time
}

// recordingBackoff wraps a backoff, records each call and signals when
// attempt `notify` is reached. The client still sleeps the delays it
// returns.
type recordingBackoff struct {
	next   func(int) time.Duration
	notify int
	reach  chan struct{}

	mu    sync.Mutex
	calls []backoffCall
}

func (b *recordingBackoff) backoff(attempt int) time.Duration {
	d := b.next(attempt)
	b.mu.Lock()
	b.calls = append(b.calls, backoffCall{attempt, d, time.Now()})
	b.mu.Unlock()
	if attempt == b.notify {
		close(b.reach)
	}
	return d
}

func (b *recordingBackoff) snapshot() []backoffCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]backoffCall(nil), b.calls...)
}

// TestRefusedConnectionsBackOff refuses every connection at the proxy:
// the client asks its backoff for attempts 1, 2, 3, … in order, waits at
// least the delay returned before each new attempt (no tight loop), the
// delays have full jitter under the cap, and once connections are
// accepted again it connects and methods work.
func TestRefusedConnectionsBackOff(t *testing.T) {
	const (
		attempts = 8
		base     = 20 * time.Millisecond
		ceiling  = 300 * time.Millisecond
	)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			proxy := startProxy(t, hub, tr)
			proxy.Refuse(0)
			rec := &recordingBackoff{next: device.ExponentialBackoff(base, ceiling), notify: attempts, reach: make(chan struct{})}
			states := newStateLog()
			runDevice(t, hub, "dev-1", tr, echoMux(), viaProxy(proxy, states.tweak, func(o *device.ClientOptions) { o.Backoff = rec.backoff }))
			select {
			case <-rec.reach:
			case <-ctxTimeout(t, 30*time.Second).Done():
				t.Fatalf("attempt %d never reached; backoff calls: %v", attempts, rec.snapshot())
			}
			proxy.Accept()
			states.waitFor(t, device.StateConnected, 1, 30*time.Second)
			waitSubscribed(t, hub, "dev-1")

			calls := rec.snapshot()
			connecting := []time.Time{}
			for _, e := range states.snapshot() {
				if e.state == device.StateConnecting {
					connecting = append(connecting, e.at)
				}
			}
			for i, c := range calls {
				if c.attempt != i+1 {
					t.Errorf("backoff call %d asked for attempt %d, want %d", i, c.attempt, i+1)
				}
				if limit := min(ceiling, base<<(c.attempt-1)); c.delay < 0 || c.delay > limit {
					t.Errorf("attempt %d: delay %v outside [0, %v]", c.attempt, c.delay, limit)
				}
				if i+1 < len(connecting) {
					if waited := connecting[i+1].Sub(c.at); waited < c.delay {
						t.Errorf("attempt %d: reconnected after %v, before its delay %v", c.attempt+1, waited, c.delay)
					}
				}
			}
			if got, want := len(connecting), len(calls)+1; got != want {
				t.Errorf("%d connection attempts for %d backoff calls, want %d", got, len(calls), want)
			}
			if proxy.Refused() < attempts {
				t.Errorf("the proxy refused %d connections, want at least %d", proxy.Refused(), attempts)
			}
			var total time.Duration
			for _, c := range calls {
				total += c.delay
			}
			t.Logf("figure: refused transport=%s attempts=%d refused=%d backoff_total_ms=%d", tr, len(calls)+1, proxy.Refused(), total.Milliseconds())
		})
	}
}

// TestFatalRefusalStops: a wrong key and an unknown device are refused for
// good: Run returns an *device.Error whose Code says why, after one
// attempt and without asking the backoff. IoT Hub answers the put-token of
// an unknown device 404 over AMQP (azure-iot-sdk-c#1413, Azure/iotedge#5639),
// so AMQP tells it apart; over MQTT it refuses it with CONNACK 5 as it does a
// wrong key, so the error names both causes.
func TestFatalRefusalStops(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			cs, err := hub.ConnectionString("dev-1")
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := sas.ParseConnectionString(cs)
			if err != nil {
				t.Fatal(err)
			}
			otherKey := base64.StdEncoding.EncodeToString([]byte("a key the hub never issued, 32b"))
			unknownDevice := device.CodeIdentityNotFound
			if strings.HasPrefix(tr, "mqtt") {
				unknownDevice = device.CodeUnauthorized
			}
			tests := []struct {
				name             string
				connectionString string
				want             device.ErrorCode
				says             []string // in the error's text, over AMQP
			}{
				{"wrong key", strings.Replace(cs, parsed.SharedAccessKey, otherKey, 1), device.CodeUnauthorized, nil},
				{"unknown device", strings.Replace(cs, "DeviceId=dev-1", "DeviceId=ghost", 1), unknownDevice, []string{"ghost", "not registered"}},
			}
			for _, tt := range tests {
				backoffCalls := 0
				states := newStateLog()
				opts := deviceOptions(t, hub, tr)
				states.tweak(opts)
				opts.Backoff = func(int) time.Duration { backoffCalls++; return time.Millisecond }
				client, err := device.NewClientFromConnectionString(tt.connectionString, opts)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				err = client.Run(ctx, echoMux())
				cancel()
				var de *device.Error
				if !errors.As(err, &de) {
					t.Errorf("%s: Run = %v, want a *device.Error", tt.name, err)
					continue
				}
				if de.Code != tt.want {
					t.Errorf("%s: Code = %v, want %v", tt.name, de.Code, tt.want)
				}
				if de.Err == nil || de.Error() == "" {
					t.Errorf("%s: the error does not say why: %#v", tt.name, de)
				}
				says := tt.says
				if strings.HasPrefix(tr, "mqtt") {
					// CONNACK 5 cannot say which: the error names both.
					says = []string{"wrong key", "not registered"}
				}
				for _, s := range says {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s: the error %q does not say %q", tt.name, err, s)
					}
				}
				if n := states.count(device.StateConnecting); n != 1 || backoffCalls != 0 {
					t.Errorf("%s: %d attempts and %d backoff calls, want 1 and 0", tt.name, n, backoffCalls)
				}
				t.Logf("%s: %v", tt.name, err)
			}
		})
	}
}
