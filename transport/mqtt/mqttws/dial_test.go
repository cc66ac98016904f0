package mqttws_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/internal/testhub"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// waitTimeout bounds every wait of the tests.
const waitTimeout = 10 * time.Second

const deviceID = "ws-device"

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startHub starts a local hub with deviceID registered and returns it with
// a Config that reaches it over its HTTPS port.
func startHub(t *testing.T) (*localhub.Hub, *transport.Config) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	hub, err := localhub.Start(t.Context(), localhub.Options{Devices: []string{deviceID}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub, testhub.Config(t, hub, deviceID, hub.HTTPSPort())
}

// TestMethodCall dials over WebSockets, answers one invocation made through
// the hub's REST API, and checks that the dial went through Config.Proxy
// with Config.UserAgent.
func TestMethodCall(t *testing.T) {
	hub, cfg := startHub(t)
	cfg.UserAgent = "iotdevice-test/1"
	var (
		mu      sync.Mutex
		proxied []string
	)
	cfg.Proxy = func(target *url.URL) (*url.URL, error) {
		mu.Lock()
		defer mu.Unlock()
		proxied = append(proxied, target.Scheme+"://"+target.Host+target.Path)
		return nil, nil // connect directly
	}
	c, err := mqttws.NewDialer(&mqtt.Options{PingTimeout: 5 * time.Second}).Dial(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if err := hub.WaitSubscribed(testContext(t), deviceID); err != nil {
		t.Fatalf("WaitSubscribed: %v", err)
	}

	type result struct {
		res *localhub.MethodResult
		err error
	}
	results := make(chan result, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // owned by the test; joined by wg
		res, err := hub.ServiceClient().Invoke(testContext(t), deviceID, "", localhub.MethodCall{MethodName: "ping", Payload: []byte(`{"n":1}`), ResponseTimeoutInSeconds: 10})
		results <- result{res, err}
	})

	req, err := c.Receive(testContext(t))
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if diff := cmp.Diff("ping", req.Name); diff != "" {
		t.Errorf("method name (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(`{"n":1}`, string(req.Payload)); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if err := c.Respond(testContext(t), req, 201, []byte(`{"ok":true}`)); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	var r result
	select {
	case r = <-results:
	case <-testContext(t).Done():
		t.Fatal("timed out waiting for the invocation's result")
	}
	if r.err != nil {
		t.Fatalf("Invoke: %v", r.err)
	}
	if diff := cmp.Diff(&localhub.MethodResult{Status: 201, Payload: []byte(`{"ok":true}`)}, r.res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	wantProxied := []string{"https://127.0.0.1:" + strconv.Itoa(hub.HTTPSPort()) + "/$iothub/websocket"}
	if diff := cmp.Diff(wantProxied, proxied); diff != "" {
		t.Errorf("requests given to Proxy (-want +got):\n%s", diff)
	}
}

func TestUntrustedServerCertificateIsFatal(t *testing.T) {
	_, cfg := startHub(t)
	cfg.TLSConfig = &tls.Config{RootCAs: x509.NewCertPool()}
	c, err := mqttws.NewDialer(nil).Dial(testContext(t), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded against an untrusted certificate")
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("Dial error = %v, want an x509.UnknownAuthorityError in the chain", err)
	}
	var verify *tls.CertificateVerificationError
	if !errors.As(err, &verify) {
		t.Errorf("Dial error = %v, want a *tls.CertificateVerificationError in the chain (the client stops on it)", err)
	}
}

// TestDefaultPort checks that a Config without Port dials port 443. No
// root is trusted, so the dial fails whatever listens there.
func TestDefaultPort(t *testing.T) {
	_, cfg := startHub(t)
	cfg.Port = 0
	cfg.TLSConfig = &tls.Config{RootCAs: x509.NewCertPool()}
	cfg.Proxy = func(*url.URL) (*url.URL, error) { return nil, nil }
	c, err := mqttws.NewDialer(nil).Dial(testContext(t), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded without a trusted root")
	}
	if want := "127.0.0.1:443"; !strings.Contains(err.Error(), want) {
		t.Errorf("Dial error = %v, want it to name %s", err, want)
	}
}
