package amqpws

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/amqp"
	"github.com/directmethods/iotdevice/transport/ws"
)

// DefaultPort is the port of IoT Hub's WebSocket endpoint (HTTPS).
const DefaultPort = 443

// subprotocol is IoT Hub's WebSocket subprotocol of AMQP (protocol.md §6).
const subprotocol = "AMQPWSB10"

// network is AMQP over WebSockets; its Name makes connections log
// transport=amqp-ws.
var network = &amqp.Network{Name: "ws", DefaultPort: DefaultPort, Dial: dial}

// NewDialer returns an AMQP Dialer that connects over WebSockets. nil opts
// means the defaults; opts.Network is ignored.
func NewDialer(opts *amqp.Options) *amqp.Dialer {
	var o amqp.Options
	if opts != nil {
		o = *opts
	}
	o.Network = network
	return amqp.NewDialer(&o)
}

// dial opens the WebSocket stream with the Config's proxy and user agent.
func dial(ctx context.Context, address string, tlsConfig *tls.Config, cfg *transport.Config) (net.Conn, error) {
	var header http.Header
	if cfg.UserAgent != "" {
		header = http.Header{"User-Agent": {cfg.UserAgent}}
	}
	return ws.Dial(ctx, address, ws.Options{Subprotocol: subprotocol, TLSConfig: tlsConfig, Proxy: cfg.Proxy, Header: header})
}
