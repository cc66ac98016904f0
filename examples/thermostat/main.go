// Command thermostat is an IoT Plug and Play device: the temperature
// controller of Microsoft's sample model
// dtmi:com:example:TemperatureController;2, with simulated temperatures.
// It announces the model ID when it connects and serves the model's
// commands:
//
//   - reboot (payload: the delay in seconds; the simulation only logs it);
//   - thermostat1*getMaxMinReport and thermostat2*getMaxMinReport
//     (payload: an ISO 8601 time as a JSON string), which answer
//     {"maxTemp", "minTemp", "avgTemp", "startTime", "endTime"} over the
//     component's readings since that time.
//
// Run it against the local hub, then call a command through the digital
// twin API (or IoT Explorer, or IoT Central):
//
//	IOTHUB_DEVICE_CONNECTION_STRING="$(cat localhub-data/thermostat-1.txt)" go run ./examples/thermostat -ca localhub-data/ca.pem
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…' thermostat -transport amqp
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "thermostat:", err)
		os.Exit(1)
	}
}

// run serves the model's commands until ctx ends (a clean stop) or the
// client fails for good.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	var flags deviceflag.Flags
	fs := flag.NewFlagSet("thermostat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serve(ctx, flags, stderr)
}

// serve runs the thermostat with flags until ctx ends.
func serve(ctx context.Context, flags deviceflag.Flags, stderr io.Writer) error {
	log := flags.Logger(stderr)
	client, err := flags.NewClient(&device.ClientOptions{ModelID: modelID, Logger: log})
	if err != nil {
		return err
	}
	defer client.Close()
	c := &controller{started: time.Now(), now: time.Now, log: log}
	log.Info("thermostat ready", "model_id", modelID, "transport", flags.Transport)
	err = client.Run(ctx, c.methods())
	if ctx.Err() != nil {
		return nil // stopped by a signal
	}
	return err
}
