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
//	go run ./examples/thermostat -connection-string "$(cat localhub-data/thermostat-1.txt)" -ca localhub-data/ca.pem
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…' thermostat -transport amqp
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/amqp"
	"github.com/directmethods/iotdevice/transport/amqp/amqpws"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
)

// envConnectionString is read when -connection-string is not given.
const envConnectionString = "IOTHUB_DEVICE_CONNECTION_STRING"

// transports are the -transport values.
var transports = []string{"mqtt", "mqtt-ws", "amqp", "amqp-ws"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "thermostat:", err)
		os.Exit(1)
	}
}

// config is the program's command line.
type config struct {
	connectionString string
	transport        string
	caFile           string
	port             int
	verbose          bool
}

// parseFlags reads the command line, taking the connection string from
// the environment when the flag is not given.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("thermostat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.connectionString, "connection-string", "", "device connection string (default $"+envConnectionString+")")
	fs.StringVar(&cfg.transport, "transport", "mqtt", "transport: "+strings.Join(transports, ", "))
	fs.StringVar(&cfg.caFile, "ca", "", "PEM file of a CA to trust instead of the system roots (the local hub's ca.pem)")
	fs.IntVar(&cfg.port, "port", 0, "port override (default: the transport's standard port)")
	fs.BoolVar(&cfg.verbose, "v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if cfg.connectionString == "" {
		cfg.connectionString = getenv(envConnectionString)
	}
	if cfg.connectionString == "" {
		return config{}, errors.New("no connection string: set " + envConnectionString + " or -connection-string")
	}
	return cfg, nil
}

// dialer returns the transport a -transport value names.
func dialer(name string) (transport.Dialer, error) {
	switch name {
	case "mqtt":
		return mqtt.NewDialer(nil), nil
	case "mqtt-ws":
		return mqttws.NewDialer(nil), nil
	case "amqp":
		return amqp.NewDialer(nil), nil
	case "amqp-ws":
		return amqpws.NewDialer(nil), nil
	}
	return nil, fmt.Errorf("unknown transport %q: want one of %s", name, strings.Join(transports, ", "))
}

// tlsConfig trusts only the CAs in file, or the system roots (nil) when
// file is empty.
func tlsConfig(file string) (*tls.Config, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA: no PEM certificate in %s", file)
	}
	return &tls.Config{RootCAs: roots}, nil
}

// newClient builds the device client the flags describe, announcing the
// model ID.
func newClient(cfg config, log *slog.Logger) (*device.Client, error) {
	d, err := dialer(cfg.transport)
	if err != nil {
		return nil, err
	}
	roots, err := tlsConfig(cfg.caFile)
	if err != nil {
		return nil, err
	}
	return device.NewClientFromConnectionString(cfg.connectionString, &device.ClientOptions{
		Transport: d,
		Port:      cfg.port,
		TLSConfig: roots,
		ModelID:   modelID,
		Logger:    log,
	})
}

// run serves the model's commands until ctx ends (a clean stop) or the
// client fails for good.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if cfg.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	client, err := newClient(cfg, log)
	if err != nil {
		return err
	}
	defer client.Close()
	c := &controller{started: time.Now(), now: time.Now, log: log}
	log.Info("thermostat ready", "model_id", modelID, "transport", cfg.transport)
	err = client.Run(ctx, c.methods())
	if ctx.Err() != nil {
		return nil
	}
	return err
}
