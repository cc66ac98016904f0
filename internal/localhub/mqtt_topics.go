package localhub

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/directmethods/iotdevice/internal/mqttwire"
)

// Topic errors, testable with errors.Is.
var (
	// errNotMethodResponse reports a topic outside $iothub/methods/res/;
	// such publishes are accepted and ignored.
	errNotMethodResponse = errors.New("localhub: not a method response topic")
	// ErrBadResponseTopic reports a method response topic that does not
	// parse; the hub closes the connection that sent it.
	ErrBadResponseTopic = errors.New("localhub: malformed method response topic")
)

// methodRequestTopic is the topic of a request: exactly
// "$iothub/methods/POST/{name}/?$rid={rid}", with no other properties,
// because several SDKs take everything after "$rid=" as the request id.
func methodRequestTopic(name, rid string) string {
	return mqttwire.RequestPrefix + name + mqttwire.RIDSeparator + rid
}

// parseMethodResponseTopic parses "$iothub/methods/res/{status}/?$rid={rid}".
// Further "&key=value" properties are ignored; the first $rid wins.
// The status must be a decimal integer. When only the status is wrong,
// rid is still returned with the error, so that the call it answers can
// be failed at once.
func parseMethodResponseTopic(topic string) (status int, rid string, err error) {
	rest, ok := strings.CutPrefix(topic, mqttwire.ResponsePrefix)
	if !ok {
		return 0, "", errNotMethodResponse
	}
	statusText, query, ok := strings.Cut(rest, "/?")
	if !ok {
		return 0, "", fmt.Errorf("%w: no \"/?\" after the status", ErrBadResponseTopic)
	}
	rid, err = parseRID(query)
	if err != nil {
		return 0, "", err
	}
	status, err = parseStatus(statusText)
	if err != nil {
		return 0, rid, err
	}
	return status, rid, nil
}

// parseRID returns the first $rid of a topic's properties.
func parseRID(query string) (string, error) {
	for _, pair := range strings.Split(query, "&") {
		key, value, _ := strings.Cut(pair, "=")
		if key != "$rid" {
			continue
		}
		if decoded, err := url.QueryUnescape(value); err == nil {
			value = decoded
		}
		if value == "" {
			return "", fmt.Errorf("%w: empty $rid", ErrBadResponseTopic)
		}
		return value, nil
	}
	return "", fmt.Errorf("%w: no $rid", ErrBadResponseTopic)
}

// parseStatus accepts an optional '-' and one to ten decimal digits that
// fit in an int32, as the SDKs write the status with %d.
func parseStatus(s string) (int, error) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || len(digits) > 10 || strings.Trim(digits, "0123456789") != "" {
		return 0, fmt.Errorf("%w: status %q is not an integer", ErrBadResponseTopic, clip(s))
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: status %q is out of range", ErrBadResponseTopic, clip(s))
	}
	return int(n), nil
}

// clip shortens untrusted text quoted in errors and logs.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
