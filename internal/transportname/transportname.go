// Package transportname maps the -transport flag of the example programs
// to a transport.
package transportname

import (
	"fmt"
	"strings"

	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/mqtt"
)

// Names lists the accepted values, for flag help.
var Names = []string{"mqtt", "mqtt-ws"}

// Usage is the flag's help text.
var Usage = "transport: " + strings.Join(Names, ", ")

// Dialer returns the transport for name, and whether it runs over
// WebSockets (which reach the hub on its HTTPS port).
func Dialer(name string) (d transport.Dialer, webSocket bool, err error) {
	switch name {
	case "mqtt":
		return mqtt.NewDialer(nil), false, nil
	case "mqtt-ws":
		return mqtt.NewDialer(&mqtt.Options{WebSocket: true}), true, nil
	}
	return nil, false, fmt.Errorf("unknown transport %q: want one of %s", name, strings.Join(Names, ", "))
}
