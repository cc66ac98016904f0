// Package testhub holds what the adapters' tests share: a transport.Config
// for an identity of a local hub (Config), and the transport conformance
// suite (transporttest.TestDialer) run against a local hub (Harness), whose
// calls go through the hub's REST API as a cloud application's do.
package testhub

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

// responseTimeout is the calls' responseTimeoutInSeconds: longer than
// any wait of the suite, which ends every call it leaves unanswered.
const responseTimeout = 120

// Harness starts a local hub that lives as long as t and returns a
// transporttest.MakeHarness that registers a new device on it for each
// subtest. The device dials with newDialer(queueSize) the port of the hub
// that port returns (MQTTPort, AMQPPort or HTTPSPort).
func Harness(t *testing.T, newDialer func(queueSize int) transport.Dialer, port func(*localhub.Hub) int) transporttest.MakeHarness {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	hub, err := localhub.Start(t.Context(), localhub.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	var devices atomic.Int64
	return func(t *testing.T) *transporttest.Harness {
		t.Helper()
		const queueSize = 4
		deviceID := fmt.Sprintf("conformance-%d", devices.Add(1))
		if _, err := hub.AddDevice(deviceID); err != nil {
			t.Fatal(err)
		}
		cfg := Config(t, hub, deviceID, port(hub))
		cfg.Proxy = func(*url.URL) (*url.URL, error) { return nil, nil } // loopback, whatever the environment says
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
		return &transporttest.Harness{
			Dialer:    newDialer(queueSize),
			Config:    cfg,
			QueueSize: queueSize,
			Invoke: func(ctx context.Context, method string, payload []byte) (int, []byte, error) {
				res, err := hub.ServiceClient().Invoke(ctx, deviceID, "", localhub.MethodCall{
					MethodName: method, Payload: payload, ResponseTimeoutInSeconds: responseTimeout,
				})
				if err != nil {
					return 0, nil, err
				}
				return res.Status, res.Payload, nil
			},
			Drop: func() bool { return hub.Disconnect(deviceID) > 0 },
		}
	}
}
