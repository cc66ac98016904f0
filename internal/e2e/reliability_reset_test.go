package e2e

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/localhub"
)

// lineCounter counts the log writes that contain pattern.
type lineCounter struct {
	pattern []byte
	mu      sync.Mutex
	n       int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, c.pattern) {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return len(p), nil
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestResetDuringTraffic resets the device's connection repeatedly while
// two invokers call it continuously, one with a connect timeout that
// covers the gap and one without. Calls with the timeout succeed; calls
// without it succeed or get 404103; after the faults every call succeeds;
// the handler never sees a request twice and every success is one handler
// call. The one other outcome allowed is the hub's 504101 for a call in
// flight when its connection was reset: either its request never reached
// the device (MQTT requests are QoS 0: nobody can resend them), or its
// answer was lost with the connection, since an answer goes only on the
// connection of its request. Every such lost answer is one the client
// counted (Stats.AnswersLost).
func TestResetDuringTraffic(t *testing.T) {
	const resets = 5
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			ignored := &lineCounter{pattern: []byte("response to an unknown or expired request ignored")}
			hub, err := localhub.Start(t.Context(), localhub.Options{Devices: []string{"dev-1"},
				Logger: slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), ignored), &slog.HandlerOptions{Level: slog.LevelWarn}))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { hub.Close() })
			proxy := startProxy(t, hub, tr)
			states := newStateLog()
			requests := newRequestLog()
			d := runDevice(t, hub, "dev-1", tr, requests.echoHandler(), viaProxy(proxy, states.tweak))
			states.waitFor(t, device.StateConnected, 1, 20*time.Second)
			waitSubscribed(t, hub, "dev-1")

			svc := hub.ServiceClient()
			patient := startInvoker(t, svc, "dev-1", "patient", 5)
			impatient := startInvoker(t, svc, "dev-1", "impatient", 0)
			for round := 1; round <= resets; round++ {
				impatient.waitSuccesses(t, time.Now(), 3, 30*time.Second)
				proxy.Reset()
				states.waitFor(t, device.StateConnected, round+1, 30*time.Second)
			}
			// After the faults, every call succeeds.
			waitSubscribed(t, hub, "dev-1")
			settled := time.Now()
			patient.waitSuccesses(t, settled, 10, 30*time.Second)
			impatient.waitSuccesses(t, settled, 10, 30*time.Second)
			patient.stop()
			impatient.stop()

			successes, offline, lostRequests, lostAnswers := 0, 0, 0, 0
			for name, inv := range map[string]*invoker{"patient": patient, "impatient": impatient} {
				for i, r := range inv.snapshot() {
					switch {
					case r.err == nil:
						successes++
						continue
					case r.at.After(settled.Add(invokerResponseTimeout * time.Second)):
						t.Errorf("%s call %d at %s, after the faults: %v", name, i, r.at.Format(time.StampMilli), r.err)
					case name == "impatient" && isDeviceNotOnline(r.err) && !requests.sawPayload(r.payload):
						offline++
					case isResponseTimeout(r.err) && !requests.sawPayload(r.payload):
						lostRequests++
					case isResponseTimeout(r.err):
						lostAnswers++
					default:
						t.Errorf("%s call %d at %s: %v", name, i, r.at.Format(time.StampMilli), r.err)
					}
				}
			}
			calls, repeated := requests.total()
			if len(repeated) > 0 {
				t.Errorf("the handler saw %d requests more than once: %v", len(repeated), repeated)
			}
			// Every success is one handler call; a handler call without a
			// success is a request whose answer was lost with its
			// connection.
			if calls != successes+lostAnswers {
				t.Errorf("handler calls = %d, successes = %d, answers lost = %d", calls, successes, lostAnswers)
			}
			// The client counted each of them (and possibly answers the hub
			// got before the reset took their acknowledgement).
			if stats := d.client.Stats(); uint64(lostAnswers) > stats.AnswersLost {
				t.Errorf("%d calls lost their answers, but the client counted %+v", lostAnswers, stats)
			}
			if got := states.count(device.StateDisconnected); got < resets {
				t.Errorf("%d disconnections seen, want at least %d", got, resets)
			}
			// The client never answers on another connection, so the hub
			// ignores only answers that came after their call's timeout.
			t.Logf("figure: reset-traffic transport=%s resets=%d successes=%d offline_404103=%d lost_request_504101=%d lost_answer_504101=%d client_stats=%+v answers_ignored_by_hub=%d",
				tr, resets, successes, offline, lostRequests, lostAnswers, d.client.Stats(), ignored.count())
		})
	}
}
