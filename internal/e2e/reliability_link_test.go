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

func newAnswer(call int, res *localhub.MethodResult, err error) answer {
	if err != nil {
		return answer{Call: call, Err: err.Error()}
	}
	sum := sha256.Sum256([]byte(compactJSON(res.Payload)))
	return answer{Call: call, Status: res.Status, Bytes: len(compactJSON(res.Payload)), SHA256: hex.EncodeToString(sum[:8])}
}

// wantAnswer is the answer call n must get: 200 and the payload p.
func wantAnswer(n int, p []byte) answer {
	sum := sha256.Sum256(p)
	return answer{Call: n, Status: 200, Bytes: len(p), SHA256: hex.EncodeToString(sum[:8])}
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
// gets its own answer, and the client, with its default keep-alive, stays
// connected: a link that is busy sending answers is not a dead one.
func TestSlowUplink(t *testing.T) {
	const (
		calls      = 20
		answerSize = 48 << 10
		uplink     = 64 << 10 // bytes per second
		oneWay     = 150 * time.Millisecond
	)
	transfer := time.Duration(calls * answerSize * int(time.Second) / uplink)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			proxy := startProxy(t, hub, tr)
			proxy.SetBandwidth(faultproxy.ToTarget, uplink)
			proxy.SetOneWayLatency(faultproxy.Both, oneWay)
			states := newStateLog()
			d := runDevice(t, hub, "dev-1", tr, reportMux(answerSize), viaProxy(proxy, states.tweak))
			states.waitFor(t, device.StateConnected, 1, 30*time.Second)
			waitSubscribed(t, hub, "dev-1")

			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 2*time.Minute)
			got := make([]answer, calls)
			want := make([]answer, calls)
			var wg sync.WaitGroup
			begin := time.Now()
			for n := range calls {
				want[n] = wantAnswer(n, report(n, answerSize))
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
