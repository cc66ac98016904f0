// Package devicecli holds what the example device programs share: their
// connection flags, their logger, and the loop that serves direct methods
// until a signal stops the program.
package devicecli

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
	"github.com/directmethods/iotdevice/internal/transportname"
)

// EnvConnectionString is the environment variable read when
// -connection-string is not given (systemd units set it from their
// EnvironmentFile).
const EnvConnectionString = "IOTHUB_DEVICE_CONNECTION_STRING"

// ErrNoConnectionString is returned by NewClient when neither the flag nor
// the environment gives a connection string.
var ErrNoConnectionString = errors.New("devicecli: no connection string: set " + EnvConnectionString + " or -connection-string")

// Flags are the connection flags of every example program.
type Flags struct {
	ConnectionString string // -connection-string; empty reads $IOTHUB_DEVICE_CONNECTION_STRING
	Transport        string // -transport, a name of transportname.Names
	CAFile           string // -ca, a PEM file of CAs to trust instead of the system roots
	Port             int    // -port; 0 is the transport's standard port
	Verbose          bool   // -v, debug logging
}

// Register defines the flags on fs, with "mqtt" as the default transport.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.ConnectionString, "connection-string", "", "device connection string (default $"+EnvConnectionString+")")
	fs.StringVar(&f.Transport, "transport", "mqtt", transportname.Usage)
	fs.StringVar(&f.CAFile, "ca", "", "PEM file of a CA to trust instead of the system roots (the local hub's ca.pem)")
	fs.IntVar(&f.Port, "port", 0, "port override (default: the transport's standard port)")
	fs.BoolVar(&f.Verbose, "v", false, "debug logging")
}

// Logger returns a text logger writing to w, at Debug level with -v and
// Info otherwise.
func (f *Flags) Logger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if f.Verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// NewClient builds the device client the flags describe. The connection
// string comes from the flag or, when that is empty, the environment; it
// is never logged.
func (f *Flags) NewClient(log *slog.Logger) (*device.Client, error) {
	connectionString := f.ConnectionString
	if connectionString == "" {
		connectionString = os.Getenv(EnvConnectionString)
	}
	if connectionString == "" {
		return nil, ErrNoConnectionString
	}
	dialer, _, err := transportname.Dialer(f.Transport)
	if err != nil {
		return nil, fmt.Errorf("devicecli: %w", err)
	}
	tlsConfig, err := loadCA(f.CAFile)
	if err != nil {
		return nil, err
	}
	return device.NewClientFromConnectionString(connectionString, &device.ClientOptions{
		Transport: dialer,
		Port:      f.Port,
		TLSConfig: tlsConfig,
		Logger:    log,
	})
}

// loadCA returns a TLS configuration trusting only the CAs in file, or nil
// (the system roots) when file is empty.
func loadCA(file string) (*tls.Config, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("devicecli: read CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("devicecli: read CA: no PEM certificate in %s", file)
	}
	return &tls.Config{RootCAs: roots}, nil
}

// Serve runs client with handler until ctx ends or the client fails for
// good. An end by ctx (a signal) is a clean stop and returns nil.
func Serve(ctx context.Context, client *device.Client, handler device.MethodHandler) error {
	err := client.Run(ctx, handler)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// SignalContext returns a context that ends on SIGINT or SIGTERM (what
// systemd sends to stop a service).
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
