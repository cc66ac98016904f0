package localhub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// methodJob is a job body for the tests.
func methodJob(id, condition string) JobRequest {
	return JobRequest{JobID: id, Type: jobTypeDeviceMethod, QueryCondition: condition,
		CloudToDeviceMethod: &MethodCall{MethodName: "echo", Payload: json.RawMessage(`{"n":1}`), ResponseTimeoutInSeconds: 10}}
}

// TestJobsREST runs a job on tagged test devices through the REST API,
// reads its records through devices.jobs and lists it.
func TestJobsREST(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"fan-1", "fan-2", "pump"}})
	svc := h.ServiceClient()
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	for _, id := range []string{"fan-1", "fan-2"} {
		connectDevice(t, h, id, deviceOptions{})
		if _, err := svc.UpdateTwinTags(ctx, id, "", map[string]any{"kind": "fan"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	queued, err := svc.ScheduleJob(ctx, methodJob("fans", "tags.kind = 'fan'"))
	if err != nil {
		t.Fatal(err)
	}
	if queued.Status != jobQueued || queued.Type != jobTypeDeviceMethod || queued.MaxExecutionTimeInSeconds != defaultMaxExecution {
		t.Errorf("PUT answer = %+v, want queued with the default maxExecutionTimeInSeconds", queued)
	}
	if err := h.WaitJob(ctx, "fans"); err != nil {
		t.Fatal(err)
	}
	done, err := svc.GetJob(ctx, "fans")
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != jobCompleted || done.DeviceJobStatistics != (DeviceJobStatistics{DeviceCount: 2, SucceededCount: 2}) {
		t.Errorf("job = %s %+v, want completed on both fans", done.Status, done.DeviceJobStatistics)
	}
	records, err := svc.DeviceJobs(ctx, "fans")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{`fan-1 completed {"n":1}`, `fan-2 completed {"n":1}`}, recordSummary(records)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if page, err := svc.Query(ctx, "SELECT * FROM devices.jobs", 0, ""); err != nil || page.ItemType != "deviceJob" {
		t.Errorf("devices.jobs query: item type %v, %v; want deviceJob", page, err)
	}

	// A second job, and the listing with its filters and pages.
	connectDevice(t, h, "pump", deviceOptions{})
	if _, err := svc.ScheduleJob(ctx, methodJob("pump", "deviceId = 'pump'")); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitJob(ctx, "pump"); err != nil {
		t.Fatal(err)
	}
	first, err := svc.QueryJobs(ctx, jobTypeDeviceMethod, "", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := svc.QueryJobs(ctx, jobTypeDeviceMethod, "", 1, first.Continuation)
	if err != nil {
		t.Fatal(err)
	}
	if first.ItemType != "jobResponse" || len(first.Items) != 1 || len(second.Items) != 1 || second.Continuation != "" ||
		!strings.Contains(string(first.Items[0]), `"jobId":"fans"`) || !strings.Contains(string(second.Items[0]), `"jobId":"pump"`) {
		t.Errorf("pages = %+v, %+v; want fans, then pump and no continuation", first, second)
	}
	for status, want := range map[string]int{"completed": 2, "running": 0, "canceled": 0} {
		page, err := svc.QueryJobs(ctx, "", status, 0, "")
		if err != nil || len(page.Items) != want {
			t.Errorf("jobStatus=%s: %d jobs, %v; want %d", status, len(page.Items), err, want)
		}
	}
	// Cancelling a job that has ended leaves it as it is.
	if after, err := svc.CancelJob(ctx, "fans"); err != nil || after.Status != jobCompleted || after.EndTime != done.EndTime {
		t.Errorf("cancel of a completed job = %+v, %v; want it unchanged", after, err)
	}
}

func TestJobsRESTRefusals(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}, Tier: Tier{"S1", 1}})
	svc := h.ServiceClient()
	token := svc.Token(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if _, err := svc.ScheduleJob(ctx, JobRequest{JobID: "later", Type: jobTypeDeviceMethod, QueryCondition: "deviceId = 'dev'",
		CloudToDeviceMethod: &MethodCall{MethodName: "m"}, StartTime: later}); err != nil {
		t.Fatal(err)
	}
	invalid := func(msg string) restAnswer {
		return restAnswer{400, "ArgumentInvalid", 400004, msg, map[string]string{}}
	}
	const body = `{"jobId":"%s","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"deviceId = 'dev'"}`
	put := func(id string) string { return strings.Replace(body, "%s", id, 1) }
	tests := []struct {
		name, method, path, body string
		want                     restAnswer
	}{
		{"duplicate id", http.MethodPut, "/jobs/v2/later", put("later"), restAnswer{409, "JobAlreadyExists", 409104, "A job with id later already exists; job ids stay in use for 30 days.", map[string]string{}}},
		{"too many active jobs", http.MethodPut, "/jobs/v2/second", put("second"), restAnswer{429, "ThrottlingMaxActiveJobCountExceeded", 429004, "The maximum active job count, 1 for this hub's tier, has been exceeded.", map[string]string{}}},
		{"unknown job", http.MethodGet, "/jobs/v2/nope", "", restAnswer{404, "JobNotFound", 404002, "Job nope not found", map[string]string{}}},
		{"cancel unknown job", http.MethodPost, "/jobs/v2/nope/cancel", "", restAnswer{404, "JobNotFound", 404002, "Job nope not found", map[string]string{}}},
		{"twin update job", http.MethodPut, "/jobs/v2/t", `{"jobId":"t","type":"scheduleUpdateTwin","updateTwin":{"tags":{}},"queryCondition":"deviceId = 'dev'"}`,
			invalid("scheduleUpdateTwin jobs are not supported by this local hub: they update desired properties, which it does not keep. It runs scheduleDeviceMethod jobs.")},
		{"unknown type", http.MethodPut, "/jobs/v2/t", `{"type":"export"}`, invalid(`The job type "export" is not one this hub runs; it runs scheduleDeviceMethod jobs.`)},
		{"no type", http.MethodPut, "/jobs/v2/t", `{}`, invalid("type is required; this hub runs scheduleDeviceMethod jobs.")},
		{"id too long", http.MethodPut, "/jobs/v2/" + strings.Repeat("j", 65), put(strings.Repeat("j", 65)), invalid("a job id has 1 to 64 characters.")},
		{"id with underscore", http.MethodPut, "/jobs/v2/a_b", put("a_b"), invalid("the job id has the character '_' at 1; job ids have only US-ASCII letters, digits and '-'.")},
		{"another id in the body", http.MethodPut, "/jobs/v2/a", put("b"), invalid(`The body's jobId "b" is not the job "a" of the path.`)},
		{"id not a string", http.MethodPut, "/jobs/v2/a", `{"jobId":{},"type":"scheduleDeviceMethod"}`, invalid("jobId must be a string.")},
		{"malformed JSON", http.MethodPut, "/jobs/v2/a", `{"jobId":`, invalid("The request body is not a valid job: unexpected end of JSON input")},
		{"no method", http.MethodPut, "/jobs/v2/a", `{"type":"scheduleDeviceMethod","queryCondition":"x = 1"}`, invalid("cloudToDeviceMethod is required for a scheduleDeviceMethod job.")},
		{"no method name", http.MethodPut, "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{}}`, invalid("cloudToDeviceMethod.methodName is required.")},
		{"bad method name", http.MethodPut, "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"a/b"}}`, invalid("cloudToDeviceMethod.methodName has the invalid character '/' at 1")},
		{"response timeout", http.MethodPut, "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":4}}`, invalid("responseTimeoutInSeconds must be between 5 and 300.")},
		{"connect timeout", http.MethodPut, "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","connectTimeoutInSeconds":301}}`, invalid("connectTimeoutInSeconds must be between 0 and 300.")},
		{"no condition", http.MethodPut, "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":" "}`, invalid(`queryCondition is required: the WHERE condition that selects the job's devices, such as "tags.floor = 3".`)},
		{"bad start time", http.MethodPut, "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"x = 1","startTime":"tomorrow"}`, invalid(`startTime "tomorrow" is not an ISO 8601 time such as 2025-01-02T15:04:05Z.`)},
		{"no execution time", http.MethodPut, "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"x = 1","maxExecutionTimeInSeconds":0}`, invalid("maxExecutionTimeInSeconds must be between 1 and 3153600000.")},
		{"DELETE", http.MethodDelete, "/jobs/v2/later", "", restAnswer{405, "InvalidOperation", 400003, "The requested resource does not support http method 'DELETE'.", map[string]string{}}},
		{"GET cancel", http.MethodGet, "/jobs/v2/later/cancel", "", restAnswer{405, "InvalidOperation", 400003, "The requested resource does not support http method 'GET'.", map[string]string{}}},
		{"bad status filter", http.MethodGet, "/jobs/v2/query?jobStatus=finished", "", invalid(`jobStatus "finished" is not one of queued, scheduled, running, completed, failed, cancelled.`)},
		{"bad type filter", http.MethodGet, "/jobs/v2/query?jobType=export", "", invalid(`jobType "export" is not scheduleDeviceMethod or scheduleUpdateTwin.`)},
		{"import export jobs", http.MethodGet, "/jobs/v2/a/b", "", restAnswer{404, "InvalidOperation", 400003, "", map[string]string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if strings.Contains(path, "?") {
				path += "&api-version=2021-04-12"
			} else {
				path += "?api-version=2021-04-12"
			}
			got, _, _ := requestRaw(t, h, tt.method, path, token, tt.body)
			if tt.want.Message == "" {
				got.Message = ""
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
	// Once the active job is cancelled, another may be scheduled.
	if j, err := svc.CancelJob(ctx, "later"); err != nil || j.Status != jobCancelled {
		t.Fatalf("cancel = %+v, %v", j, err)
	}
	if err := h.WaitJob(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ScheduleJob(ctx, methodJob("second", "deviceId = 'dev'")); err != nil {
		t.Errorf("a job after the cancel: %v", err)
	}
	var se *ServiceError
	if err := h.WaitJob(ctx, "nope"); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("WaitJob(nope) = %v, want ErrUnknownJob", err)
	}
	if _, err := svc.GetJob(ctx, "nope"); !errors.As(err, &se) || se.ErrorCode != 404002 {
		t.Errorf("GetJob(nope) = %v, want 404002", err)
	}
}

// TestJobsSurviveRestart schedules a job whose device is offline, restarts
// the hub from its directory, and connects the device: the job resumes and
// reaches it. A job scheduled for later keeps its schedule.
func TestJobsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, Options{Dir: dir, Devices: []string{"dev"}})
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
	defer cancel()
	if _, err := h.ServiceClient().ScheduleJob(ctx, methodJob("resume", "deviceId = 'dev'")); err != nil {
		t.Fatal(err)
	}
	later := methodJob("later", "deviceId = 'dev'")
	later.StartTime = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if _, err := h.ServiceClient().ScheduleJob(ctx, later); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitCallsWaiting(ctx, "dev", 1); err != nil {
		t.Fatal(err)
	}
	h.Close()

	h2 := startHub(t, Options{Dir: dir})
	if err := h2.WaitCallsWaiting(ctx, "dev", 1); err != nil {
		t.Fatal(err)
	}
	connectDevice(t, h2, "dev", deviceOptions{})
	if err := h2.WaitJob(ctx, "resume"); err != nil {
		t.Fatal(err)
	}
	records, err := h2.ServiceClient().DeviceJobs(ctx, "resume")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{`dev completed {"n":1}`}, recordSummary(records)); diff != "" {
		t.Errorf("records after the restart (-want +got):\n%s", diff)
	}
	if j, err := h2.ServiceClient().GetJob(ctx, "later"); err != nil || j.Status != jobScheduled || j.StartTime != formatJobTime(mustParseTime(t, later.StartTime)) {
		t.Errorf("the later job after the restart = %+v, %v; want it scheduled for its time", j, err)
	}
}

func mustParseTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func FuzzDecodeJobBody(f *testing.F) {
	for _, seed := range []string{
		`{"jobId":"j","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","payload":{"a":1},"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":5},"queryCondition":"tags.floor = 3","startTime":"2030-01-02T03:04:05.1234567Z","maxExecutionTimeInSeconds":3600}`,
		`{"jobId":7,"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","payload":null},"queryCondition":"x","startTime":null}`,
		`{"type":"scheduleUpdateTwin","updateTwin":{}}`,
		`{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"x","startTime":"2030-01-02T03:04:05","maxExecutionTimeInSeconds":-1}`,
		`[]`, `{"jobId":"j"`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		j, rerr := decodeJobBody(body, "j", now)
		if rerr != nil {
			if rerr.httpStatus() != 400 && rerr.httpStatus() != 413 {
				t.Fatalf("refusal %d, want 400 or 413", rerr.code)
			}
			return
		}
		if j.ID != "j" || j.Status != jobQueued || j.MaxExecution < 1 || j.Method.MethodName == "" || j.QueryCondition == "" {
			t.Fatalf("accepted an incomplete job: %+v", j)
		}
		if _, err := json.Marshal(j.response()); err != nil {
			t.Fatalf("the job's answer does not encode: %v", err)
		}
	})
}
