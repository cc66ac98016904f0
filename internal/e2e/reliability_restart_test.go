package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/localhub"
)

// TestHubRestart stops the hub and starts a new one on the same ports with
// the same state directory (keys, CA, certificate): the running client
// reconnects by itself and methods work again, twice over.
func TestHubRestart(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := localhub.Options{Dir: dir, Devices: []string{"dev-1"}, Logger: testLogger(t)}
			hub, err := localhub.Start(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { hub.Close() })
			states := newStateLog()
			runDevice(t, hub, "dev-1", tr, echoMux(), states.tweak)
			states.waitFor(t, device.StateConnected, 1, 20*time.Second)

			opts.Devices = nil // registered already, in dir
			opts.MQTTPort, opts.AMQPPort, opts.HTTPSPort = hub.MQTTPort(), hub.AMQPPort(), hub.HTTPSPort()
			for restart := 1; restart <= 2; restart++ {
				hub.Close()
				states.waitFor(t, device.StateDisconnected, restart, 20*time.Second)
				next, err := localhub.Start(t.Context(), opts)
				if err != nil {
					t.Fatalf("restart %d on the same ports: %v", restart, err)
				}
				hub = next
				t.Cleanup(func() { next.Close() })
				states.waitFor(t, device.StateConnected, restart+1, 30*time.Second)
				payload := fmt.Sprintf(`{"restart":%d}`, restart)
				res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 30*time.Second), "dev-1", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(payload), ConnectTimeoutInSeconds: 10})
				if err != nil || res.Status != 200 || compactJSON(res.Payload) != payload {
					t.Fatalf("invoke after restart %d = %+v, %v", restart, res, err)
				}
			}
		})
	}
}
