package hubtest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
)

// MethodJob is a job that calls a direct method on every device a query
// condition selects, as a cloud application schedules one with IoT Hub's
// jobs API (PUT /jobs/v2/{jobId}).
type MethodJob struct {
	// ID names the job: 1 to 64 US-ASCII letters, digits and '-', unique
	// among the hub's jobs.
	ID string
	// Condition selects the devices, as a WHERE clause of IoT Hub's query
	// language: "tags.floor = 3", "deviceId IN ['fan-1', 'fan-2']", or
	// "FROM devices.modules WHERE moduleId = 'fan'" for modules.
	Condition string
	// Method is the direct method to call, with its JSON Payload (empty:
	// none).
	Method  string
	Payload json.RawMessage
	// ResponseTimeout is how long each device has to answer, 5 s to 300 s.
	// Default 30 s.
	ResponseTimeout time.Duration
	// StartTime is when the job starts. Default: now.
	StartTime time.Time
	// MaxExecutionTime bounds the job: a device offline when its turn comes
	// is called as soon as it connects, until then. Whole seconds. Default
	// one hour.
	MaxExecutionTime time.Duration
}

// Job is a job as the hub reports it: IoT Hub's JobResponse.
type Job struct {
	ID string
	// Status is "queued", "scheduled", "running", "completed", "failed" or
	// "cancelled".
	Status        string
	FailureReason string // why a failed job failed
	StatusMessage string
	CreatedTime   time.Time
	StartTime     time.Time
	EndTime       time.Time // zero until the job ends
	// The job's devices: all of them, and how many succeeded (answered,
	// whatever their status), failed (including those a cancel stopped),
	// are being called, or wait for their turn or to connect.
	Devices, Succeeded, Failed, Running, Pending int
}

// DeviceJob is one device's record in a job, from the devices.jobs
// collection of IoT Hub's query language.
type DeviceJob struct {
	DeviceID, ModuleID string
	// Status is "pending", "running", "completed", "failed" or "canceled".
	Status    string
	StartTime time.Time // zero until the device is called
	EndTime   time.Time
	// Result is the device's answer; nil until it answers.
	Result *Result
	// ErrorCode and ErrorDescription say why the device failed, such as
	// DeviceNotOnline (it did not connect within the job's time) or
	// GatewayTimeout (it did not answer within the response timeout).
	ErrorCode, ErrorDescription string
}

// ScheduleMethodJob schedules job through the hub's jobs API and returns
// it as the hub accepted it (status "queued"). A refusal is an *Error, such
// as 409104 for an id in use or 429004 beyond the tier's active jobs.
func (h *Hub) ScheduleMethodJob(ctx context.Context, job MethodJob) (*Job, error) {
	if err := checkPayload(job.Payload); err != nil {
		return nil, fmt.Errorf("schedule job %s: %w", job.ID, err)
	}
	req := localhub.JobRequest{
		JobID: job.ID, Type: "scheduleDeviceMethod", QueryCondition: job.Condition,
		CloudToDeviceMethod:       &localhub.MethodCall{MethodName: job.Method, Payload: job.Payload, ResponseTimeoutInSeconds: seconds(job.ResponseTimeout)},
		MaxExecutionTimeInSeconds: int64(seconds(job.MaxExecutionTime)),
	}
	if !job.StartTime.IsZero() {
		req.StartTime = job.StartTime.UTC().Format(time.RFC3339Nano)
	}
	j, err := h.hub.ServiceClient().ScheduleJob(ctx, req)
	if err != nil {
		return nil, hubError("schedule job "+job.ID, err)
	}
	return jobOf(j), nil
}

// Job reads the job id (GET /jobs/v2/{id}); an unknown one is an *Error
// with code 404002.
func (h *Hub) Job(ctx context.Context, id string) (*Job, error) {
	j, err := h.hub.ServiceClient().GetJob(ctx, id)
	if err != nil {
		return nil, hubError("get job "+id, err)
	}
	return jobOf(j), nil
}

// CancelJob cancels the job id: the devices it has not called yet are not
// called. It returns the job, "cancelled"; a job that has ended is
// returned as it is.
func (h *Hub) CancelJob(ctx context.Context, id string) (*Job, error) {
	j, err := h.hub.ServiceClient().CancelJob(ctx, id)
	if err != nil {
		return nil, hubError("cancel job "+id, err)
	}
	return jobOf(j), nil
}

// WaitJob waits until the job id has ended (completed, failed or
// cancelled, with its calls finished), without polling, and returns it.
func (h *Hub) WaitJob(ctx context.Context, id string) (*Job, error) {
	if err := h.hub.WaitJob(ctx, id); err != nil {
		return nil, fmt.Errorf("hubtest: %w", err)
	}
	return h.Job(ctx, id)
}

// DeviceJobs returns the records of the job id's devices, sorted by
// device, read as a cloud application reads them: SELECT * FROM
// devices.jobs WHERE devices.jobs.jobId = '{id}'.
func (h *Hub) DeviceJobs(ctx context.Context, id string) ([]DeviceJob, error) {
	records, err := h.hub.ServiceClient().DeviceJobs(ctx, id)
	if err != nil {
		return nil, hubError("device jobs of "+id, err)
	}
	out := make([]DeviceJob, len(records))
	for i, r := range records {
		out[i] = DeviceJob{DeviceID: r.DeviceID, ModuleID: r.ModuleID, Status: r.Status,
			StartTime: parseTime(r.StartTimeUTC), EndTime: parseTime(r.EndTimeUTC)}
		if m := r.Outcome.DeviceMethodResponse; m != nil {
			out[i].Result = &Result{Status: m.Status, Payload: m.Payload}
		}
		if r.Error != nil {
			out[i].ErrorCode, out[i].ErrorDescription = r.Error.Code, r.Error.Description
		}
	}
	return out, nil
}

// Query runs a query of IoT Hub's query language through the hub's query
// API (POST /devices/query), every page of it, and returns the items: twins
// for SELECT * FROM devices [WHERE ...], device job records for SELECT *
// FROM devices.jobs [WHERE ...]. A query that does not parse is an *Error
// (400004) whose message gives the line and column.
func (h *Hub) Query(ctx context.Context, query string) ([]json.RawMessage, error) {
	items, err := h.hub.ServiceClient().QueryAll(ctx, query)
	if err != nil {
		return nil, hubError("query", err)
	}
	return items, nil
}

// jobOf converts the hub's JobResponse.
func jobOf(j *localhub.Job) *Job {
	s := j.DeviceJobStatistics
	return &Job{ID: j.JobID, Status: j.Status, FailureReason: j.FailureReason, StatusMessage: j.StatusMessage,
		CreatedTime: parseTime(j.CreatedTime), StartTime: parseTime(j.StartTime), EndTime: parseTime(j.EndTime),
		Devices: s.DeviceCount, Succeeded: s.SucceededCount, Failed: s.FailedCount, Running: s.RunningCount, Pending: s.PendingCount}
}

// parseTime reads a time the hub wrote; the zero time for none.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() == 1 {
		return time.Time{}
	}
	return t
}

// WaitCallsWaiting waits until at least n method calls wait for the
// identity to connect: calls of Invoke with a connect timeout, and the
// calls of jobs whose turn came while it was offline. Tests use it to
// connect a device only once a job waits for it.
func (id *Identity) WaitCallsWaiting(ctx context.Context, n int) error {
	if err := id.hub.hub.WaitCallsWaiting(ctx, id.name(), n); err != nil {
		return fmt.Errorf("hubtest: wait for calls to %s: %w", id.name(), err)
	}
	return nil
}
