package localhub

import (
	"fmt"
	"net/http"
	"strconv"
)

// Error answers of the twin, query and jobs APIs and of throttling. Codes
// and names are those of "Troubleshoot Azure IoT Hub error codes"
// (learn.microsoft.com, azure/iot-hub/troubleshoot-error-codes) and the IoT
// Hub REST API's "common error codes" page.

// errPreconditionFailed answers an If-Match that names another version:
// 412001 PreconditionFailed, "The etag in the request does not match the
// etag of the existing resource" (common error codes).
func errPreconditionFailed(message string) *restError {
	return &restError{code: 412001, name: "PreconditionFailed", message: message}
}

// errJobNotFound answers an unknown job id: 404002 JobNotFound.
func errJobNotFound(jobID string) *restError {
	return &restError{code: 404002, name: "JobNotFound", message: fmt.Sprintf("Job %s not found", clip(jobID))}
}

// errJobAlreadyExists answers a job id in use: 409104 JobAlreadyExists.
func errJobAlreadyExists(jobID string) *restError {
	return &restError{code: 409104, name: "JobAlreadyExists", message: fmt.Sprintf("A job with id %s already exists; job ids stay in use for 30 days.", clip(jobID))}
}

// errQuerySyntax answers a query that does not parse, with IoT Hub's
// 400004 ArgumentInvalid ("The body of the request is not valid; for
// example, it cannot be parsed", common error codes) and the position of
// the problem, line and column, in the message and in info.
func errQuerySyntax(e *QueryError) *restError {
	return &restError{code: 400004, name: "ArgumentInvalid", message: e.Error(),
		info: map[string]string{"line": strconv.Itoa(e.Line), "column": strconv.Itoa(e.Column)}}
}

// errThrottling answers an operation refused by throttling: 429001
// ThrottlingException, which IoT Hub returns "only after the limit is
// violated for too long a period" (troubleshoot-error-codes), once traffic
// shaping's queue is full (iot-hub-devguide-quotas-throttling, "Traffic
// shaping").
func errThrottling(operation string) *restError {
	return &restError{code: 429001, name: "ThrottlingException",
		message: fmt.Sprintf("The %s throttle of this hub's tier is exceeded and its backlog is full; back off and retry.", operation)}
}

// errBacklogLimit answers an operation refused because too many requests
// already wait in the throttling backlog: 429002
// ThrottleBacklogLimitExceeded, "The number of requests that are in the
// backlog due to throttling has exceeded the backlog limit"
// (troubleshoot-error-codes).
func errBacklogLimit(operation string) *restError {
	return &restError{code: 429002, name: "ThrottleBacklogLimitExceeded",
		message: fmt.Sprintf("Too many %s requests wait in this hub's throttling backlog; back off and retry.", operation)}
}

// errMaxActiveJobs answers a job beyond the tier's concurrent jobs: 429004
// ThrottlingMaxActiveJobCountExceeded, "The maximum active job count has
// been exceeded" (troubleshoot-error-codes).
func errMaxActiveJobs(limit int) *restError {
	return &restError{code: 429004, name: "ThrottlingMaxActiveJobCountExceeded",
		message: fmt.Sprintf("The maximum active job count, %d for this hub's tier, has been exceeded.", limit)}
}

// errMethodNotAllowedOn is errMethodNotAllowed with the Allow header set.
func errMethodNotAllowedOn(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	refuse(w, r, errMethodNotAllowed(r.Method))
}
