package mqttws

import (
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/ws"
)

// DefaultPort is the port of IoT Hub's WebSocket endpoint (HTTPS).
const DefaultPort = ws.DefaultPort

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
