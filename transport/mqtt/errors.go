package mqtt

import (
	"fmt"

	"github.com/directmethods/iotdevice/internal/mqttsession"
	"github.com/directmethods/iotdevice/transport"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// connackError turns a refused CONNACK into an error wrapping the transport
// sentinel that tells the client whether to retry, reading the codes as
// the C SDK does (azure-iot-sdk-c, iothub_client/src/iothubtransport_mqtt_common.c).
// IoT Hub refuses a wrong key and an identity it does not know with the
// same code, so the text of those refusals names both.
func connackError(refused *mqttsession.ConnackError) error {
	code := refused.Code
	switch code {
	case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised, packets.ErrRefusedIDRejected:
		return fmt.Errorf("mqtt: %w (a wrong key or token, or a device or module that is not registered): %w", refused, transport.ErrUnauthorized)
	case packets.ErrRefusedServerUnavailable:
		// The hub answers this for a disabled device, which may be enabled
		// again, so it is worth retrying.
		return fmt.Errorf("mqtt: %w: %w", refused, transport.ErrServerBusy)
	}
	return fmt.Errorf("mqtt: %w", refused)
}
