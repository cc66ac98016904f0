package mqttws

import (
	"github.com/directmethods/iotdevice/internal/ws"
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
