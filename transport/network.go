package transport

import (
	"context"
	"crypto/tls"
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
