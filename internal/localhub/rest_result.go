package localhub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// The body of a successful invocation is {"status":N,"payload":P}, where N
// is the device's status and P is the device's answer bytes spliced in
// unchanged, or null when the device sent none.
//
// IoT Hub does not check that the device's answer is JSON: it passes the
// bytes through, so callers of the real service receive a body that is not
// JSON when the device's answer is not (azure-iot-sdk-node issue #736 shows
// {"status":200,"payload":{'filename': 'logs.zip'}}; PR #448 made that SDK
// report such a body as an error instead of crashing;
// azure-iot-sdk-python issue #781 and azure-iot-sdk-csharp issue #120 show
// the same parse failures in the other service SDKs). The hub does the
// same, so a device that answers with something other than JSON breaks its
// callers here as it would against IoT Hub.

// Prefix and suffix of a success body as the hub writes it.
const (
	resultStatusPrefix  = `{"status":`
	resultPayloadPrefix = `,"payload":`
	resultSuffix        = `}`
)

// methodResultBody writes the body of a successful invocation.
func methodResultBody(status int, payload []byte) []byte {
	b := make([]byte, 0, len(resultStatusPrefix)+len(resultPayloadPrefix)+len(resultSuffix)+len(payload)+12)
	b = append(b, resultStatusPrefix...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, resultPayloadPrefix...)
	if len(payload) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, payload...)
	}
	return append(b, resultSuffix...)
}

// errBadMethodResult is wrapped by decodeMethodResult's errors.
var errBadMethodResult = errors.New("not a method result")

// decodeMethodResult reads the body of a successful invocation. A body in
// the hub's exact form gives the status and the payload bytes as they are
// between the prefix and the closing brace, JSON or not; any other body
// must be a JSON object with a status.
func decodeMethodResult(body []byte) (*MethodResult, error) {
	if rest, ok := bytes.CutPrefix(body, []byte(resultStatusPrefix)); ok {
		digits, payload, found := bytes.Cut(rest, []byte(resultPayloadPrefix))
		if found && validStatus(digits) && bytes.HasSuffix(payload, []byte(resultSuffix)) {
			status, err := strconv.Atoi(string(digits))
			if err == nil {
				payload = payload[:len(payload)-len(resultSuffix)]
				return &MethodResult{Status: status, Payload: bytes.Clone(payload)}, nil
			}
		}
	}
	var result struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(body, &result); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadMethodResult, err)
	}
	if result.Status == nil {
		return nil, fmt.Errorf("%w: no status", errBadMethodResult)
	}
	return &MethodResult{Status: *result.Status, Payload: result.Payload}, nil
}

// validStatus reports whether b is a decimal integer as strconv.AppendInt
// writes one: an optional minus sign, then digits without a leading zero.
func validStatus(b []byte) bool {
	b, _ = bytes.CutPrefix(b, []byte("-"))
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
