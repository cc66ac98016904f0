package localhub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// restError is an error answer of the REST API, as IoT Hub writes it.
type restError struct {
	code    int    // errorCode, such as 404103; the HTTP status is its first three digits unless status is set
	status  int    // the HTTP status, when it is not the code's first three digits
	name    string // the iothub-errorcode header, such as "DeviceNotOnline"
	message string
	info    map[string]string
	edge    bool // the IoT Edge hub's form: the status and {"message": …} only
}

// IoT Hub error codes the REST API answers with (azure-iot-sdk-csharp
// ErrorCode.cs and the IoT Hub "Understand and resolve errors" docs page).
func errArgumentInvalid(message string) *restError {
	// UNCONFIRMED: which code the hub uses for each kind of bad request;
	// 400004 ArgumentInvalid is the plausible one for all of them.
	return &restError{code: 400004, name: "ArgumentInvalid", message: message}
}

func errInvalidProtocolVersion(message string) *restError {
	return &restError{code: 400001, name: "InvalidProtocolVersion", message: message}
}

// errNoResource answers a path the service API does not serve. The public
// error code list has no code for an unknown resource, so the answer is HTTP
// 404 with 400003 InvalidOperation, "an operation that the hub recognizes as
// invalid" (azure-iot-sdk-csharp ErrorCode.cs).
func errNoResource(method, path string) *restError {
	return &restError{code: 400003, status: http.StatusNotFound, name: "InvalidOperation",
		message: fmt.Sprintf("No resource at %s %s: the service API serves /twins/{deviceId}[/modules/{moduleId}][/methods], /digitaltwins/{digitalTwinId}[/components/{componentPath}]/commands/{commandName}, /devices/query and /jobs/v2/{jobId}[/cancel].", clip(method), clip(path))}
}

// errMethodNotAllowed answers a method path asked with another HTTP method:
// HTTP 405 with 400003 InvalidOperation and IoT Hub's wording
// (azure-iot-sdk-csharp issue #2321).
func errMethodNotAllowed(method string) *restError {
	return &restError{code: 400003, status: http.StatusMethodNotAllowed, name: "InvalidOperation",
		message: fmt.Sprintf("The requested resource does not support http method '%s'.", clip(method))}
}

func errUnauthorized() *restError {
	return &restError{code: 401002, name: "IotHubUnauthorizedAccess", message: "Unauthorized"}
}

func errDeviceNotFound(deviceID string) *restError {
	return &restError{code: 404001, name: "DeviceNotFound", message: fmt.Sprintf("Device %s not registered", deviceID)}
}

func errModuleNotFound(deviceID, moduleID string) *restError {
	return &restError{code: 404010, name: "ModuleNotFound", message: fmt.Sprintf("Module %s of device %s not registered", moduleID, deviceID)}
}

func errDeviceNotOnline(timeout time.Duration) *restError {
	return &restError{code: 404103, name: "DeviceNotOnline", message: "Timed out waiting for device to connect.",
		info: map[string]string{"timeout": formatTimeSpan(timeout)}}
}

func errMessageTooLarge(message string) *restError {
	// UNCONFIRMED: 413001 MessageTooLarge for an oversized request.
	return &restError{code: 413001, name: "MessageTooLarge", message: message}
}

// errInvalidResponse answers a call whose device answer the hub could not
// accept (ErrInvalidResponse). IoT Hub documents no code for it; the call
// fails at once as a server-side error, 500001 ServerError.
func errInvalidResponse() *restError {
	return &restError{code: 500001, name: "ServerError", message: "The device's response is invalid."}
}

func errServiceUnavailable() *restError {
	return &restError{code: 503001, name: "ServiceUnavailable", message: "The hub is shutting down."}
}

func errGatewayTimeout(timeout time.Duration) *restError {
	return &restError{code: 504101, name: "GatewayTimeout", message: "Timed out waiting for the response from device.",
		info: map[string]string{"timeout": formatTimeSpan(timeout)}}
}

// httpStatus is status when set, else the error code's first three digits.
func (e *restError) httpStatus() int {
	if e.status != 0 {
		return e.status
	}
	return e.code / 1000
}

// errorBodyInner is the JSON object carried as a string in the body's Message.
type errorBodyInner struct {
	ErrorCode    int               `json:"errorCode"`
	TrackingID   string            `json:"trackingId"`
	Message      string            `json:"message"`
	Info         map[string]string `json:"info"`
	TimestampUTC string            `json:"timestampUtc"`
}

// errorBody is the outer JSON object of an error answer.
type errorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// write sends the error with its iothub-errorcode header and two-level body.
func (e *restError) write(w http.ResponseWriter) {
	if e.edge {
		writeEdgeError(w, e.status, e.message)
		return
	}
	info := e.info
	if info == nil {
		info = map[string]string{}
	}
	inner, _ := json.Marshal(errorBodyInner{ // cannot fail: strings and a string map
		ErrorCode:    e.code,
		TrackingID:   newTrackingID(),
		Message:      e.message,
		Info:         info,
		TimestampUTC: time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"),
	})
	body, _ := json.Marshal(errorBody{Message: string(inner)})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("iothub-errorcode", e.name)
	w.WriteHeader(e.httpStatus())
	_, _ = w.Write(body)
}

// newTrackingID returns a random id like the hub's tracking ids.
func newTrackingID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// formatTimeSpan writes a duration as .NET does, "hh:mm:ss".
func formatTimeSpan(d time.Duration) string {
	s := int(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}
