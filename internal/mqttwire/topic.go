package mqttwire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Topics of the direct-method exchange.
const (
	// MethodsFilter subscribes to every method request of the identity.
	MethodsFilter = "$iothub/methods/POST/#"
	// RequestPrefix starts every request topic; the method name follows.
	RequestPrefix = "$iothub/methods/POST/"
	// RIDSeparator ends the method name (or the status) and starts the
	// request id.
	RIDSeparator = "/?$rid="
	// ResponsePrefix starts every response topic; the status follows.
	ResponsePrefix = "$iothub/methods/res/"
)

// ErrBadTopic reports a request topic that is not of the form
// "$iothub/methods/POST/{name}/?$rid={rid}".
var ErrBadTopic = errors.New("mqtt: malformed method request topic")

// ParseRequestTopic splits a request topic of the form
// "$iothub/methods/POST/{name}/?$rid={rid}" into the method name and the
// request id, both exactly as written: nothing is decoded. The name and the
// id must be non-empty and free of '/'; properties the hub might append
// after the id ("&key=value") are ignored.
func ParseRequestTopic(topic string) (name, requestID string, err error) {
	rest, ok := strings.CutPrefix(topic, RequestPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: does not start with %q", ErrBadTopic, RequestPrefix)
	}
	name, query, ok := strings.Cut(rest, RIDSeparator)
	if !ok {
		return "", "", fmt.Errorf("%w: no %q after the method name", ErrBadTopic, RIDSeparator)
	}
	if name == "" {
		return "", "", fmt.Errorf("%w: empty method name", ErrBadTopic)
	}
	if strings.IndexByte(name, '/') >= 0 {
		return "", "", fmt.Errorf("%w: method name contains '/'", ErrBadTopic)
	}
	requestID, _, _ = strings.Cut(query, "&")
	if requestID == "" {
		return "", "", fmt.Errorf("%w: empty $rid", ErrBadTopic)
	}
	if strings.IndexByte(requestID, '/') >= 0 {
		return "", "", fmt.Errorf("%w: $rid contains '/'", ErrBadTopic)
	}
	return name, requestID, nil
}

// AppendResponseTopic appends the response topic
// "$iothub/methods/res/{status}/?$rid={requestID}" to dst and returns the
// extended buffer. It does not allocate when dst has room.
func AppendResponseTopic(dst []byte, status int, requestID string) []byte {
	dst = append(dst, ResponsePrefix...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, RIDSeparator...)
	return append(dst, requestID...)
}
