package localhub

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/directmethods/iotdevice/internal/idcheck"
)

// mqttModelIDParameter is the username parameter that announces an IoT
// Plug and Play model ID, after api-version (azure-iot-sdk-node,
// azure-iot-device-mqtt mqtt.ts).
const mqttModelIDParameter = "model-id"

// ErrBadUsername reports an MQTT username that is not of an IoT Hub form.
var ErrBadUsername = errors.New("localhub: malformed mqtt username")

// mqttUsername is a parsed CONNECT username.
type mqttUsername struct {
	hostName string
	deviceID string
	moduleID string
	// query holds the username's parameters, percent-decoded; the first
	// of duplicate keys wins.
	query map[string]string
}

// parseUsername parses the username forms IoT Hub accepts:
//
//	{host}/{device}[/{module}]/?{query}  what the Azure SDKs send
//	{host}/{device}[/{module}]/{query}   no '?', when the query names api-version
//	                                     (IoT Edge's MqttUsernameParser, older SDKs)
//	{host}/{device}[/{module}][/]        no query (MicrosoftDocs/azure-docs
//	                                     issues #16306 and #28519)
//
// Without a query, a third segment is a module id when it is there and not
// empty: "{host}/{device}/" names the device. api-version is optional, as
// IoT Hub does not require it, but must not be empty when given; its value
// and unknown keys are not checked.
func parseUsername(s string) (mqttUsername, error) {
	segments := strings.Split(s, "/")
	ids, rawQuery := segments, ""
	if n := len(segments); n > 1 {
		last := segments[n-1]
		switch {
		case strings.HasPrefix(last, "?"):
			ids, rawQuery = segments[:n-1], last[1:]
		case strings.Contains(last, "api-version="):
			ids, rawQuery = segments[:n-1], last
		case last == "": // a trailing '/' before no query
			ids = segments[:n-1]
		}
	}
	var u mqttUsername
	switch len(ids) {
	case 2:
		u.hostName, u.deviceID = ids[0], ids[1]
	case 3:
		u.hostName, u.deviceID, u.moduleID = ids[0], ids[1], ids[2]
	default:
		return mqttUsername{}, fmt.Errorf("%w: want host/device[/module][/[?]query], got %d path segments", ErrBadUsername, len(ids))
	}
	if err := idcheck.HostName(u.hostName); err != nil {
		return mqttUsername{}, fmt.Errorf("%w: %w", ErrBadUsername, err)
	}
	if err := idcheck.ID(u.deviceID); err != nil {
		return mqttUsername{}, fmt.Errorf("%w: device id: %w", ErrBadUsername, err)
	}
	if len(ids) == 3 {
		if err := idcheck.ID(u.moduleID); err != nil {
			return mqttUsername{}, fmt.Errorf("%w: module id: %w", ErrBadUsername, err)
		}
	}
	u.query = map[string]string{}
	for _, pair := range strings.Split(rawQuery, "&") {
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		decoded, err := url.QueryUnescape(value)
		if err != nil {
			return mqttUsername{}, fmt.Errorf("%w: parameter %q is not URL-encoded correctly", ErrBadUsername, key)
		}
		if _, dup := u.query[key]; !dup {
			u.query[key] = decoded
		}
	}
	if v, ok := u.query["api-version"]; ok && v == "" {
		return mqttUsername{}, fmt.Errorf("%w: empty api-version", ErrBadUsername)
	}
	return u, nil
}

// identity returns "dev" or "dev/mod", which the client id must equal.
func (u mqttUsername) identity() string { return identityName(u.deviceID, u.moduleID) }
