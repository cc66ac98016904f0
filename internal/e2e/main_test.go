package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/internal/localhub"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// transports are the transport names every end-to-end test runs over.
var transports = deviceflag.TransportNames

// startHub starts a local hub with identities registered, closed at the
// end of the test.
func startHub(t *testing.T, identities ...string) *localhub.Hub {
	t.Helper()
	hub, err := localhub.Start(t.Context(), localhub.Options{Devices: identities, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runningDevice is a device.Client running against the hub.
type runningDevice struct {
	client *device.Client
	done   chan error
}

// deviceOptions returns client options that reach hub over transport.
func deviceOptions(t *testing.T, hub *localhub.Hub, transport string) *device.ClientOptions {
	t.Helper()
	dialer, err := deviceflag.Dialer(transport)
	if err != nil {
		t.Fatal(err)
	}
	port := hub.MQTTPort()
	switch {
	case isWebSocket(transport):
		port = hub.HTTPSPort()
	case strings.HasPrefix(transport, "amqp"):
		port = hub.AMQPPort()
	}
	return &device.ClientOptions{
		Transport: dialer,
		Port:      port,
		TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
		Logger:    testLogger(t),
		Backoff:   func(int) time.Duration { return 50 * time.Millisecond },
	}
}

// runDevice builds a client for identity from its connection string and
// runs h; the client is closed at the end of the test.
func runDevice(t *testing.T, hub *localhub.Hub, identity, transport string, h device.MethodHandler, tweak func(*device.ClientOptions)) *runningDevice {
	t.Helper()
	cs, err := hub.ConnectionString(identity)
	if err != nil {
		t.Fatal(err)
	}
	opts := deviceOptions(t, hub, transport)
	if tweak != nil {
		tweak(opts)
	}
	client, err := device.NewClientFromConnectionString(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return runClient(t, identity, client, h)
}

// runClient runs client with h until the test ends, and checks that it
// stopped for Close.
func runClient(t *testing.T, identity string, client *device.Client, h device.MethodHandler) *runningDevice {
	t.Helper()
	d := &runningDevice{client: client, done: make(chan error, 1)}
	go func() { d.done <- client.Run(context.Background(), h) }() // joined in cleanup
	t.Cleanup(func() {
		client.Close()
		if err := <-d.done; !errors.Is(err, device.ErrClientClosed) {
			t.Errorf("%s: Run = %v, want ErrClientClosed", identity, err)
		}
	})
	return d
}

func waitSubscribed(t *testing.T, hub *localhub.Hub, identity string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := hub.WaitSubscribed(ctx, identity); err != nil {
		t.Fatalf("%s never subscribed: %v", identity, err)
	}
}

func echoMux() *device.MethodMux {
	mux := device.NewMethodMux()
	mux.HandleFunc("echo", func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Status: 200, Payload: r.Payload}, nil
	})
	return mux
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
