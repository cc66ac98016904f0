package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// MaxPayloadSize is the largest request or response payload the hub
// carries for a direct method: 128 KB.
const MaxPayloadSize = 128 * 1024

// MethodRequest is one invocation of a direct method.
type MethodRequest struct {
	// Name is the method name exactly as the hub sent it.
	Name string
	// RequestID is the hub's id for this invocation, useful in logs.
	RequestID string
	// Payload is the request's JSON payload; nil when the caller sent none.
	// The client has checked that it is valid JSON.
	Payload json.RawMessage
}

// Unmarshal decodes the payload into v. A missing payload or one that does
// not fit v yields a *MethodError with status 400, so a handler can return
// the error as it is and the caller learns what was wrong.
func (r *MethodRequest) Unmarshal(v any) error {
	if len(r.Payload) == 0 {
		return &MethodError{Status: 400, Message: "the method needs a payload"}
	}
	if err := json.Unmarshal(r.Payload, v); err != nil {
		return &MethodError{Status: 400, Message: "invalid payload: " + describeJSONError(err), Err: err}
	}
	return nil
}

// describeJSONError says what is wrong with a payload in JSON's terms:
// the caller wrote JSON, and Go's type names and struct tags mean nothing
// to it (nor should they reach it).
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		want := jsonKind(typeErr.Type)
		got := typeErr.Value
		if strings.HasPrefix(got, "number ") { // a number that does not fit, such as 1.5 for an integer
			want, got = "a whole number that fits", strings.TrimPrefix(got, "number ")
		} else {
			got = article(got)
		}
		if typeErr.Field == "" {
			return fmt.Sprintf("the payload must be %s, not %s", want, got)
		}
		return fmt.Sprintf("%q must be %s, not %s", typeErr.Field, want, got)
	}
	return "the payload is not valid JSON"
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a JSON value"
}

// article puts "a" or "an" before a JSON kind ("array", "object", ...).
func article(kind string) string {
	if kind != "" && strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// MethodResponse is a handler's answer. A nil *MethodResponse with a nil
// error answers 200 with a null payload.
type MethodResponse struct {
	// Status is the status reported to the caller; 0 means 200.
	Status int
	// Payload is the JSON body; nil or empty means null. It must be valid
	// JSON of at most MaxPayloadSize bytes, or the caller gets 500 instead.
	Payload json.RawMessage
}

// JSONResponse returns a response with status and v encoded as JSON.
func JSONResponse(status int, v any) (*MethodResponse, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("device: encode response: %w", err)
	}
	return &MethodResponse{Status: status, Payload: b}, nil
}

// MethodError is an error a handler returns to choose the status and body
// of its answer. Any other error answers 500.
type MethodError struct {
	// Status is the status reported to the caller.
	Status int
	// Message is sent as {"error": Message} unless Payload is set.
	Message string
	// Payload, when set, is the JSON body instead.
	Payload json.RawMessage
	// Err is the underlying cause, kept for errors.Is/As; it is not sent.
	Err error
}

// Errorf returns a *MethodError with status and a formatted message.
func Errorf(status int, format string, a ...any) *MethodError {
	return &MethodError{Status: status, Message: fmt.Sprintf(format, a...)}
}

func (e *MethodError) Error() string {
	return fmt.Sprintf("device: method error %d: %s", e.Status, e.Message)
}

func (e *MethodError) Unwrap() error { return e.Err }

// body returns the JSON body the error answers with.
func (e *MethodError) body() []byte {
	if len(e.Payload) > 0 {
		return e.Payload
	}
	return errorBody(e.Message)
}

// errorBody returns {"error": msg}.
func errorBody(msg string) []byte {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg}) // a struct of one string always encodes
	return b
}
