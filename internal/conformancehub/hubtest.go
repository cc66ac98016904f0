// Package conformancehub runs the transport conformance suite
// (transporttest.TestDialer) against a local hub, for the adapters' tests:
// calls go through the hub's REST API as a cloud application's do.
package conformancehub

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/sas"
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
		cs, err := hub.AddDevice(deviceID)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := sas.ParseConnectionString(cs)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := parsed.Credential(time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return &transporttest.Harness{
			Dialer: newDialer(queueSize),
			Config: &transport.Config{
				HostName:        parsed.HostName,
				GatewayHostName: "127.0.0.1",
				Port:            port(hub),
				DeviceID:        deviceID,
				Credential:      cred,
				TLSConfig:       &tls.Config{RootCAs: hub.CertPool(), ServerName: parsed.HostName},
				KeepAlive:       30 * time.Second,
				Proxy:           func(*url.URL) (*url.URL, error) { return nil, nil }, // loopback, whatever the environment says
				Logger:          slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
			},
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
