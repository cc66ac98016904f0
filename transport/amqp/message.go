package amqp

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
	"github.com/directmethods/iotdevice/transport"
)

// errMalformedRequest reports a request message that lacks its correlation
// id, its method name or its data section. Such a request is rejected with
// amqp:decode-error.
var errMalformedRequest = errors.New("amqp: malformed method request")

// parseRequest converts a request message from the hub into a
// transport.MethodRequest. It requires properties.correlation-id (a uuid as
// the hub sends it; a non-empty string, ulong or binary is accepted too),
// the application property IoThub-methodname (a non-empty string) and at
// least one data section; the payload is the data sections concatenated.
// Handle keeps the correlation id in its wire type, RequestID holds its
// string form. Errors wrap errMalformedRequest and never quote the payload.
func parseRequest(msg *goamqp.Message) (*transport.MethodRequest, error) {
	if msg == nil {
		return nil, fmt.Errorf("%w: no message", errMalformedRequest)
	}
	if msg.Properties == nil || msg.Properties.CorrelationID == nil {
		return nil, fmt.Errorf("%w: no correlation id", errMalformedRequest)
	}
	id, ok := correlationIDString(msg.Properties.CorrelationID)
	if !ok {
		return nil, fmt.Errorf("%w: correlation id of type %T is not usable", errMalformedRequest, msg.Properties.CorrelationID)
	}
	raw, ok := msg.ApplicationProperties[amqpwire.MethodNameProperty]
	if !ok {
		return nil, fmt.Errorf("%w: no %s property", errMalformedRequest, amqpwire.MethodNameProperty)
	}
	name, ok := raw.(string)
	if !ok || name == "" {
		return nil, fmt.Errorf("%w: %s is not a non-empty string", errMalformedRequest, amqpwire.MethodNameProperty)
	}
	if len(msg.Data) == 0 {
		return nil, fmt.Errorf("%w: no data section", errMalformedRequest)
	}
	req := &transport.MethodRequest{Name: name, RequestID: id, Handle: msg.Properties.CorrelationID}
	if n := dataLen(msg.Data); n > 0 {
		req.Payload = make([]byte, 0, n)
		for _, d := range msg.Data {
			req.Payload = append(req.Payload, d...)
		}
	}
	return req, nil
}

func dataLen(sections [][]byte) int {
	n := 0
	for _, d := range sections {
		n += len(d)
	}
	return n
}

// correlationIDString returns the string form of a correlation id of one
// of the four AMQP message-id types, or false for any other value and for
// empty ones.
func correlationIDString(v any) (string, bool) {
	switch id := v.(type) {
	case goamqp.UUID:
		return id.String(), true
	case string:
		return id, id != ""
	case uint64:
		return strconv.FormatUint(id, 10), true
	case []byte:
		return hex.EncodeToString(id), len(id) > 0
	}
	return "", false
}

// newResponse builds the response message to req: properties.correlation-id
// is the request's correlation id in its original type (from req.Handle, or
// parsed from RequestID when req comes without one), the application
// property IoThub-status is status as an int32, and the body is one data
// section holding payload (possibly empty).
func newResponse(req *transport.MethodRequest, status int, payload []byte) (*goamqp.Message, error) {
	if req == nil {
		return nil, errors.New("amqp: nil request")
	}
	if status < math.MinInt32 || status > math.MaxInt32 {
		return nil, fmt.Errorf("amqp: status %d does not fit in an int32", status)
	}
	id, err := responseCorrelationID(req)
	if err != nil {
		return nil, err
	}
	if payload == nil {
		payload = []byte{}
	}
	return &goamqp.Message{
		Properties:            &goamqp.MessageProperties{CorrelationID: id},
		ApplicationProperties: map[string]any{amqpwire.StatusProperty: int32(status)},
		Data:                  [][]byte{payload},
	}, nil
}

// responseCorrelationID returns the correlation id to echo for req.
func responseCorrelationID(req *transport.MethodRequest) (any, error) {
	if _, ok := correlationIDString(req.Handle); ok {
		return req.Handle, nil
	}
	if u, ok := parseUUID(req.RequestID); ok {
		return u, nil
	}
	if req.RequestID == "" {
		return nil, errors.New("amqp: request has no correlation id")
	}
	return req.RequestID, nil
}

// parseUUID parses the canonical 8-4-4-4-12 hexadecimal form of a uuid.
func parseUUID(s string) (goamqp.UUID, bool) {
	var u goamqp.UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	hexDigits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(u[:], []byte(hexDigits)); err != nil {
		return goamqp.UUID{}, false
	}
	return u, true
}
