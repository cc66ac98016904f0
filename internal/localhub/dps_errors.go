package localhub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// dpsError is an error answer of the Device Provisioning Service, on its
// device API (HTTPS and MQTT) and its service API alike: an HTTP status
// and a JSON body
//
//	{"errorCode":401002,"trackingId":"…","message":"Unauthorized","timestampUtc":"…"}
//
// (a 401 to a registration, Azure/azure-iot-sdk-node issue #721 and
// Azure/azure-iot-sdk-c issue #2575; over MQTT the same body, with the
// status in the answer's topic, MicrosoftDocs/azure-docs issue #43157).
// The six-digit code starts with the HTTP status, as IoT Hub's do
// (Azure/azure-rest-api-specs issue #15694).
type dpsError struct {
	status  int
	code    int
	message string
}

// Errors of the Device Provisioning Service. The codes marked
// UNCONFIRMED follow the status-first scheme; no public source shows them.
func errDPSUnauthorized() *dpsError {
	return &dpsError{status: http.StatusUnauthorized, code: 401002, message: "Unauthorized"}
}

// errDPSAPIVersion: 400004 and its message, Azure/iotedge issue #4112.
func errDPSAPIVersion(version string) *dpsError {
	return &dpsError{status: http.StatusBadRequest, code: 400004, message: fmt.Sprintf("Unsupported API version %s.", clip(version))}
}

// errDPSBadRequest: UNCONFIRMED code.
func errDPSBadRequest(message string) *dpsError {
	return &dpsError{status: http.StatusBadRequest, code: 400000, message: message}
}

// errDPSNotFound: 404201 is what DPS answers for an enrollment or
// registration that does not exist (MicrosoftDocs/azure-docs issue
// #57082); the hub also uses it for an unknown operation (UNCONFIRMED).
func errDPSNotFound(message string) *dpsError {
	return &dpsError{status: http.StatusNotFound, code: 404201, message: message}
}

// errDPSMethodNotAllowed: UNCONFIRMED code.
func errDPSMethodNotAllowed(method string) *dpsError {
	return &dpsError{status: http.StatusMethodNotAllowed, code: 405000,
		message: fmt.Sprintf("The requested resource does not support http method '%s'.", clip(method))}
}

// errDPSPreconditionFailed: an If-Match etag that is not the resource's
// (RFC 7232); UNCONFIRMED code.
func errDPSPreconditionFailed() *dpsError {
	return &dpsError{status: http.StatusPreconditionFailed, code: 412002, message: "The etag in If-Match does not match the resource's."}
}

// errDPSThrottled: UNCONFIRMED code.
func errDPSThrottled() *dpsError {
	return &dpsError{status: http.StatusTooManyRequests, code: 429001, message: "Operations are being throttled. Retry after the time in retry-after."}
}

// errDPSTooLarge: UNCONFIRMED code.
func errDPSTooLarge() *dpsError {
	return &dpsError{status: http.StatusRequestEntityTooLarge, code: 413000, message: fmt.Sprintf("The request body is larger than %d bytes.", maxDPSBody)}
}

func (e *dpsError) Error() string { return fmt.Sprintf("dps: %d %d %s", e.status, e.code, e.message) }

// dpsErrorBody is the JSON of an error answer.
type dpsErrorBody struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	TimestampUTC string `json:"timestampUtc"`
}

// answer returns the error as a DPS answer, with a new tracking id.
func (e *dpsError) answer(now time.Time) dpsAnswer {
	id := newDPSTrackingID()
	body, _ := json.Marshal(dpsErrorBody{ // cannot fail: strings and an int
		ErrorCode: e.code, TrackingID: id, Message: e.message, TimestampUTC: formatDPSTime(now),
	})
	return dpsAnswer{status: e.status, body: body, trackingID: id}
}

// newDPSTrackingID returns a random id in the GUID form of DPS's tracking
// ids ("ada7d102-449e-4031-a1e7-e60ac75804ea").
func newDPSTrackingID() string { return newRequestID() }

// formatDPSTime writes a time as DPS does: UTC with seven fractional
// digits, "2021-11-05T13:05:11.0655047Z".
func formatDPSTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}
