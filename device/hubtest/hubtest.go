// Package hubtest runs a local IoT hub in the test's own process, in the
// spirit of net/http/httptest: a device built on this SDK connects to it
// over any transport, with TLS verified against the hub's own CA, and the
// test invokes direct methods on it as a cloud application would, through
// the hub's service REST API. It can also tag devices' twins (SetTags),
// query them, and schedule jobs that call a method on every device a
// query selects (ScheduleMethodJob), offline ones included.
//
// The hub is the same one `go run ./examples/localhub` runs: as strict as
// IoT Hub about tokens, identities, request ids, payload sizes and
// timeouts, so a device that passes against it behaves the same against
// the cloud.
//
//	hub := hubtest.New(t, nil)
//	dev, _ := hub.AddDevice("thermostat-1")
//	client, _ := dev.NewClient(hubtest.MQTT, nil)
//	go client.Run(ctx, mux)
//	res, err := dev.Invoke(ctx, "getTemperature", nil, &hubtest.InvokeOptions{ConnectTimeout: 10 * time.Second})
package hubtest

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
)

// Options configures a Hub. A nil *Options, and every zero field, means
// the default.
type Options struct {
	// HostName is the hub's name in connection strings, tokens and its TLS
	// certificate; the hub is always reached on 127.0.0.1. Default
	// "localhost".
	HostName string
	// Logger receives the hub's logs (connections, calls, refusals; never
	// keys or payloads). Default: none.
	Logger *slog.Logger
	// Edge makes the hub also play the IoT Edge runtime for its modules: a
	// workload API on a unix socket in a temporary directory, which signs
	// their tokens and hands out the hub's CA as the trust bundle (see
	// Identity.EdgeEnvironment), and the edge hub's module-to-module calls
	// (edge.MethodInvoker). Default: off.
	Edge bool
	// Tier opts in to the limits of an IoT Hub tier, "F1", "S1", "S2" or
	// "S3", with TierUnits units (default 1): direct methods, twin and
	// query throttles shaped and then refused with 429, job device
	// operations paced, and at most 1, 5 or 10 active jobs. Default: no
	// limits, so that tests run at full speed.
	Tier      string
	TierUnits int
	// ProvisioningRetryAfter is the retry-after of the Device Provisioning
	// Service's answers, and how long an assignment takes (see
	// provisioning.go). Default 1 s, the shortest the protocol carries;
	// DPS itself sends 3 s.
	ProvisioningRetryAfter time.Duration
}

// Hub is a local IoT hub listening on free loopback ports: MQTT and AMQP
// over TLS, and HTTPS for WebSockets and the service REST API. Its CA and
// keys are new for every hub and live in memory. It is safe for concurrent
// use.
type Hub struct {
	hub     *localhub.Hub
	tempDir string // holds the workload socket with Options.Edge
}

// New starts a hub for the test and closes it when the test and its
// subtests end (tb.Cleanup). It fails the test if the hub cannot start.
func New(tb testing.TB, opts *Options) *Hub {
	tb.Helper()
	h, err := Start(tb.Context(), opts)
	if err != nil {
		tb.Fatalf("hubtest: %v", err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// Start starts a hub outside a test, for example programs; the caller
// must Close it. ctx bounds the start only.
func Start(ctx context.Context, opts *Options) (*Hub, error) {
	o := localhub.Options{DPS: localhub.DPSOptions{RetryAfter: time.Second}}
	var tempDir string
	if opts != nil {
		o.HostName = opts.HostName
		o.Logger = opts.Logger
		if opts.Tier != "" {
			tier, err := localhub.ParseTier(opts.Tier, max(opts.TierUnits, 1))
			if err != nil {
				return nil, fmt.Errorf("start the local hub: %w", err)
			}
			o.Tier = tier
		}
		o.DPS.RetryAfter = cmp.Or(opts.ProvisioningRetryAfter, o.DPS.RetryAfter)
		if opts.Edge {
			// A short path of its own: a unix socket's path is limited to
			// about 100 bytes, which a test's TempDir can exceed.
			dir, err := os.MkdirTemp("", "hubtest")
			if err != nil {
				return nil, fmt.Errorf("start the local hub: %w", err)
			}
			tempDir, o.WorkloadSocket = dir, filepath.Join(dir, "workload.sock")
		}
	}
	h, err := localhub.Start(ctx, o)
	if err != nil {
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
		return nil, fmt.Errorf("start the local hub: %w", err)
	}
	return &Hub{hub: h, tempDir: tempDir}, nil
}

// Close drops every connection, ends the calls in progress and stops the
// listeners. It waits for the hub's goroutines.
func (h *Hub) Close() error {
	err := h.hub.Close()
	if h.tempDir != "" {
		os.RemoveAll(h.tempDir)
	}
	return err
}

// HostName is the hub's name, the HostName of its connection strings.
func (h *Hub) HostName() string { return h.hub.HostName() }

// Port returns the loopback port a transport connects to: the MQTT or
// AMQP port, or the HTTPS port for the WebSocket transports.
func (h *Hub) Port(tr Transport) int {
	switch tr {
	case MQTT:
		return h.hub.MQTTPort()
	case AMQP:
		return h.hub.AMQPPort()
	}
	return h.hub.HTTPSPort()
}

// HTTPSPort is the port of the REST API and of the WebSocket transports;
// with Options.Edge, the edge hub's port for edge.MethodInvokerOptions.
func (h *Hub) HTTPSPort() int { return h.hub.HTTPSPort() }

// CertPool returns a pool that trusts the hub's CA, for a tls.Config's
// RootCAs.
func (h *Hub) CertPool() *x509.CertPool { return h.hub.CertPool() }

// CACertPEM returns the hub's CA certificate in PEM, for programs that take
// a CA file (such as the examples' -ca flag).
func (h *Hub) CACertPEM() []byte { return h.hub.CACertPEM() }

// ServiceConnectionString returns the connection string of the hub's
// iothubowner policy, for a service SDK of your own.
func (h *Hub) ServiceConnectionString() string { return h.hub.ServiceConnectionString() }
