// Package transportname maps the -transport flag of the example programs
// and the end-to-end tests to a transport.
package transportname

import (
	"fmt"
	"strings"

	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/amqp"
	"github.com/directmethods/iotdevice/transport/amqp/amqpws"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
)

// Names lists the accepted values, for flag help and for tests that run
// over every transport.
var Names = []string{"mqtt", "mqtt-ws", "amqp", "amqp-ws"}

// Usage is the flag's help text.
var Usage = "transport: " + strings.Join(Names, ", ")

// Dialer returns the transport for name, and whether it runs over
// WebSockets (which reach the hub on its HTTPS port).
func Dialer(name string) (d transport.Dialer, webSocket bool, err error) {
	switch name {
	case "mqtt":
		return mqtt.NewDialer(nil), false, nil
	case "mqtt-ws":
		return mqttws.NewDialer(nil), true, nil
	case "amqp":
		return amqp.NewDialer(nil), false, nil
	case "amqp-ws":
		return amqpws.NewDialer(nil), true, nil
	}
	return nil, false, fmt.Errorf("unknown transport %q: want one of %s", name, strings.Join(Names, ", "))
}

// Ports are a hub's listening ports.
type Ports struct{ MQTT, AMQP, HTTPS int }

// For returns the port the named transport connects to: HTTPS for the
// WebSocket variants, else the protocol's own.
func (p Ports) For(name string) int {
	switch {
	case strings.HasSuffix(name, "-ws"):
		return p.HTTPS
	case strings.HasPrefix(name, "amqp"):
		return p.AMQP
	}
	return p.MQTT
}
