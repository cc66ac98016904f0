package localhub

import (
	"encoding/json"
	"time"
)

// Job is a job as the jobs API answers it: IoT Hub's JobResponse
// (azure-iot-sdk-csharp Jobs/JobResponse.cs).
type Job struct {
	JobID                     string              `json:"jobId"`
	QueryCondition            string              `json:"queryCondition"`
	CreatedTime               string              `json:"createdTime"`
	StartTime                 string              `json:"startTime"`
	EndTime                   string              `json:"endTime,omitempty"`
	MaxExecutionTimeInSeconds int64               `json:"maxExecutionTimeInSeconds"`
	Type                      string              `json:"type"`
	Status                    string              `json:"status"`
	CloudToDeviceMethod       JobMethod           `json:"cloudToDeviceMethod"`
	FailureReason             string              `json:"failureReason,omitempty"`
	StatusMessage             string              `json:"statusMessage,omitempty"`
	DeviceJobStatistics       DeviceJobStatistics `json:"deviceJobStatistics"`
}

// DeviceJobStatistics counts a job's devices by how far they got
// (azure-iot-sdk-csharp DeviceJobStatistics).
type DeviceJobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// DeviceJob is a device's record in the devices.jobs collection
// (azure-iot-sdk-csharp Jobs/DeviceJob.cs; the query language guide's
// example of a device twin's jobs).
type DeviceJob struct {
	DeviceID               string           `json:"deviceId"`
	ModuleID               string           `json:"moduleId,omitempty"`
	JobID                  string           `json:"jobId"`
	JobType                string           `json:"jobType"`
	Status                 string           `json:"status"`
	StartTimeUTC           string           `json:"startTimeUtc"`
	EndTimeUTC             string           `json:"endTimeUtc"`
	CreatedDateTimeUTC     string           `json:"createdDateTimeUtc"`
	LastUpdatedDateTimeUTC string           `json:"lastUpdatedDateTimeUtc"`
	Outcome                DeviceJobOutcome `json:"outcome"`
	Error                  *DeviceJobError  `json:"error,omitempty"`
}

// DeviceJobOutcome holds the device's answer; deviceMethodResponse is null
// until the device answers.
type DeviceJobOutcome struct {
	DeviceMethodResponse *MethodResult `json:"deviceMethodResponse"`
}

// DeviceJobError is why a device failed (azure-iot-sdk-csharp
// DeviceJobError: code and description).
type DeviceJobError struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

// formatJobTime writes a time as the service writes DateTime values, in UTC
// with seven fractional digits, or dotnetZeroTime for a time that never was.
func formatJobTime(t time.Time) string {
	if t.IsZero() {
		return dotnetZeroTime
	}
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// response is the job's JobResponse. Called with the store's lock held.
func (j *job) response() Job {
	r := Job{
		JobID: j.ID, QueryCondition: j.QueryCondition, CreatedTime: formatJobTime(j.Created),
		StartTime: formatJobTime(j.Start), MaxExecutionTimeInSeconds: j.MaxExecution, Type: j.Type,
		Status: j.Status, CloudToDeviceMethod: j.Method, FailureReason: j.FailureReason, StatusMessage: j.StatusMessage,
	}
	if !j.End.IsZero() {
		r.EndTime = formatJobTime(j.End)
	}
	if r.CloudToDeviceMethod.Payload == nil {
		r.CloudToDeviceMethod.Payload = json.RawMessage("null")
	}
	s := &r.DeviceJobStatistics
	s.DeviceCount = len(j.Devices)
	for _, d := range j.Devices {
		switch d.Status {
		case deviceJobCompleted:
			s.SucceededCount++
		case deviceJobFailed, deviceJobCanceled:
			s.FailedCount++
		case deviceJobRunning:
			s.RunningCount++
		default:
			s.PendingCount++
		}
	}
	return r
}

// record is the device's record in the devices.jobs collection. Called
// with the store's lock held.
func (d *jobDevice) record(j *job) DeviceJob {
	r := DeviceJob{
		DeviceID: d.DeviceID, ModuleID: d.ModuleID, JobID: j.ID, JobType: j.Type, Status: d.Status,
		StartTimeUTC: formatJobTime(d.Start), EndTimeUTC: formatJobTime(d.End),
		CreatedDateTimeUTC: formatJobTime(d.Created), LastUpdatedDateTimeUTC: formatJobTime(d.Updated),
	}
	if d.Response != nil {
		resp := *d.Response
		r.Outcome.DeviceMethodResponse = &resp
	}
	if d.ErrorCode != "" {
		r.Error = &DeviceJobError{Code: d.ErrorCode, Description: d.ErrorDescription}
	}
	return r
}

// jobPayload is how a device's answer is kept in its job record: JSON as
// it is, "null" for no body, and a JSON string of the bytes for an answer
// that is not JSON, so that records always encode.
func jobPayload(payload []byte) json.RawMessage {
	switch {
	case len(payload) == 0:
		return json.RawMessage("null")
	case json.Valid(payload):
		return json.RawMessage(payload)
	}
	b, _ := json.Marshal(string(payload)) // a string always encodes
	return b
}
