package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/directmethods/iotdevice/internal/localhub"
)

// ModelID returns the IoT Plug and Play model ID the identity announced
// on its latest connection (ClientOptions.ModelID), as the twin's modelId
// shows it: empty when it announced none or never connected.
func (id *Identity) ModelID(ctx context.Context) (string, error) {
	twin, err := id.hub.hub.ServiceClient().GetTwin(ctx, id.deviceID, id.moduleID)
	if err != nil {
		return "", hubError("get twin", err)
	}
	return twin.ModelID, nil
}

// InvokeCommand calls a Plug and Play command through the Digital Twins
// API, as IoT Central and IoT Explorer do (POST
// /digitaltwins/{id}[/components/{component}]/commands/{command}); the
// device receives the method "{component}*{command}", or "{command}" for
// the default component (component ""). Only devices have digital twins
// here; a module's InvokeCommand fails. The result and errors are as
// Invoke's.
func (id *Identity) InvokeCommand(ctx context.Context, component, command string, payload json.RawMessage, opts *InvokeOptions) (*Result, error) {
	if id.moduleID != "" {
		return nil, fmt.Errorf("hubtest: invoke command %s: modules have no digital twin API; use Invoke with %q", command, component+"*"+command)
	}
	if err := checkPayload(payload); err != nil {
		return nil, fmt.Errorf("invoke command %s: %w", command, err)
	}
	var o localhub.CommandOptions
	o.ResponseTimeoutInSeconds, o.ConnectTimeoutInSeconds = opts.inSeconds()
	res, err := id.hub.hub.ServiceClient().InvokeCommand(ctx, id.deviceID, component, command, payload, o)
	if err != nil {
		return nil, hubError("invoke command "+command, err)
	}
	return &Result{Status: res.Status, Payload: res.Payload}, nil
}

// hubError converts the REST API's refusal to *Error and wraps anything
// else.
func hubError(what string, err error) error {
	var serviceErr *localhub.ServiceError
	if errors.As(err, &serviceErr) {
		return &Error{HTTPStatus: serviceErr.HTTPStatus, Code: serviceErr.ErrorCode, Name: serviceErr.Name, Message: serviceErr.Message}
	}
	return fmt.Errorf("hubtest: %s: %w", what, err)
}
