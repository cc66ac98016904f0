package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/faultproxy"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/internal/slowpath"
	"github.com/google/go-cmp/cmp"
)

// report returns the answer to call n of a test: a JSON object of exactly
// size bytes whose filler depends on n, so that an answer delivered to
// another call shows.
func report(n, size int) []byte {
	head, tail := fmt.Sprintf(`{"call":%d,"fill":"`, n), `"}`
	b := make([]byte, 0, size)
	b = append(b, head...)
	for k := range size - len(head) - len(tail) {
		b = append(b, 'a'+byte((7*n+k)%26))
	}
	return append(b, tail...)
}

// reportMux answers "report" with report(call, size) for a payload
// {"call": n}.
func reportMux(size int) *device.MethodMux {
	mux := device.NewMethodMux()
	mux.HandleFunc("report", func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
		var in struct{ Call int }
		if err := r.Unmarshal(&in); err != nil {
			return nil, err
		}
		return &device.MethodResponse{Status: 200, Payload: report(in.Call, size)}, nil
	})
	return mux
}

// answer is what a caller got, in a form cmp prints briefly: its payload's
// size and digest rather than the payload.
type answer struct {
	Call   int
	Status int
	Bytes  int
	SHA256 string
	Err    string
}

// answerOf is the answer with status and payload to call n.
func answerOf(n, status int, payload []byte) answer {
	sum := sha256.Sum256(payload)
	return answer{Call: n, Status: status, Bytes: len(payload), SHA256: hex.EncodeToString(sum[:8])}
}

// newAnswer is what call n got from the hub.
func newAnswer(n int, res *localhub.MethodResult, err error) answer {
	if err != nil {
		return answer{Call: n, Err: err.Error()}
	}
	return answerOf(n, res.Status, []byte(compactJSON(res.Payload)))
}

// timeline renders state changes as offsets from since, for messages.
func timeline(events []stateEvent, since time.Time) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n\t%+7.3fs %s", e.at.Sub(since).Seconds(), e)
	}
	return b.String()
}

// checkStayedConnected fails the test if the client disconnected or
// counted a lost answer or a dropped request.
func checkStayedConnected(t *testing.T, states *stateLog, d *runningDevice, since time.Time) {
	t.Helper()
	if states.count(device.StateDisconnected) > 0 || states.count(device.StateConnected) != 1 {
		t.Errorf("the client did not stay connected; state changes:%s", timeline(states.snapshot(), since))
	}
	if diff := cmp.Diff(device.Stats{}, d.client.Stats()); diff != "" {
		t.Errorf("client stats (-want +got):\n%s", diff)
	}
}

// TestSlowUplink runs the device over a slow uplink (64 KB/s device to
// hub, with 150 ms each way: a 300 ms round trip) and makes 20 concurrent
// calls whose answers are 48 KB each: about 15 s of transfer. Every call
// gets its own answer, and the client stays connected: a link that is
// busy sending answers is not a dead one. The keep-alive, 5 s, is shorter
// than the transfer, so PINGREQs go out behind answers, and the path's
// buffers are small (a 32 KB queue at the proxy, a 16 KB send buffer on
// the device's socket: tightSendBuffer), so the device's writes do wait
// for the link, as on a real slow path.
func TestSlowUplink(t *testing.T) {
	const (
		calls      = 20
		answerSize = 48 << 10
		uplink     = 64 << 10 // bytes per second
		oneWay     = 150 * time.Millisecond
		pathBuffer = 32 << 10
		keepAlive  = 5 * time.Second
	)
	transfer := time.Duration(calls*answerSize) * time.Second / uplink
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			proxy := startProxy(t, hub, tr)
			proxy.SetBandwidth(faultproxy.ToTarget, uplink)
			proxy.SetOneWayLatency(faultproxy.Both, oneWay)
			proxy.SetBuffer(faultproxy.ToTarget, pathBuffer)
			states := newStateLog()
			d := runDevice(t, hub, "dev-1", tr, reportMux(answerSize), viaProxy(proxy, states.tweak, tightSendBuffer(t, tr),
				func(o *device.ClientOptions) { o.KeepAlive = keepAlive }))
			states.waitFor(t, device.StateConnected, 1, 30*time.Second)
			waitSubscribed(t, hub, "dev-1")

			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 2*time.Minute)
			got := make([]answer, calls)
			want := make([]answer, calls)
			var wg sync.WaitGroup
			begin := time.Now()
			for n := range calls {
				want[n] = answerOf(n, 200, report(n, answerSize))
				wg.Go(func() { // owned by the test: ends with its call, joined below
					res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "report",
						Payload: json.RawMessage(fmt.Sprintf(`{"call":%d}`, n)), ResponseTimeoutInSeconds: 90})
					got[n] = newAnswer(n, res, err)
				})
			}
			wg.Wait()
			took := time.Since(begin)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
			if took < transfer {
				t.Errorf("the answers took %v, less than the link needs to carry them (%v): the link was not shaped", took, transfer)
			}
			checkStayedConnected(t, states, d, begin)
			t.Logf("figure: slow-uplink transport=%s calls=%d answer_bytes=%d uplink_Bps=%d rtt_ms=%d seconds=%.1f link_seconds=%.1f",
				tr, calls, answerSize, uplink, 2*oneWay.Milliseconds(), took.Seconds(), transfer.Seconds())
		})
	}
}

// sendBufferBytes is the socket send buffer tightSendBuffer asks for: what
// a small device on a slow path might have, where loopback gives
// megabytes.
const sendBufferBytes = 16 << 10

// tightSendBuffer returns a tweak that makes the device dial with a small
// socket send buffer, so that on loopback too its own writes wait for a
// slow link, as they do on a device's real link: with the kernel's
// loopback buffers, megabytes of answers would wait in the kernel instead,
// and a PINGREQ written behind them would wait longer than any keep-alive.
func tightSendBuffer(t *testing.T, transportName string) func(*device.ClientOptions) {
	dialer, err := slowpath.Dialer(transportName, sendBufferBytes)
	if err != nil {
		t.Fatal(err)
	}
	return func(o *device.ClientOptions) { o.Transport = dialer }
}

// TestStallShorterThanKeepAlive stalls the link in both directions for
// 3 s, less than the client's 4 s keep-alive, while calls flow: one
// continuous caller, a call whose handler answers into the stall, and a
// call every half second during it. The stall holds every byte (no answer
// to a call made during it arrives before it ends), then every call is
// answered, with no disconnection and nothing lost.
func TestStallShorterThanKeepAlive(t *testing.T) {
	const (
		keepAlive = 4 * time.Second
		stall     = 3 * time.Second
		patient   = 30 // seconds the hub waits for each answer
	)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			proxy := startProxy(t, hub, tr)
			states := newStateLog()
			requests := newRequestLog()
			entered, release := make(chan struct{}, 1), make(chan struct{})
			var releaseOnce sync.Once
			defer releaseOnce.Do(func() { close(release) }) // before the client closes (cleanups run after defers)
			mux := device.NewMethodMux()
			mux.Handle("echo", requests.echoHandler())
			mux.HandleFunc("hold", func(ctx context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
				entered <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
				}
				return &device.MethodResponse{Status: 200, Payload: r.Payload}, nil
			})
			d := runDevice(t, hub, "dev-1", tr, mux, viaProxy(proxy, states.tweak, func(o *device.ClientOptions) {
				o.KeepAlive = keepAlive
			}))
			states.waitFor(t, device.StateConnected, 1, 20*time.Second)
			waitSubscribed(t, hub, "dev-1")
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 2*time.Minute)
			begin := time.Now()
			around := startInvokerWaiting(t, svc, "dev-1", "around", 0, patient)
			around.waitSuccesses(t, begin, 3, 20*time.Second)

			type call struct {
				method, payload string
				err             error
				done            time.Time
			}
			var (
				mu      sync.Mutex
				results []*call
				wg      sync.WaitGroup
			)
			invoke := func(method, payload string) {
				c := &call{method: method, payload: payload}
				mu.Lock()
				results = append(results, c)
				mu.Unlock()
				wg.Go(func() { // owned by the test: ends with its call, joined below
					res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: method,
						Payload: json.RawMessage(payload), ResponseTimeoutInSeconds: patient})
					if err == nil && (res.Status != 200 || compactJSON(res.Payload) != payload) {
						err = fmt.Errorf("answer %d %s, want 200 %s", res.Status, res.Payload, payload)
					}
					mu.Lock()
					c.err, c.done = err, time.Now()
					mu.Unlock()
				})
			}

			// A call in flight: its handler runs when the link stalls and
			// answers into the stall.
			invoke("hold", `"in flight"`)
			select {
			case <-entered:
			case <-ctxTimeout(t, 20*time.Second).Done():
				t.Fatal("the held call never reached its handler")
			}
			stalled := time.Now()
			proxy.Stall(faultproxy.Both, stall)
			ended := stalled.Add(stall) // the stall ends no earlier
			releaseOnce.Do(func() { close(release) })
			// Calls made during the stall, one every half second: the
			// pace is the scenario, not a wait for something.
			tick := time.NewTicker(stall / 6)
			for n := 0; ; n++ {
				invoke("echo", fmt.Sprintf(`{"during_stall":%d}`, n))
				if time.Until(ended) < stall/6 {
					break
				}
				<-tick.C
			}
			tick.Stop()
			wg.Wait()
			around.waitSuccesses(t, ended, 3, 20*time.Second)
			around.stop()

			var recovery time.Duration
			for _, c := range results {
				switch {
				case c.err != nil:
					t.Errorf("%s %s: %v", c.method, c.payload, c.err)
				case c.done.Before(ended):
					t.Errorf("%s %s answered %v into a %v stall: the stall did not hold it", c.method, c.payload, c.done.Sub(stalled), stall)
				default:
					recovery = max(recovery, c.done.Sub(ended))
				}
			}
			for i, r := range around.snapshot() {
				if r.err != nil {
					t.Errorf("continuous call %d at %+.3fs: %v", i, r.at.Sub(stalled).Seconds(), r.err)
				}
			}
			if _, repeated := requests.total(); len(repeated) > 0 {
				t.Errorf("requests handled twice: %v", repeated)
			}
			checkStayedConnected(t, states, d, stalled)
			t.Logf("figure: stall transport=%s keepalive_s=%.0f stall_s=%.0f calls_during_stall=%d last_answer_after_stall_ms=%d",
				tr, keepAlive.Seconds(), stall.Seconds(), len(results)-1, recovery.Milliseconds())
		})
	}
}
