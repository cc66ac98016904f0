package amqpws

import (
	"github.com/directmethods/iotdevice/internal/ws"
	"github.com/directmethods/iotdevice/transport/amqp"
)

// network is AMQP over WebSockets: subprotocol "AMQPWSB10". Its Name makes
// connections log transport=amqp-ws.
var network = ws.NewNetwork("ws", "AMQPWSB10")

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
