package hubtest

import (
	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/transport"
)

// Transport names one of the SDK's transports, as the examples' -transport
// flag does.
type Transport string

// The transports a device can connect to the hub with.
const (
	MQTT          Transport = "mqtt"    // transport/mqtt: MQTT 3.1.1 over TLS
	MQTTWebSocket Transport = "mqtt-ws" // transport/mqtt/mqttws: MQTT over WebSockets
	AMQP          Transport = "amqp"    // transport/amqp: AMQP 1.0 over TLS
	AMQPWebSocket Transport = "amqp-ws" // transport/amqp/amqpws: AMQP over WebSockets
)

// Transports lists every transport, for tests that run over each.
var Transports = []Transport{MQTT, MQTTWebSocket, AMQP, AMQPWebSocket}

// String returns the transport's name.
func (tr Transport) String() string { return string(tr) }

// Dialer returns the transport's dialer with its default options, or an
// error for a Transport that is none of the constants.
func (tr Transport) Dialer() (transport.Dialer, error) { return deviceflag.Dialer(string(tr)) }
