package mqttwire

import (
	"net/url"

	"github.com/directmethods/iotdevice/transport"
)

// apiVersion is the IoT Hub API version announced in the MQTT username,
// the one the Node.js device SDK announces.
const apiVersion = "2021-04-12"

// Username returns the CONNECT username IoT Hub expects:
//
//	{HostName}/{device}[/{module}]/?api-version=2021-04-12[&model-id={DTMI}][&DeviceClientType={user agent}]
//
// with the values query-escaped. It names the hub, not a gateway, and
// leaves model-id and DeviceClientType out when cfg.ModelID and
// cfg.UserAgent are empty. The model ID comes before DeviceClientType, as
// the Node.js device SDK writes it (azure-iot-device-mqtt, mqtt.ts).
func Username(cfg *transport.Config) string {
	u := cfg.HostName + "/" + cfg.ClientID() + "/?api-version=" + apiVersion
	if cfg.ModelID != "" {
		u += "&model-id=" + url.QueryEscape(cfg.ModelID)
	}
	if cfg.UserAgent != "" {
		u += "&DeviceClientType=" + url.QueryEscape(cfg.UserAgent)
	}
	return u
}
