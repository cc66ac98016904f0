// Command fan is a device program: a fan switched from the cloud with the
// direct methods turnOnFan ({"speed": 1-3}, optional), turnOffFan and
// getFanState. Each answers 200 with {"on": bool, "speed": n}.
//
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…' fan -pin GPIO18
//	(cd examples/fan && IOTHUB_DEVICE_CONNECTION_STRING="$(cat ../../localhub-data/fan-1.txt)" go run . -ca ../../localhub-data/ca.pem)
//
// It speaks MQTT over TLS only, the lightest transport for a Pi Zero.
// With -pin the fan is a real GPIO output (through periph.io), with PWM
// speeds where the pin supports them. Without -pin, or with -simulate, the
// pin is simulated and logs its changes, so the program runs anywhere. The
// fan is switched off when the program stops.
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
	"syscall"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/transport/mqtt"
)

// envConnectionString is read when -connection-string is not given (the
// systemd unit sets it from its EnvironmentFile, which keeps the key out
// of the process list).
const envConnectionString = "IOTHUB_DEVICE_CONNECTION_STRING"

// errNoConnectionString means neither the flag nor the environment gave
// one.
var errNoConnectionString = errors.New("fan: no connection string: set " + envConnectionString + " or -connection-string")

// config is the program's command line.
type config struct {
	ConnectionString string // -connection-string; empty reads $IOTHUB_DEVICE_CONNECTION_STRING
	CAFile           string // -ca, a PEM file of CAs to trust instead of the system roots
	Port             int    // -port; 0 is 8883
	Verbose          bool   // -v
	Pin              string // -pin, such as GPIO18; empty simulates
	Simulate         bool   // -simulate
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := newLogger(os.Stderr, cfg.Verbose)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM) // systemd stops a service with SIGTERM
	defer stop()
	if err := run(ctx, log, cfg, periphHost); err != nil {
		log.Error("fan stopped", "err", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line; getenv supplies the connection
// string when the flag does not.
func parseFlags(args []string, getenv func(string) string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("fan", flag.ContinueOnError)
	fs.StringVar(&cfg.ConnectionString, "connection-string", "", "device connection string (default $"+envConnectionString+")")
	fs.StringVar(&cfg.CAFile, "ca", "", "PEM file of a CA to trust instead of the system roots (the local hub's ca.pem)")
	fs.IntVar(&cfg.Port, "port", 0, "MQTT port (default 8883)")
	fs.BoolVar(&cfg.Verbose, "v", false, "debug logging")
	fs.StringVar(&cfg.Pin, "pin", "", "GPIO output driving the fan, such as GPIO18 (default: a simulated pin)")
	fs.BoolVar(&cfg.Simulate, "simulate", false, "simulate the pin even when -pin is given")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("fan: unexpected argument %q", fs.Arg(0))
	}
	if cfg.ConnectionString == "" {
		cfg.ConnectionString = getenv(envConnectionString)
	}
	return cfg, nil
}

// newLogger writes text logs to w, at Debug level when verbose.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// newClient builds the device client: MQTT over TLS, the one transport a
// fan needs, named so that no other is linked (the binary stays within
// 6 MiB for a Pi Zero).
func newClient(cfg config, log *slog.Logger) (*device.Client, error) {
	if cfg.ConnectionString == "" {
		return nil, errNoConnectionString
	}
	opts := &device.ClientOptions{Transport: mqtt.NewDialer(nil), Port: cfg.Port, Logger: log}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("fan: read CA: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fan: read CA: no PEM certificate in %s", cfg.CAFile)
		}
		opts.TLSConfig = &tls.Config{RootCAs: roots}
	}
	return device.NewClientFromConnectionString(cfg.ConnectionString, opts)
}

// run serves the fan's methods until ctx ends, then switches it off.
func run(ctx context.Context, log *slog.Logger, cfg config, gpio gpioHost) error {
	client, err := newClient(cfg, log)
	if err != nil {
		return err
	}
	defer client.Close()
	pin, err := choosePin(gpio, cfg.Pin, cfg.Simulate, log)
	if err != nil {
		return err
	}
	f := newFan(pin)
	defer func() {
		if err := f.shutdown(); err != nil {
			log.Error("could not switch the fan off", "err", err)
		}
	}()
	log.Info("fan ready")
	if err := client.Run(ctx, f.methods()); ctx.Err() == nil {
		return err
	}
	return nil // stopped by a signal
}
