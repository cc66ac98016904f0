package hubtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"

	"github.com/directmethods/iotdevice/device"
)

// Identity is a device or a module registered on the hub.
type Identity struct {
	hub              *Hub
	deviceID         string
	moduleID         string
	connectionString string
	certificate      *tls.Certificate // X.509 devices only
}

// AddDevice registers a device that authenticates with a symmetric key (a
// SAS token), or returns the one already registered under deviceID.
func (h *Hub) AddDevice(deviceID string) (*Identity, error) {
	cs, err := h.hub.AddDevice(deviceID)
	if err != nil {
		return nil, fmt.Errorf("hubtest: add device %q: %w", deviceID, err)
	}
	return &Identity{hub: h, deviceID: deviceID, connectionString: cs}, nil
}

// AddModule registers a module, with a symmetric key, of deviceID (which
// is registered too if it is new).
func (h *Hub) AddModule(deviceID, moduleID string) (*Identity, error) {
	if _, err := h.hub.AddDevice(deviceID); err != nil {
		return nil, fmt.Errorf("hubtest: add device %q: %w", deviceID, err)
	}
	cs, err := h.hub.AddModule(deviceID, moduleID)
	if err != nil {
		return nil, fmt.Errorf("hubtest: add module %q/%q: %w", deviceID, moduleID, err)
	}
	return &Identity{hub: h, deviceID: deviceID, moduleID: moduleID, connectionString: cs}, nil
}

// AddX509Device registers a device that authenticates with a new
// self-signed client certificate, known to the hub by its SHA-256
// thumbprint as IoT Hub knows a self-signed device.
func (h *Hub) AddX509Device(deviceID string) (*Identity, error) {
	cert, err := h.hub.AddX509Device(deviceID)
	if err != nil {
		return nil, fmt.Errorf("hubtest: add X.509 device %q: %w", deviceID, err)
	}
	cs, err := h.hub.ConnectionString(deviceID)
	if err != nil {
		return nil, fmt.Errorf("hubtest: add X.509 device %q: %w", deviceID, err)
	}
	return &Identity{hub: h, deviceID: deviceID, connectionString: cs, certificate: &cert}, nil
}

// DeviceID is the identity's device id.
func (id *Identity) DeviceID() string { return id.deviceID }

// ModuleID is the identity's module id, empty for a device.
func (id *Identity) ModuleID() string { return id.moduleID }

// ConnectionString is the identity's connection string, as the Azure
// portal gives it: with its key, or with x509=true for an X.509 device.
func (id *Identity) ConnectionString() string { return id.connectionString }

// Certificate is an X.509 device's client certificate and key, nil for an
// identity with a key.
func (id *Identity) Certificate() *tls.Certificate { return id.certificate }

// ClientOptions returns options that reach the hub over tr: its dialer,
// the hub's port for it, TLS that trusts the hub's CA, and no proxy
// whatever the environment says. An X.509 device's client certificate is
// Certificate (see device.NewX509ClientFromConnectionString).
// Change any field before use; another dialer of the same protocol (with
// its own options) keeps working with the Port given here.
func (id *Identity) ClientOptions(tr Transport) (*device.ClientOptions, error) {
	dialer, err := tr.Dialer()
	if err != nil {
		return nil, fmt.Errorf("hubtest: %w", err)
	}
	return &device.ClientOptions{
		Transport: dialer,
		Port:      id.hub.Port(tr),
		TLSConfig: &tls.Config{RootCAs: id.hub.CertPool()},
		Proxy:     noProxy,
	}, nil
}

// NewClient returns a client for the identity over tr, with its key or,
// for an X.509 device, its certificate. opts (nil for the defaults) may set
// any option; its Transport, Port and TLSConfig.RootCAs are replaced by the
// ones that reach this hub, and its Proxy, when nil, by none.
func (id *Identity) NewClient(tr Transport, opts *device.ClientOptions) (*device.Client, error) {
	hubOpts, err := id.ClientOptions(tr)
	if err != nil {
		return nil, err
	}
	var o device.ClientOptions
	if opts != nil {
		o = *opts
	}
	o.Transport, o.Port = hubOpts.Transport, hubOpts.Port
	if o.TLSConfig == nil {
		o.TLSConfig = hubOpts.TLSConfig
	} else {
		o.TLSConfig = o.TLSConfig.Clone()
		o.TLSConfig.RootCAs = hubOpts.TLSConfig.RootCAs
	}
	if o.Proxy == nil {
		o.Proxy = noProxy
	}
	if id.certificate != nil {
		return device.NewX509ClientFromConnectionString(id.connectionString, *id.certificate, &o)
	}
	return device.NewClientFromConnectionString(id.connectionString, &o)
}

// WaitConnected waits until the identity is connected and subscribed to
// method requests, or ctx ends.
func (id *Identity) WaitConnected(ctx context.Context) error {
	if err := id.hub.hub.WaitSubscribed(ctx, id.name()); err != nil {
		return fmt.Errorf("hubtest: %w", err)
	}
	return nil
}

// WaitDisconnected waits until the hub no longer routes method requests to
// the identity: it has seen the identity's connection, or its method
// subscription, go. A test that stops a device and starts it again calls
// it in between, so that its next call cannot reach the connection that
// is closing, which would answer it 504101 after the response timeout, as
// IoT Hub does.
func (id *Identity) WaitDisconnected(ctx context.Context) error {
	if err := id.hub.hub.WaitOffline(ctx, id.name()); err != nil {
		return fmt.Errorf("hubtest: %w", err)
	}
	return nil
}

// Disconnect drops the identity's connections, as IoT Hub sometimes does,
// and returns how many it dropped. A client reconnects on its own.
func (id *Identity) Disconnect() int { return id.hub.hub.Disconnect(id.name()) }

// name is the local hub's name for the identity: "dev" or "dev/mod".
func (id *Identity) name() string {
	if id.moduleID == "" {
		return id.deviceID
	}
	return id.deviceID + "/" + id.moduleID
}

// noProxy connects directly: the hub is on loopback, and a test must not
// depend on the environment's HTTPS_PROXY.
func noProxy(*url.URL) (*url.URL, error) { return nil, nil }
