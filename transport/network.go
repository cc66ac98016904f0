package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// Network is one way of reaching a hub endpoint: TLS straight over TCP,
// or a WebSocket over TLS (packages mqttws and amqpws). Adapters take one
// in their options, so that a program links only the networks it uses.
type Network struct {
	// Name says in logs which network a connection uses, such as "tls".
	Name string
	// DefaultPort applies when the Config sets no Port.
	DefaultPort int
	// Dial opens a connection to address ("host:port") and returns it
	// ready for the protocol's bytes. tlsConfig comes from
	// Config.ClientTLS (server name, roots, client certificate) and must
	// be used as is: the server's certificate is always verified. cfg gives
	// the rest of the identity's settings, such as Proxy and UserAgent. ctx
	// bounds the dial only.
	Dial func(ctx context.Context, address string, tlsConfig *tls.Config, cfg *Config) (net.Conn, error)
}

// errNoDial reports a Network without a Dial function.
var errNoDial = errors.New("transport: network has no Dial function")

// Validate reports a Network an adapter cannot dial with, so that a
// malformed option fails Dial with a clear error instead of a panic on a
// protocol library's goroutine.
func (n *Network) Validate() error {
	if n.Dial == nil {
		return fmt.Errorf("%w (network %q)", errNoDial, n.Name)
	}
	return nil
}

// DialTLS opens a TLS connection over TCP to address ("host:port") with
// tlsConfig, as the Dial of a TLS Network does. ctx bounds the dial only.
func DialTLS(ctx context.Context, address string, tlsConfig *tls.Config) (net.Conn, error) {
	d := tls.Dialer{Config: tlsConfig}
	return d.DialContext(ctx, "tcp", address)
}
