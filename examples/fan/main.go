// Command fan is a device program: a fan switched from the cloud with the
// direct methods turnOnFan ({"speed": 1-3}, optional), turnOffFan and
// getFanState. Each answers 200 with {"on": bool, "speed": n}.
//
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…' go run ./examples/fan
//	go run ./examples/fan -connection-string "$(cat localhub-data/device-1.txt)" -ca localhub-data/ca.pem
//
// On a machine without a fan the pin is simulated and logs its changes.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/transportname"
)

func main() {
	var (
		connectionString = flag.String("connection-string", "", "device connection string (default $IOTHUB_DEVICE_CONNECTION_STRING)")
		transportName    = flag.String("transport", "mqtt", transportname.Usage)
		caFile           = flag.String("ca", "", "PEM file of a CA to trust instead of the system roots (the local hub's ca.pem)")
		port             = flag.Int("port", 0, "port override (default: the transport's standard port)")
		verbose          = flag.Bool("v", false, "debug logging")
	)
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *connectionString == "" {
		*connectionString = os.Getenv("IOTHUB_DEVICE_CONNECTION_STRING")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *connectionString, *transportName, *caFile, *port); err != nil {
		log.Error("fan stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, connectionString, transportName, caFile string, port int) error {
	if connectionString == "" {
		return errors.New("no connection string: set IOTHUB_DEVICE_CONNECTION_STRING or -connection-string")
	}
	dialer, _, err := transportname.Dialer(transportName)
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("read CA: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("read CA: no certificate in %s", caFile)
		}
		tlsConfig = &tls.Config{RootCAs: roots}
	}
	client, err := device.NewClientFromConnectionString(connectionString, &device.ClientOptions{
		Transport: dialer,
		Port:      port,
		TLSConfig: tlsConfig,
		Logger:    log,
	})
	if err != nil {
		return err
	}
	f := newFan(simulatedPin{log: log})
	defer func() {
		if err := f.shutdown(); err != nil {
			log.Error("could not switch the fan off", "err", err)
		}
	}()
	log.Info("fan ready", "transport", transportName)
	err = client.Run(ctx, f.methods())
	if errors.Is(err, context.Canceled) {
		return nil // stopped by a signal
	}
	return err
}
