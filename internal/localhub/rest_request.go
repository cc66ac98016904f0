package localhub

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Limits and defaults of an invocation request, as the IoT Hub direct
// methods docs page (iot-hub-devguide-direct-methods) states them.
const (
	defaultResponseTimeout = 30 * time.Second
	minResponseTimeout     = 5
	maxResponseTimeout     = 300
	maxConnectTimeout      = 300
	// maxRequestBody leaves room for the envelope around a payload of
	// maxMethodPayload; larger bodies are refused before being read.
	maxRequestBody = maxMethodPayload + 8*1024
	// maxMethodNameLength is UNCONFIRMED: no source states the hub's limit.
	maxMethodNameLength = 128
)

// invokeRequest is a validated invocation body.
type invokeRequest struct {
	methodName      string
	payload         []byte // as the caller wrote it; nil when omitted
	responseTimeout time.Duration
	connectTimeout  time.Duration
}

// invokeBody is the JSON body of POST /twins/{id}/methods.
type invokeBody struct {
	MethodName               *string         `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
}

// decodeInvokeBody parses and validates an invocation body. Absent or null
// timeouts take their defaults (30 s and 0 s); present ones must be in
// range (5..300 and 0..300).
func decodeInvokeBody(body []byte) (invokeRequest, *restError) {
	var b invokeBody
	if err := json.Unmarshal(body, &b); err != nil {
		return invokeRequest{}, errArgumentInvalid("The request body is not a valid JSON object: " + clip(err.Error()))
	}
	if b.MethodName == nil {
		return invokeRequest{}, errArgumentInvalid("methodName is required.")
	}
	if err := validateMethodName(*b.MethodName); err != nil {
		return invokeRequest{}, errArgumentInvalid(err.Error())
	}
	if len(b.Payload) > maxMethodPayload {
		return invokeRequest{}, errMessageTooLarge(fmt.Sprintf("The payload is %d bytes, more than the %d allowed.", len(b.Payload), maxMethodPayload))
	}
	req := invokeRequest{methodName: *b.MethodName, payload: b.Payload, responseTimeout: defaultResponseTimeout}
	if t := b.ResponseTimeoutInSeconds; t != nil {
		if *t < minResponseTimeout || *t > maxResponseTimeout {
			return invokeRequest{}, errArgumentInvalid(fmt.Sprintf("responseTimeoutInSeconds must be between %d and %d.", minResponseTimeout, maxResponseTimeout))
		}
		req.responseTimeout = time.Duration(*t) * time.Second
	}
	if t := b.ConnectTimeoutInSeconds; t != nil {
		if *t < 0 || *t > maxConnectTimeout {
			return invokeRequest{}, errArgumentInvalid(fmt.Sprintf("connectTimeoutInSeconds must be between 0 and %d.", maxConnectTimeout))
		}
		req.connectTimeout = time.Duration(*t) * time.Second
	}
	return req, nil
}

// validateMethodName allows printable US-ASCII except the characters IoT
// Hub forbids in property names ($ ( ) < > @ , ; : \ " / [ ] ? = { } space
// tab), and also the MQTT wildcards + and #, which cannot appear in the
// topic the name is written into. The length limit is UNCONFIRMED.
func validateMethodName(name string) error {
	if name == "" {
		return fmt.Errorf("methodName must not be empty")
	}
	if len(name) > maxMethodNameLength {
		return fmt.Errorf("methodName is longer than %d characters", maxMethodNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`$()<>@,;:\"/[]?={}+#`, c) >= 0 {
			return fmt.Errorf("methodName has the invalid character %q at %d", c, i)
		}
	}
	return nil
}
