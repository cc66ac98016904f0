package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/faultproxy"
	"github.com/directmethods/iotdevice/internal/localhub"
)

// TestBlackHoleDetected stops all traffic between device and hub without
// closing anything and measures how long the client takes to notice:
// within its keep-alive plus the ping timeout (MQTT) or twice its
// keep-alive (others), plus a margin for scheduling under -race. Once the
// path is restored, the client reconnects and methods work.
func TestBlackHoleDetected(t *testing.T) {
	const (
		keepAlive = 2 * time.Second
		margin    = 3 * time.Second
	)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			proxy := startProxy(t, hub, tr)
			dialer, bound := fastDeadPeerDialer(t, tr, keepAlive)
			states := newStateLog()
			runDevice(t, hub, "dev-1", tr, echoMux(), viaProxy(proxy, states.tweak, func(o *device.ClientOptions) {
				o.Transport = dialer
				o.KeepAlive = keepAlive
				o.DialTimeout = 10 * time.Second
			}))
			states.waitFor(t, device.StateConnected, 1, 20*time.Second)
			waitSubscribed(t, hub, "dev-1")

			begin := time.Now()
			proxy.BlackHole(faultproxy.Both)
			lost := states.waitFor(t, device.StateDisconnected, 1, bound+margin+5*time.Second)
			detect := lost.at.Sub(begin)
			t.Logf("figure: blackhole-detect transport=%s seconds=%.1f keepalive_s=%.0f bound_s=%.0f", tr, detect.Seconds(), keepAlive.Seconds(), bound.Seconds())
			if detect > bound+margin {
				t.Errorf("black hole noticed after %v, want within %v + %v", detect, bound, margin)
			}
			proxy.Restore()
			states.waitFor(t, device.StateConnected, 2, 30*time.Second)
			res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 30*time.Second), "dev-1", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`"back"`), ConnectTimeoutInSeconds: 10})
			if err != nil || res.Status != 200 || string(res.Payload) != `"back"` {
				t.Fatalf("invoke after the black hole = %+v, %v", res, err)
			}
		})
	}
}
