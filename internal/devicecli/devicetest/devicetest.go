// Package devicetest runs an example device program against a local hub
// in a test: it starts the hub, points the program's connection flags at
// it, waits until the program is subscribed, and invokes methods through
// the hub's REST API as a cloud application would.
package devicetest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/devicecli"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/internal/transportname"
)

// timeout bounds each wait of a test: the start, each call, the stop.
const timeout = 30 * time.Second

// Program is a device program running against a local hub.
type Program struct {
	hub      *localhub.Hub
	deviceID string
	cancel   context.CancelFunc
	done     chan error // Run's result, buffered 1
}

// Start starts a local hub with deviceID, then run in a goroutine with
// flags for that hub over transport (a name of transportname.Names), and waits until
// the device is subscribed. The test must call Stop.
func Start(t *testing.T, deviceID, transport string, run func(ctx context.Context, flags devicecli.Flags) error) *Program {
	t.Helper()
	_, webSocket, err := transportname.Dialer(transport)
	if err != nil {
		t.Fatal(err)
	}
	startCtx, cancelStart := context.WithTimeout(t.Context(), timeout)
	defer cancelStart()
	hub, err := localhub.Start(startCtx, localhub.Options{Devices: []string{deviceID}})
	if err != nil {
		t.Fatalf("start the local hub: %v", err)
	}
	t.Cleanup(func() { hub.Close() })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, hub.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	connectionString, err := hub.ConnectionString(deviceID)
	if err != nil {
		t.Fatal(err)
	}
	flags := devicecli.Flags{ConnectionString: connectionString, Transport: transport, CAFile: caFile}
	switch {
	case webSocket:
		flags.Port = hub.HTTPSPort()
	case strings.HasPrefix(transport, "amqp"):
		flags.Port = hub.AMQPPort()
	default:
		flags.Port = hub.MQTTPort()
	}

	ctx, cancel := context.WithCancel(context.Background())
	p := &Program{hub: hub, deviceID: deviceID, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- run(ctx, flags) }() // owned by p: ends on cancel, joined by Stop
	if err := hub.WaitSubscribed(startCtx, deviceID); err != nil {
		p.Stop(t)
		t.Fatalf("the program did not subscribe: %v", err)
	}
	return p
}

// Invoke calls method with payload (empty for none) through the hub's REST
// API and returns the device's status and JSON payload.
func (p *Program) Invoke(t *testing.T, method, payload string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	call := localhub.MethodCall{MethodName: method, ResponseTimeoutInSeconds: 10}
	if payload != "" {
		call.Payload = json.RawMessage(payload)
	}
	res, err := p.hub.ServiceClient().Invoke(ctx, p.deviceID, "", call)
	if err != nil {
		t.Fatalf("invoke %s: %v", method, err)
	}
	return res.Status, string(res.Payload)
}

// Stop stops the program as a signal would and returns what it returned.
// It fails the test if the program does not stop in time.
func (p *Program) Stop(t *testing.T) error {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		p.done <- err // later Stops return the same
		return err
	case <-time.After(timeout):
		t.Fatal("the program did not stop")
		return errors.New("devicetest: the program did not stop")
	}
}
