package provisioning

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/directmethods/iotdevice/internal/mqttsession"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Refusals, testable with errors.Is on the *Error Register returns.
var (
	// ErrUnauthorized: DPS refused the credential. It does not say why: a
	// wrong key or certificate, a registration it does not know, or a
	// disabled enrollment look alike.
	ErrUnauthorized = errors.New("provisioning: unauthorized")
	// ErrDisabled: the registration's status is "disabled".
	ErrDisabled = errors.New("provisioning: registration disabled")
	// ErrAssignmentFailed: DPS could not assign the device to a hub, for
	// example when a custom allocation failed.
	ErrAssignmentFailed = errors.New("provisioning: assignment failed")
)

// errMalformedAnswer reports an answer of DPS that is not what its
// protocol says; it is retried on a new connection.
var errMalformedAnswer = errors.New("provisioning: malformed answer")

// Error is a refusal by DPS: the status of its answer and the error it
// gave. Code, TrackingID and Message come from DPS's JSON error (or from
// the registration state's errorCode and errorMessage); they are empty
// when it gave none.
type Error struct {
	// Status is the status of DPS's answer: 401, 400, …; 200 for a
	// registration whose own status is "failed" or "disabled".
	Status int
	// RegistrationStatus is the registration's status when Status is 200:
	// "failed" or "disabled".
	RegistrationStatus string
	// Code is DPS's errorCode, such as 401002.
	Code int
	// TrackingID identifies the failure to Azure support.
	TrackingID string
	// Message is DPS's explanation.
	Message string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("provisioning: refused (status %d", e.Status)
	if e.RegistrationStatus != "" {
		s += ", registration " + e.RegistrationStatus
	}
	if e.Code != 0 {
		s += fmt.Sprintf(", errorCode %d", e.Code)
	}
	s += ")"
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.TrackingID != "" {
		s += " (trackingId " + e.TrackingID + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrUnauthorized) and the other refusals work.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == 401
	case ErrDisabled:
		return e.RegistrationStatus == "disabled"
	case ErrAssignmentFailed:
		return e.RegistrationStatus == "failed"
	}
	return false
}

// dpsError is the JSON error DPS answers with.
type dpsError struct {
	ErrorCode  json.Number `json:"errorCode"`
	TrackingID string      `json:"trackingId"`
	Message    string      `json:"message"`
}

// newError is the *Error of an answer with status and the JSON error
// body; a body that is not one still gives the status.
func newError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var d dpsError
	if json.Unmarshal(body, &d) == nil {
		e.TrackingID, e.Message = d.TrackingID, clip(d.Message)
		if n, err := d.ErrorCode.Int64(); err == nil {
			e.Code = int(n)
		}
	}
	return e
}

// clip bounds a message from DPS before it goes into an error.
func clip(s string) string {
	const maxMessage = 512
	if len(s) > maxMessage {
		return s[:maxMessage] + "…"
	}
	return s
}

// isFinal reports whether an error of an attempt ends Register: a refusal
// that retrying cannot change.
func isFinal(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status < 500 && e.Status != 429
	}
	return errors.Is(err, ErrInvalidConfig)
}

// connackError is the error of a refused CONNACK: codes 2, 4 and 5 refuse
// the credential (ErrUnauthorized, final); code 3 (server unavailable) is
// retried.
func connackError(refused *mqttsession.ConnackError) error {
	switch refused.Code {
	case packets.ErrRefusedIDRejected, packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
		return &Error{Status: 401, Message: refused.Error()}
	}
	return fmt.Errorf("provisioning: %w", refused)
}
