// Command minimal is the smallest device program: MQTT only, one "echo"
// method, no logging. It is what the size targets of
// examples/bench/README.md are measured on.
//
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…;DeviceId=…;SharedAccessKey=…' minimal
//	minimal -connection-string '…' -ca ./localhub-data/ca.pem -port 8883
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/transport/mqtt"
)

// envConnectionString is read when -connection-string is not given.
const envConnectionString = "IOTHUB_DEVICE_CONNECTION_STRING"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv)
	stop()
	if err != nil {
		os.Stderr.WriteString("minimal: " + err.Error() + "\n")
		os.Exit(1)
	}
}

// run serves the echo method until ctx ends (a clean stop) or the client
// fails for good.
func run(ctx context.Context, args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("minimal", flag.ContinueOnError)
	connectionString := fs.String("connection-string", "", "device connection string (default $"+envConnectionString+")")
	caFile := fs.String("ca", "", "PEM file of the CA to trust instead of the system roots")
	port := fs.Int("port", 0, "MQTT port (default 8883)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *connectionString == "" {
		*connectionString = getenv(envConnectionString)
	}
	if *connectionString == "" {
		return errors.New("no connection string: set " + envConnectionString + " or -connection-string")
	}
	var tlsConfig *tls.Config
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return errors.New("no PEM certificate in " + *caFile)
		}
		tlsConfig = &tls.Config{RootCAs: roots}
	}
	client, err := device.NewClientFromConnectionString(*connectionString, &device.ClientOptions{
		Transport: mqtt.NewDialer(nil), // named, so that no other transport is linked
		Port:      *port,
		TLSConfig: tlsConfig,
	})
	if err != nil {
		return err
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("echo", func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Status: 200, Payload: req.Payload}, nil
	})
	err = client.Run(ctx, mux)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
