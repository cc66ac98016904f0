package bench

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"

	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/sas"
)

// Target is the hub a run talks to: where its device ports are, whom to
// trust, how to invoke methods, and the identities the devices connect as.
type Target struct {
	// Service invokes methods through the hub's REST API.
	Service *localhub.ServiceClient
	// Roots trusts the hub's certificate.
	Roots *x509.CertPool
	// RootsPEM is Roots in PEM, for devices run in a child process (see
	// Config.DeviceCommand); nil when Roots is nil (the system's roots).
	RootsPEM []byte
	// MQTTPort, AMQPPort and HTTPSPort are the hub's ports; the WebSocket
	// transports use HTTPSPort. 0 means the transport's standard port.
	MQTTPort, AMQPPort, HTTPSPort int
	// ConnectionStrings are the device identities, one per device
	// connection of a run.
	ConnectionStrings []string
}

// Port returns the port of the hub that transport name reaches.
func (t *Target) Port(name string) int {
	switch name {
	case "mqtt":
		return t.MQTTPort
	case "amqp":
		return t.AMQPPort
	}
	return t.HTTPSPort
}

// DeviceID returns the device id of the i-th connection string.
func (t *Target) DeviceID(i int) (string, error) {
	cs, err := sas.ParseConnectionString(t.ConnectionStrings[i])
	if err != nil {
		return "", err
	}
	return cs.DeviceID, nil
}

// BenchDeviceID names the i-th device a benchmark registers.
func BenchDeviceID(i int) string { return fmt.Sprintf("bench-%05d", i) }

// LocalTarget returns a Target for hub, registering devices identities
// named by BenchDeviceID.
func LocalTarget(hub *localhub.Hub, devices int) (*Target, error) {
	t := &Target{
		Service: hub.ServiceClient(), Roots: hub.CertPool(), RootsPEM: hub.CACertPEM(),
		MQTTPort: hub.MQTTPort(), AMQPPort: hub.AMQPPort(), HTTPSPort: hub.HTTPSPort(),
	}
	for i := range devices {
		cs, err := hub.AddDevice(BenchDeviceID(i))
		if err != nil {
			return nil, fmt.Errorf("bench: register device: %w", err)
		}
		t.ConnectionStrings = append(t.ConnectionStrings, cs)
	}
	return t, nil
}

// benchTier is the tier of the hubs the bench starts: IoT Hub's largest,
// S3 with 10 units, whose direct-method throttle (24 MB/s per unit in
// 4 KB meters, 61,440 small calls a second) is above the fastest rate the
// bench reaches, so that it measures the SDK and not the throttle.
var benchTier = localhub.Tier{SKU: "S3", Units: 10}

// StartLocalHub starts an in-process local hub on free loopback ports with
// devices identities registered. Close the hub when done.
func StartLocalHub(ctx context.Context, devices int) (*localhub.Hub, *Target, error) {
	hub, err := localhub.Start(ctx, localhub.Options{Tier: benchTier})
	if err != nil {
		return nil, nil, fmt.Errorf("bench: start local hub: %w", err)
	}
	t, err := LocalTarget(hub, devices)
	if err != nil {
		hub.Close()
		return nil, nil, err
	}
	return hub, t, nil
}

// ExternalHub describes a hub running in another process.
type ExternalHub struct {
	URL               string   // https://127.0.0.1:8443, the REST API and WebSockets
	Service           string   // the service (iothubowner) connection string
	CAFile            string   // PEM file of the hub's CA; empty: system roots
	MQTTPort          int      // 0: 8883
	AMQPPort          int      // 0: 5671
	ConnectionStrings []string // device identities, at least one
}

// ErrNoDevices is returned when an external hub is given no device
// connection string.
var ErrNoDevices = errors.New("bench: an external hub needs at least one -connection-string")

// Target returns the Target for the external hub.
func (e ExternalHub) Target() (*Target, error) {
	if len(e.ConnectionStrings) == 0 {
		return nil, ErrNoDevices
	}
	var (
		roots *x509.CertPool
		pem   []byte
	)
	if e.CAFile != "" {
		var err error
		pem, err = os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("bench: read CA: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("bench: no PEM certificate in %s", e.CAFile)
		}
	}
	service, err := localhub.NewServiceClient(e.URL, e.Service, roots)
	if err != nil {
		return nil, err
	}
	httpsPort, err := urlPort(e.URL)
	if err != nil {
		return nil, err
	}
	for _, cs := range e.ConnectionStrings {
		if _, err := sas.ParseConnectionString(cs); err != nil {
			return nil, fmt.Errorf("bench: -connection-string: %w", err)
		}
	}
	return &Target{
		Service: service, Roots: roots, RootsPEM: pem, MQTTPort: e.MQTTPort, AMQPPort: e.AMQPPort, HTTPSPort: httpsPort,
		ConnectionStrings: e.ConnectionStrings,
	}, nil
}

// urlPort returns the port of an https URL, 443 when it has none.
func urlPort(raw string) (int, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return 0, fmt.Errorf("bench: hub URL %q must be https://host[:port]", raw)
	}
	if u.Port() == "" {
		return 443, nil
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port <= 0 || port > 65535 {
		return 0, fmt.Errorf("bench: hub URL %q has a bad port", raw)
	}
	return port, nil
}
