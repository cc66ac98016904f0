// Command edgemodule is an Azure IoT Edge module built on this SDK. Run by
// the IoT Edge runtime (or with the IOTEDGE_ variables of the local hub's
// .env files in its environment), it serves two direct methods until it is
// stopped: "echo", which answers its payload, and "getTemperature". Its
// tokens are signed by the runtime's workload API, and it trusts the edge
// hub through the runtime's trust bundle.
//
// With -call it is a client instead: it invokes one method on a device or
// module through the edge hub, as a module-to-module call, prints
// {"status":N,"payload":…} and exits. As with IoT Edge, the edge hub
// reaches only the modules of its own device and its leaf devices (the
// local hub's -leaf-devices): any other target fails with 404 once the
// call's connect timeout has passed.
//
//	go run ./examples/localhub -devices edge-1,edge-1/mod-a,edge-1/mod-b -leaf-devices sensor-1=edge-1
//	set -a; . localhub-data/edge-1_mod-a.env; set +a
//	go run ./examples/edgemodule                    # serves as edge-1/mod-a over MQTT
//	set -a; . localhub-data/edge-1_mod-b.env; set +a
//	go run ./examples/edgemodule -call edge-1/mod-a -method echo -payload '{"hi":1}'
//
// -transport chooses MQTT (default), AMQP, or either over WebSockets;
// -port overrides the port connected to: the transport's (8883, 5671 or
// 443) when serving, the edge hub's HTTPS port (443) with -call.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/device/edge"
	"github.com/directmethods/iotdevice/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgemodule:", err)
		os.Exit(1)
	}
}

// run parses the flags and serves the module's methods until ctx ends, or
// makes the one call -call asks for.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	fs := flag.NewFlagSet("edgemodule", flag.ContinueOnError)
	fs.SetOutput(stderr)
	transportName := fs.String("transport", "mqtt", "transport: "+strings.Join(deviceflag.TransportNames, ", "))
	port := fs.Int("port", 0, "port to connect to: the transport's when serving, the edge hub's HTTPS port with -call (default: the standard one)")
	target := fs.String("call", "", "invoke a method on `device[/module]` through the edge hub, print the answer and exit")
	method := fs.String("method", "echo", "method -call invokes")
	payload := fs.String("payload", "", "JSON payload of the method -call invokes (default: none)")
	verbose := fs.Bool("v", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	dialer, err := deviceflag.Dialer(*transportName)
	if err != nil {
		return err
	}
	if *target != "" {
		return callOnce(ctx, stdout, lookup, logger, *target, *method, *payload, *port)
	}
	return serve(ctx, lookup, logger, dialer, *port)
}

// serve runs the module until ctx ends (a clean stop) or the client fails
// for good.
func serve(ctx context.Context, lookup func(string) (string, bool), logger *slog.Logger, dialer transport.Dialer, port int) error {
	client, err := edge.NewModuleClientFromLookup(ctx, lookup, &device.ClientOptions{
		Transport: dialer,
		Port:      port,
		Logger:    logger,
		OnStateChange: func(s device.State, err error) {
			logger.Info("connection", "state", s.String(), "err", err)
		},
	})
	if err != nil {
		return err
	}
	err = client.Run(ctx, newModule(nil).methods())
	if ctx.Err() != nil {
		return nil // stopped by a signal
	}
	return err
}

// callOnce invokes method on target ("device" or "device/module") as this
// module, through its edge hub, and prints the answer.
func callOnce(ctx context.Context, stdout io.Writer, lookup func(string) (string, bool), logger *slog.Logger, target, method, payload string, port int) error {
	deviceID, moduleID, err := parseTarget(target)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if payload != "" {
		if !json.Valid([]byte(payload)) {
			return errors.New("-payload is not JSON")
		}
		raw = json.RawMessage(payload)
	}
	client, err := edge.NewModuleClientFromLookup(ctx, lookup, &device.ClientOptions{Logger: logger})
	if err != nil {
		return err
	}
	invoker, err := edge.NewMethodInvoker(client, &edge.MethodInvokerOptions{Port: port})
	if err != nil {
		return err
	}
	defer invoker.Close()
	res, err := invoker.Invoke(ctx, deviceID, moduleID, edge.MethodCall{Name: method, Payload: raw})
	if err != nil {
		return err
	}
	out, err := json.Marshal(struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}{res.Status, res.Payload})
	if err != nil { // a payload the hub passed through that is not JSON
		return fmt.Errorf("status %d with a payload that is not JSON: %w", res.Status, err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// parseTarget splits "device" or "device/module".
func parseTarget(s string) (deviceID, moduleID string, err error) {
	deviceID, moduleID, hasModule := strings.Cut(s, "/")
	if deviceID == "" || (hasModule && (moduleID == "" || strings.Contains(moduleID, "/"))) {
		return "", "", fmt.Errorf("-call %q: want device or device/module", s)
	}
	return deviceID, moduleID, nil
}
