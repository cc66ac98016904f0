package device

import (
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/mqtt"
)

// defaultTransport is MQTT over TLS, what every IoT Hub supports.
func defaultTransport() transport.Dialer { return mqtt.NewDialer(nil) }
