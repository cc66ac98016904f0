package mqttws

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/ws"
)

// DefaultPort is the port of IoT Hub's WebSocket endpoint (HTTPS).
const DefaultPort = 443

// subprotocol is the WebSocket subprotocol of MQTT.
const subprotocol = "mqtt"

// network is MQTT over WebSockets.
var network = &mqtt.Network{Name: "websocket", DefaultPort: DefaultPort, Dial: dial}

// NewDialer returns an MQTT Dialer that connects over WebSockets. nil opts
// means the defaults; opts.Network is ignored.
func NewDialer(opts *mqtt.Options) *mqtt.Dialer {
	var o mqtt.Options
	if opts != nil {
		o = *opts
	}
	o.Network = network
	return mqtt.NewDialer(&o)
}

// dial opens the WebSocket stream with the Config's proxy and user agent.
func dial(ctx context.Context, address string, tlsConfig *tls.Config, cfg *transport.Config) (net.Conn, error) {
	var header http.Header
	if cfg.UserAgent != "" {
		header = http.Header{"User-Agent": {cfg.UserAgent}}
	}
	return ws.Dial(ctx, address, ws.Options{Subprotocol: subprotocol, TLSConfig: tlsConfig, Proxy: cfg.Proxy, Header: header})
}
