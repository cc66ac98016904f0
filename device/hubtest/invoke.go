package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
)

// ErrPayloadNotJSON is returned by Invoke for a payload that is not JSON:
// the service API takes only JSON payloads.
var ErrPayloadNotJSON = errors.New("hubtest: the payload is not JSON")

// InvokeOptions are a method call's timeouts, as a cloud application sets
// them. IoT Hub counts them in whole seconds; a fraction is rounded up.
type InvokeOptions struct {
	// ResponseTimeout is how long the hub waits for the device's answer
	// once the request is sent; IoT Hub takes 5 s to 300 s. Default 30 s.
	ResponseTimeout time.Duration
	// ConnectTimeout is how long the hub waits for the device to connect
	// and subscribe when it is offline; IoT Hub takes 0 s to 300 s.
	// Default 0: an offline device fails the call at once (404103).
	ConnectTimeout time.Duration
}

// Result is a device's answer: its status and JSON payload ("null" when it
// sent none).
type Result struct {
	Status  int
	Payload json.RawMessage
}

// Error is the hub's refusal of a call, with IoT Hub's error code, such as
// 404103 (device not online) or 504101 (no answer in time).
type Error struct {
	HTTPStatus int    // such as 404
	Code       int    // such as 404103
	Name       string // such as "DeviceNotOnline", from the iothub-errorcode header
	Message    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("hubtest: HTTP %d: %d %s: %s", e.HTTPStatus, e.Code, e.Name, e.Message)
}

// Invoke calls method on the identity through the hub's service REST API
// (POST /twins/{id}[/modules/{mid}]/methods), as a cloud application does,
// and returns the device's answer. A call the hub refuses or ends, such as
// one to an offline device or one the device leaves unanswered, returns an
// *Error. payload is the method's JSON payload; an empty one sends none.
// opts may be nil.
//
// As on IoT Hub, a call waits for an offline device only for
// InvokeOptions.ConnectTimeout, which is 0 by default: a call made just
// after starting a client's Run fails with 404103 (DeviceNotOnline) unless
// the test first waits for the client (WaitConnected) or gives the call a
// ConnectTimeout.
func (id *Identity) Invoke(ctx context.Context, method string, payload json.RawMessage, opts *InvokeOptions) (*Result, error) {
	if err := checkPayload(payload); err != nil {
		return nil, fmt.Errorf("invoke %s: %w", method, err)
	}
	call := localhub.MethodCall{MethodName: method, Payload: payload}
	call.ResponseTimeoutInSeconds, call.ConnectTimeoutInSeconds = opts.inSeconds()
	res, err := id.hub.hub.ServiceClient().Invoke(ctx, id.deviceID, id.moduleID, call)
	if err != nil {
		return nil, hubError("invoke "+method, err)
	}
	return &Result{Status: res.Status, Payload: res.Payload}, nil
}

// checkPayload refuses a payload the service API would: one that is not
// JSON (an empty one sends none).
func checkPayload(payload json.RawMessage) error {
	if len(payload) > 0 && !json.Valid(payload) {
		return ErrPayloadNotJSON
	}
	return nil
}

// inSeconds returns the response and connect timeouts in whole seconds,
// rounded up, as the service API takes them; a nil o gives zeros (the
// hub's defaults).
func (o *InvokeOptions) inSeconds() (response, connect int) {
	if o == nil {
		return 0, 0
	}
	return seconds(o.ResponseTimeout), seconds(o.ConnectTimeout)
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
