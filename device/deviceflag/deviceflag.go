// Package deviceflag gives a device program the command-line flags every
// device needs: the connection string (or $IOTHUB_DEVICE_CONNECTION_STRING),
// the transport, a CA to trust, a port override and verbose logging. The
// Raspberry Pi examples use it; a program of your own can too.
//
//	var f deviceflag.Flags
//	f.Register(flag.CommandLine)
//	flag.Parse()
//	client, err := f.NewClient(&device.ClientOptions{Logger: f.Logger(os.Stderr)})
//
// A program that uses it links all four transports; one that needs only
// MQTT and wants the smallest binary builds its client with device alone.
package deviceflag

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/amqp"
	"github.com/directmethods/iotdevice/transport/amqp/amqpws"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
)

// EnvConnectionString is the environment variable read when
// -connection-string is not given (a systemd unit sets it from its
// EnvironmentFile, which keeps the key out of the process list).
const EnvConnectionString = "IOTHUB_DEVICE_CONNECTION_STRING"

// ErrNoConnectionString is returned by NewClient when neither the flag nor
// the environment gives a connection string.
var ErrNoConnectionString = errors.New("deviceflag: no connection string: set " + EnvConnectionString + " or -connection-string")

// TransportNames are the values -transport accepts.
var TransportNames = []string{"mqtt", "mqtt-ws", "amqp", "amqp-ws"}

// Dialer returns the transport a -transport value names: "mqtt" (MQTT over
// TLS, port 8883), "mqtt-ws" (MQTT over WebSockets, 443), "amqp" (AMQP
// over TLS, 5671) or "amqp-ws" (AMQP over WebSockets, 443).
func Dialer(name string) (transport.Dialer, error) {
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
	return nil, fmt.Errorf("deviceflag: unknown transport %q: want one of %s", name, strings.Join(TransportNames, ", "))
}

// Flags are the connection flags of a device program.
type Flags struct {
	ConnectionString string // -connection-string; empty reads $IOTHUB_DEVICE_CONNECTION_STRING
	Transport        string // -transport, one of TransportNames
	CAFile           string // -ca, a PEM file of CAs to trust instead of the system roots
	Port             int    // -port; 0 is the transport's standard port
	Verbose          bool   // -v, debug logging
}

// Register defines the flags on fs, with "mqtt" as the default transport.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.ConnectionString, "connection-string", "", "device connection string (default $"+EnvConnectionString+")")
	fs.StringVar(&f.Transport, "transport", "mqtt", "transport: "+strings.Join(TransportNames, ", "))
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

// NewClient builds the client the flags describe, on top of opts (nil for
// the defaults): the flags set Transport and Port, and TLSConfig.RootCAs
// when -ca is given. The connection string comes from the flag or, when
// that is empty, the environment; it is never logged.
func (f *Flags) NewClient(opts *device.ClientOptions) (*device.Client, error) {
	connectionString := f.ConnectionString
	if connectionString == "" {
		connectionString = os.Getenv(EnvConnectionString)
	}
	if connectionString == "" {
		return nil, ErrNoConnectionString
	}
	var o device.ClientOptions
	if opts != nil {
		o = *opts
	}
	dialer, err := Dialer(f.Transport)
	if err != nil {
		return nil, err
	}
	o.Transport = dialer
	if f.Port != 0 {
		o.Port = f.Port
	}
	if f.CAFile != "" {
		roots, err := loadCA(f.CAFile)
		if err != nil {
			return nil, err
		}
		if o.TLSConfig == nil {
			o.TLSConfig = &tls.Config{}
		} else {
			o.TLSConfig = o.TLSConfig.Clone()
		}
		o.TLSConfig.RootCAs = roots
	}
	return device.NewClientFromConnectionString(connectionString, &o)
}

// loadCA returns a pool of the CAs in file.
func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("deviceflag: read CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("deviceflag: read CA: no PEM certificate in %s", file)
	}
	return roots, nil
}
