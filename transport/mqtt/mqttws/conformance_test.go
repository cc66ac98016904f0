package mqttws_test

import (
	"testing"

	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/internal/testhub"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/mqtt"
	"github.com/directmethods/iotdevice/transport/mqtt/mqttws"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

// TestConformance runs the transport conformance suite against the local
// hub's WebSocket endpoint.
func TestConformance(t *testing.T) {
	transporttest.TestDialer(t, testhub.Harness(t, func(queueSize int) transport.Dialer {
		return mqttws.NewDialer(&mqtt.Options{QueueSize: queueSize})
	}, (*localhub.Hub).HTTPSPort))
}
