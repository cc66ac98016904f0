// Package netdial holds what the SDK's clients share about opening their
// byte streams: TLS over TCP, the default network of MQTT, AMQP and the
// provisioning client, and the check that a transport.Network can dial.
package netdial

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/directmethods/iotdevice/transport"
)

// ErrNoDial reports a Network without a Dial function.
var ErrNoDial = errors.New("network has no Dial function")

// Check reports a Network a client cannot dial with, so that a malformed
// option fails Dial with a clear error instead of a panic on a protocol
// library's goroutine.
func Check(n *transport.Network) error {
	if n.Dial == nil {
		return fmt.Errorf("%w (network %q)", ErrNoDial, n.Name)
	}
	return nil
}

// TLS opens a TLS connection over TCP to address ("host:port") with
// tlsConfig, as the Dial of a TLS Network does. ctx bounds the dial only.
func TLS(ctx context.Context, address string, tlsConfig *tls.Config) (net.Conn, error) {
	d := tls.Dialer{Config: tlsConfig}
	return d.DialContext(ctx, "tcp", address)
}

// TLSNetwork returns TLS over TCP as a transport.Network, with port as its
// default port.
func TLSNetwork(port int) *transport.Network {
	return &transport.Network{Name: "tls", DefaultPort: port, Dial: func(ctx context.Context, address string, tlsConfig *tls.Config, _ *transport.Config) (net.Conn, error) {
		return TLS(ctx, address, tlsConfig)
	}}
}
