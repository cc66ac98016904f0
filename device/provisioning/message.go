package provisioning

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// requestBody is the body of a registration request:
// {"registrationId": …, "payload": …}.
func (c *Client) requestBody() []byte {
	body, _ := json.Marshal(struct {
		RegistrationID string          `json:"registrationId"`
		Payload        json.RawMessage `json:"payload,omitempty"`
	}{c.registrationID, c.payload})
	return body
}

// registrationPayload merges the Plug and Play model ID into the custom
// payload: {"modelId": …} alone, or added to payload, which must then be a
// JSON object.
func registrationPayload(payload json.RawMessage, modelID string) (json.RawMessage, error) {
	if len(payload) > 0 && !json.Valid(payload) {
		return nil, fmt.Errorf("%w: Payload is not valid JSON", ErrInvalidConfig)
	}
	if modelID == "" {
		return bytes.Clone(payload), nil
	}
	fields := map[string]json.RawMessage{}
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &fields); err != nil {
			return nil, fmt.Errorf("%w: with ModelID, Payload must be a JSON object", ErrInvalidConfig)
		}
	}
	id, _ := json.Marshal(modelID)
	fields["modelId"] = id
	return json.Marshal(fields)
}

// operation is DPS's answer to a registration or operation-status
// request.
type operation struct {
	OperationID       string             `json:"operationId"`
	Status            string             `json:"status"` // unassigned, assigning, assigned, failed, disabled
	RegistrationState *registrationState `json:"registrationState"`
}

// registrationState is the device's registration as DPS reports it.
type registrationState struct {
	RegistrationID         string          `json:"registrationId"`
	CreatedDateTimeUTC     string          `json:"createdDateTimeUtc"`
	AssignedHub            string          `json:"assignedHub"`
	DeviceID               string          `json:"deviceId"`
	Status                 string          `json:"status"`
	Substatus              string          `json:"substatus"`
	LastUpdatedDateTimeUTC string          `json:"lastUpdatedDateTimeUtc"`
	ETag                   string          `json:"etag"`
	Payload                json.RawMessage `json:"payload"`
	ErrorCode              json.Number     `json:"errorCode"`
	ErrorMessage           string          `json:"errorMessage"`
}

// parseOperation reads an operation; a body that is not one is a
// malformed answer.
func parseOperation(body []byte) (*operation, error) {
	var op operation
	if err := json.Unmarshal(body, &op); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedAnswer, err)
	}
	if op.Status == "" {
		return nil, fmt.Errorf("%w: no status", errMalformedAnswer)
	}
	return &op, nil
}

// refusal is the *Error of an operation whose status is failed or
// disabled.
func (op *operation) refusal(status int) *Error {
	e := &Error{Status: status, RegistrationStatus: op.Status}
	if rs := op.RegistrationState; rs != nil {
		e.Message = clip(rs.ErrorMessage)
		if n, err := rs.ErrorCode.Int64(); err == nil {
			e.Code = int(n)
		}
	}
	return e
}

// result is the Result of an assigned registration.
func (rs *registrationState) result() *Result {
	return &Result{
		AssignedHub: rs.AssignedHub, DeviceID: rs.DeviceID, RegistrationID: rs.RegistrationID,
		Status: rs.Status, Substatus: rs.Substatus,
		CreatedDateTimeUTC: rs.CreatedDateTimeUTC, LastUpdatedDateTimeUTC: rs.LastUpdatedDateTimeUTC,
		ETag: rs.ETag, Payload: rs.Payload,
	}
}
