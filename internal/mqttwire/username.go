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
//	{HostName}/{device}[/{module}]/?api-version=2021-04-12[&DeviceClientType={user agent, query-escaped}]
//
// It names the hub, not a gateway, and leaves DeviceClientType out when
// cfg.UserAgent is empty.
func Username(cfg *transport.Config) string {
	u := cfg.HostName + "/" + cfg.ClientID() + "/?api-version=" + apiVersion
	if cfg.UserAgent != "" {
		u += "&DeviceClientType=" + url.QueryEscape(cfg.UserAgent)
	}
	return u
}
