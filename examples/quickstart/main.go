// Command quickstart shows direct methods end to end on one machine: it
// starts a local IoT hub, connects a device built on this SDK, and invokes
// methods through the hub's REST API exactly as a cloud application would,
// printing each request and answer.
//
//	go run ./examples/quickstart                  # MQTT over TLS
//	go run ./examples/quickstart -transport amqp  # or mqtt-ws, amqp-ws
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/device/hubtest"
)

const deviceID = "thermostat-1"

func main() {
	transportName := flag.String("transport", "mqtt", "transport: "+strings.Join(deviceflag.TransportNames, ", "))
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *transportName); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, transportName string) error {
	out := &lockedWriter{w: w} // the device's state callback prints from its own goroutine
	tr := hubtest.Transport(transportName)
	if _, err := tr.Dialer(); err != nil {
		return err
	}
	hub, err := hubtest.Start(ctx, nil)
	if err != nil {
		return err
	}
	defer hub.Close()
	thermostatID, err := hub.AddDevice(deviceID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "local hub: %s on port %d\n", tr, hub.Port(tr))

	// The device side: what runs on your board. hubtest's NewClient sets
	// the transport, the hub's port and its CA; against IoT Hub it is
	// device.NewClientFromConnectionString with the portal's string.
	connected := make(chan struct{}, 1)
	client, err := thermostatID.NewClient(tr, &device.ClientOptions{
		OnStateChange: func(s device.State, err error) {
			switch {
			case s == device.StateConnected:
				fmt.Fprintf(out, "device: connected over %s\n", tr)
				select {
				case connected <- struct{}{}:
				default:
				}
			case err != nil && !errors.Is(err, device.ErrClientClosed):
				fmt.Fprintf(out, "device: %s (%v)\n", s, err)
			default:
				fmt.Fprintf(out, "device: %s\n", s)
			}
		},
	})
	if err != nil {
		return err
	}
	t := &thermostat{target: 20}
	runErr := make(chan error, 1)
	go func() { runErr <- client.Run(ctx, t.methods()) }() // joined below, after Close
	defer func() {
		client.Close()
		if err := <-runErr; err != nil && !errors.Is(err, device.ErrClientClosed) {
			fmt.Fprintln(os.Stderr, "device stopped:", err)
		}
	}()
	waitCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	select {
	case <-connected:
	case err := <-runErr:
		runErr <- err // for the deferred join
		return fmt.Errorf("device stopped: %w", err)
	case <-waitCtx.Done():
		return fmt.Errorf("device did not connect: %w", waitCtx.Err())
	}

	// The cloud side: POST /twins/{id}/methods with a service token.
	calls := []struct {
		method  string
		payload json.RawMessage
	}{
		{"getTemperature", nil},
		{"setTargetTemperature", json.RawMessage(`{"celsius": 22.5}`)},
		{"setTargetTemperature", json.RawMessage(`{"celsius": 95}`)},
		{"getTemperature", nil},
		{"selfDestruct", nil},
	}
	for _, call := range calls {
		payload := string(call.payload)
		if payload == "" {
			payload = "(no payload)"
		}
		fmt.Fprintf(out, "\ncloud invokes %s %s\n", call.method, payload)
		res, err := thermostatID.Invoke(ctx, call.method, call.payload, &hubtest.InvokeOptions{ResponseTimeout: 10 * time.Second})
		if err != nil {
			return fmt.Errorf("invoke %s: %w", call.method, err)
		}
		fmt.Fprintf(out, "device answers %d %s\n", res.Status, res.Payload)
	}
	fmt.Fprintln(out, "\ndone: every method was invoked through the REST API and answered by the device")
	return nil
}

// thermostat is the device's state, changed by its methods.
type thermostat struct {
	mu     sync.Mutex
	target float64
}

func (t *thermostat) methods() *device.MethodMux {
	mux := device.NewMethodMux()
	mux.HandleFunc("getTemperature", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		return device.JSONResponse(200, map[string]float64{"current": 19.8, "target": t.target})
	})
	mux.HandleFunc("setTargetTemperature", func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		var args struct {
			Celsius *float64 `json:"celsius"`
		}
		if err := req.Unmarshal(&args); err != nil {
			return nil, err
		}
		if args.Celsius == nil || *args.Celsius < 5 || *args.Celsius > 35 {
			return nil, device.Errorf(400, "celsius must be between 5 and 35")
		}
		t.mu.Lock()
		t.target = *args.Celsius
		t.mu.Unlock()
		return device.JSONResponse(200, map[string]float64{"target": *args.Celsius})
	})
	return mux
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
