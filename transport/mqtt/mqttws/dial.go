package mqttws

import (
	"github.com/directmethods/iotdevice/internal/ws"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/mqtt"
)

// network is MQTT over WebSockets: subprotocol "mqtt".
var network = ws.NewNetwork("websocket", "mqtt")

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

// Network returns MQTT over WebSockets as a transport.Network (port 443
// unless the Config sets one), for clients that take a Network rather than
// a Dialer, such as package device/provisioning.
func Network() *transport.Network { return network }
