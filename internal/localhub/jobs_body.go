package localhub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The body of PUT /jobs/v2/{jobId}, as the official service SDKs send it
// (azure-iot-sdk-node service/src/job_client.ts scheduleDeviceMethod:
// jobId, type, cloudToDeviceMethod, queryCondition, startTime,
// maxExecutionTimeInSeconds; startTime is null when the caller gives none).

// Limits of a job.
const (
	// maxJobIDLength and the characters allowed: "The jobId field must be
	// 64 characters or less and can only contain US-ASCII letters,
	// numbers, and the dash (-) character" (iot-hub-devguide-jobs).
	maxJobIDLength = 64
	// defaultMaxExecution is a job's maximum execution time when the body
	// gives none; IoT Hub documents no default (UNCONFIRMED). One hour is
	// the Azure CLI's default for az iot hub job create --ttl.
	defaultMaxExecution = 3600
	// maxMaxExecution bounds maxExecutionTimeInSeconds to what the hub's
	// clock arithmetic holds: 100 years.
	maxMaxExecution int64 = 100 * 365 * 24 * 3600
)

// jobBody is the JSON body of PUT /jobs/v2/{jobId}.
type jobBody struct {
	JobID                     json.RawMessage `json:"jobId"`
	Type                      *string         `json:"type"`
	CloudToDeviceMethod       *methodBody     `json:"cloudToDeviceMethod"`
	QueryCondition            *string         `json:"queryCondition"`
	StartTime                 *string         `json:"startTime"`
	MaxExecutionTimeInSeconds *int64          `json:"maxExecutionTimeInSeconds"`
}

// methodBody is a job's cloudToDeviceMethod.
type methodBody struct {
	MethodName               *string         `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
}

// validateJobID checks a job id against IoT Hub's rule.
func validateJobID(id string) error {
	if id == "" || len(id) > maxJobIDLength {
		return fmt.Errorf("a job id has 1 to %d characters", maxJobIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("the job id has the character %q at %d; job ids have only US-ASCII letters, digits and '-'", c, i)
		}
	}
	return nil
}

// decodeJobBody parses and validates the body of PUT /jobs/v2/{pathID}
// into a new job created at now. The query condition is kept as written:
// like IoT Hub, the hub parses it when the job starts, and a condition
// that does not parse fails the job.
func decodeJobBody(body []byte, pathID string, now time.Time) (*job, *restError) {
	if err := validateJobID(pathID); err != nil {
		return nil, errArgumentInvalid(err.Error() + ".")
	}
	var b jobBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, errArgumentInvalid("The request body is not a valid job: " + clip(err.Error()))
	}
	if id, ok := bodyJobID(b.JobID); !ok {
		return nil, errArgumentInvalid("jobId must be a string.")
	} else if id != "" && id != pathID {
		return nil, errArgumentInvalid(fmt.Sprintf("The body's jobId %q is not the job %q of the path.", clip(id), pathID))
	}
	if b.Type == nil {
		return nil, errArgumentInvalid("type is required; this hub runs scheduleDeviceMethod jobs.")
	}
	switch *b.Type {
	case jobTypeDeviceMethod:
	case "scheduleUpdateTwin":
		return nil, errArgumentInvalid("scheduleUpdateTwin jobs are not supported by this local hub: they update desired properties, which it does not keep. It runs scheduleDeviceMethod jobs.")
	default:
		return nil, errArgumentInvalid(fmt.Sprintf("The job type %q is not one this hub runs; it runs scheduleDeviceMethod jobs.", clip(*b.Type)))
	}
	m, rerr := decodeJobMethod(b.CloudToDeviceMethod)
	if rerr != nil {
		return nil, rerr
	}
	if b.QueryCondition == nil || strings.TrimSpace(*b.QueryCondition) == "" {
		return nil, errArgumentInvalid("queryCondition is required: the WHERE condition that selects the job's devices, such as \"tags.floor = 3\".")
	}
	j := &job{ID: pathID, Type: jobTypeDeviceMethod, QueryCondition: *b.QueryCondition, Method: m,
		Created: now, Start: now, MaxExecution: defaultMaxExecution, Status: jobQueued}
	if b.StartTime != nil && *b.StartTime != "" {
		start, err := parseJobTime(*b.StartTime)
		if err != nil {
			return nil, errArgumentInvalid(fmt.Sprintf("startTime %q is not an ISO 8601 time such as 2025-01-02T15:04:05Z.", clip(*b.StartTime)))
		}
		j.Start = start
	}
	if t := b.MaxExecutionTimeInSeconds; t != nil {
		if *t < 1 || *t > maxMaxExecution {
			return nil, errArgumentInvalid(fmt.Sprintf("maxExecutionTimeInSeconds must be between 1 and %d.", maxMaxExecution))
		}
		j.MaxExecution = *t
	}
	return j, nil
}

// bodyJobID reads the body's jobId: a string, or a number (the Node SDK
// takes string | number); ok is false for any other JSON type.
func bodyJobID(raw json.RawMessage) (id string, ok bool) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", true
	}
	if json.Unmarshal(raw, &id) == nil {
		return id, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

// decodeJobMethod validates a job's cloudToDeviceMethod with the rules of
// a direct method call (rest_request.go).
func decodeJobMethod(m *methodBody) (JobMethod, *restError) {
	if m == nil {
		return JobMethod{}, errArgumentInvalid("cloudToDeviceMethod is required for a scheduleDeviceMethod job.")
	}
	if m.MethodName == nil {
		return JobMethod{}, errArgumentInvalid("cloudToDeviceMethod.methodName is required.")
	}
	if err := validateMethodName(*m.MethodName); err != nil {
		return JobMethod{}, errArgumentInvalid("cloudToDeviceMethod." + err.Error())
	}
	if len(m.Payload) > maxMethodPayload {
		return JobMethod{}, errMessageTooLarge(fmt.Sprintf("The payload is %d bytes, more than the %d allowed.", len(m.Payload), maxMethodPayload))
	}
	out := JobMethod{MethodName: *m.MethodName, Payload: m.Payload, ResponseTimeoutInSeconds: int(defaultResponseTimeout / time.Second)}
	if bytes.Equal(out.Payload, []byte("null")) {
		out.Payload = nil
	}
	if t := m.ResponseTimeoutInSeconds; t != nil {
		if *t < minResponseTimeout || *t > maxResponseTimeout {
			return JobMethod{}, errArgumentInvalid(fmt.Sprintf("responseTimeoutInSeconds must be between %d and %d.", minResponseTimeout, maxResponseTimeout))
		}
		out.ResponseTimeoutInSeconds = *t
	}
	if t := m.ConnectTimeoutInSeconds; t != nil {
		if *t < 0 || *t > maxConnectTimeout {
			return JobMethod{}, errArgumentInvalid(fmt.Sprintf("connectTimeoutInSeconds must be between 0 and %d.", maxConnectTimeout))
		}
		out.ConnectTimeoutInSeconds = *t
	}
	return out, nil
}

// parseJobTime reads an ISO 8601 time: RFC 3339 with or without fraction,
// or .NET's form without a zone, taken as UTC.
func parseJobTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.9999999", s, time.UTC)
	if err != nil {
		return time.Time{}, err
	}
	return t, nil
}
