package localhub

import (
	"net/http"
	"strconv"
)

// Error answers of the twin and query APIs. Codes
// and names are those of "Troubleshoot Azure IoT Hub error codes"
// (learn.microsoft.com, azure/iot-hub/troubleshoot-error-codes) and the IoT
// Hub REST API's "common error codes" page.

// errPreconditionFailed answers an If-Match that names another version:
// 412001 PreconditionFailed, "The etag in the request does not match the
// etag of the existing resource" (common error codes).
func errPreconditionFailed(message string) *restError {
	return &restError{code: 412001, name: "PreconditionFailed", message: message}
}

// errQuerySyntax answers a query that does not parse, with IoT Hub's
// 400004 ArgumentInvalid ("The body of the request is not valid; for
// example, it cannot be parsed", common error codes) and the position of
// the problem, line and column, in the message and in info.
func errQuerySyntax(e *QueryError) *restError {
	return &restError{code: 400004, name: "ArgumentInvalid", message: e.Error(),
		info: map[string]string{"line": strconv.Itoa(e.Line), "column": strconv.Itoa(e.Column)}}
}

// errMethodNotAllowedOn is errMethodNotAllowed with the Allow header set.
func errMethodNotAllowedOn(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	refuse(w, r, errMethodNotAllowed(r.Method))
}
