package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/google/go-cmp/cmp"
)

// Jobs (issue 22): direct methods scheduled on the devices a query over
// their twin tags selects, reaching devices that connect late, cancelled,
// refused as IoT Hub refuses them, throttled as a tier throttles them, and
// kept across a restart. Devices are this SDK's client on every transport.

// echoJob is a job calling echo on the devices condition selects.
func echoJob(id, condition string, maxSeconds int64) localhub.JobRequest {
	return localhub.JobRequest{JobID: id, Type: "scheduleDeviceMethod", QueryCondition: condition, MaxExecutionTimeInSeconds: maxSeconds,
		CloudToDeviceMethod: &localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`{"job":"` + id + `"}`), ResponseTimeoutInSeconds: 10}}
}

// jobRecords waits for the job to end and returns "device status" for each
// of its devices, with the error code of a failed one.
func jobRecords(t *testing.T, hub *localhub.Hub, ctx context.Context, id string) (*localhub.Job, []string) {
	t.Helper()
	if err := hub.WaitJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	job, err := hub.ServiceClient().GetJob(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	records, err := hub.ServiceClient().DeviceJobs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range records {
		s := r.DeviceID + " " + r.Status
		if m := r.Outcome.DeviceMethodResponse; m != nil {
			s += fmt.Sprintf(" %d %s", m.Status, compactJSON(m.Payload))
		}
		if r.Error != nil {
			s += " " + r.Error.Code
		}
		out = append(out, s)
	}
	return job, out
}

// TestJobSelectsByTag runs one job on a device of every transport, selected
// by a tag that a fifth device does not have.
func TestJobSelectsByTag(t *testing.T) {
	var ids []string
	for _, tr := range transports {
		ids = append(ids, "fan-"+tr)
	}
	hub := startHub(t, append(ids, "pump")...)
	ctx := ctxTimeout(t, 60*time.Second)
	svc := hub.ServiceClient()
	for i, tr := range transports {
		runDevice(t, hub, ids[i], tr, echoMux(), nil)
		if _, err := svc.UpdateTwinTags(ctx, ids[i], "", map[string]any{"kind": "fan", "site": map[string]any{"floor": 3}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	runDevice(t, hub, "pump", "mqtt", echoMux(), nil)
	for _, id := range append(ids, "pump") {
		waitSubscribed(t, hub, id)
	}
	if _, err := svc.ScheduleJob(ctx, echoJob("fans", "tags.kind = 'fan' AND tags.site.floor = 3", 60)); err != nil {
		t.Fatal(err)
	}
	job, records := jobRecords(t, hub, ctx, "fans")
	var want []string
	for _, id := range slices.Sorted(slices.Values(ids)) {
		want = append(want, id+` completed 200 {"job":"fans"}`)
	}
	if diff := cmp.Diff(want, records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if job.Status != "completed" || job.DeviceJobStatistics != (localhub.DeviceJobStatistics{DeviceCount: 4, SucceededCount: 4}) {
		t.Errorf("job = %s %+v, want completed on the 4 fans", job.Status, job.DeviceJobStatistics)
	}
}

// TestJobReachesOfflineDevices: a device offline when the job starts that
// comes online within maxExecutionTimeInSeconds is called; one that does
// not come online fails with DeviceNotOnline when the job's time is up.
func TestJobReachesOfflineDevices(t *testing.T) {
	for _, tr := range []string{"mqtt", "amqp"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "late", "never")
			ctx := ctxTimeout(t, 60*time.Second)
			svc := hub.ServiceClient()
			if _, err := svc.ScheduleJob(ctx, echoJob("late", "deviceId = 'late'", 300)); err != nil {
				t.Fatal(err)
			}
			if err := hub.WaitCallsWaiting(ctx, "late", 1); err != nil {
				t.Fatal(err)
			}
			runDevice(t, hub, "late", tr, echoMux(), nil)
			job, records := jobRecords(t, hub, ctx, "late")
			if diff := cmp.Diff([]string{`late completed 200 {"job":"late"}`}, records); diff != "" || job.Status != "completed" {
				t.Errorf("job %s; records (-want +got):\n%s", job.Status, diff)
			}

			// The one window this test cannot avoid: a job of one second.
			start := time.Now()
			if _, err := svc.ScheduleJob(ctx, echoJob("never", "deviceId = 'never'", 1)); err != nil {
				t.Fatal(err)
			}
			job, records = jobRecords(t, hub, ctx, "never")
			if diff := cmp.Diff([]string{"never failed DeviceNotOnline"}, records); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if job.Status != "completed" || job.DeviceJobStatistics.FailedCount != 1 || time.Since(start) < time.Second {
				t.Errorf("job = %s %+v after %v, want completed with 1 failed after its second", job.Status, job.DeviceJobStatistics, time.Since(start))
			}
		})
	}
}

// TestJobCancel cancels a job while one device runs its method and another
// is offline: the offline one is never called, the running one finishes.
func TestJobCancel(t *testing.T) {
	hub := startHub(t, "busy", "away")
	ctx := ctxTimeout(t, 60*time.Second)
	svc := hub.ServiceClient()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	mux := device.NewMethodMux()
	mux.HandleFunc("echo", func(ctx context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
		once.Do(func() { close(entered) })
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &device.MethodResponse{Status: 200, Payload: r.Payload}, nil
	})
	runDevice(t, hub, "busy", "amqp", mux, nil)
	waitSubscribed(t, hub, "busy")
	if _, err := svc.ScheduleJob(ctx, echoJob("stop", "deviceId IN ['busy', 'away']", 300)); err != nil {
		t.Fatal(err)
	}
	if err := hub.WaitCallsWaiting(ctx, "away", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the busy device's handler never ran")
	}
	cancelled, err := svc.CancelJob(ctx, "stop")
	if err != nil || cancelled.Status != "cancelled" {
		t.Fatalf("CancelJob = %+v, %v; want cancelled", cancelled, err)
	}
	close(release)
	job, records := jobRecords(t, hub, ctx, "stop")
	if diff := cmp.Diff([]string{"away canceled", `busy completed 200 {"job":"stop"}`}, records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if job.Status != "cancelled" || job.DeviceJobStatistics != (localhub.DeviceJobStatistics{DeviceCount: 2, SucceededCount: 1, FailedCount: 1}) {
		t.Errorf("job = %s %+v", job.Status, job.DeviceJobStatistics)
	}
}

// TestJobAndTwinRefusals checks the service API's refusals with IoT Hub's
// codes.
func TestJobAndTwinRefusals(t *testing.T) {
	hub, err := localhub.Start(t.Context(), localhub.Options{Devices: []string{"dev"}, Logger: testLogger(t), Tier: localhub.Tier{SKU: "S1", Units: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	ctx := ctxTimeout(t, 30*time.Second)
	svc := hub.ServiceClient()
	later := echoJob("later", "deviceId = 'dev'", 60)
	later.StartTime = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if _, err := svc.ScheduleJob(ctx, later); err != nil {
		t.Fatal(err)
	}
	twin, err := svc.GetTwin(ctx, "dev", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UpdateTwinTags(ctx, "dev", "", map[string]any{"a": 1}, twin.ETag); err != nil {
		t.Fatal(err)
	}
	twinJob := echoJob("twin", "deviceId = 'dev'", 60)
	twinJob.Type, twinJob.CloudToDeviceMethod = "scheduleUpdateTwin", nil
	tests := []struct {
		name string
		call func() error
		want localhub.ServiceError
	}{
		{"duplicate job id", func() error { _, err := svc.ScheduleJob(ctx, later); return err }, localhub.ServiceError{HTTPStatus: 409, ErrorCode: 409104, Name: "JobAlreadyExists"}},
		{"second active job on S1", func() error { _, err := svc.ScheduleJob(ctx, echoJob("now", "deviceId = 'dev'", 60)); return err }, localhub.ServiceError{HTTPStatus: 429, ErrorCode: 429004, Name: "ThrottlingMaxActiveJobCountExceeded"}},
		{"unknown job", func() error { _, err := svc.GetJob(ctx, "nope"); return err }, localhub.ServiceError{HTTPStatus: 404, ErrorCode: 404002, Name: "JobNotFound"}},
		{"cancel unknown job", func() error { _, err := svc.CancelJob(ctx, "nope"); return err }, localhub.ServiceError{HTTPStatus: 404, ErrorCode: 404002, Name: "JobNotFound"}},
		{"twin update job", func() error { _, err := svc.ScheduleJob(ctx, twinJob); return err }, localhub.ServiceError{HTTPStatus: 400, ErrorCode: 400004, Name: "ArgumentInvalid"}},
		{"stale etag", func() error {
			_, err := svc.UpdateTwinTags(ctx, "dev", "", map[string]any{"a": 2}, twin.ETag)
			return err
		}, localhub.ServiceError{HTTPStatus: 412, ErrorCode: 412001, Name: "PreconditionFailed"}},
		{"query that does not parse", func() error { _, err := svc.Query(ctx, "SELECT * FROM devices WHERE tags.a IN [1,", 0, ""); return err },
			localhub.ServiceError{HTTPStatus: 400, ErrorCode: 400004, Name: "ArgumentInvalid", Message: "Line 1:42 expected a value in the list, found the end of the query"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var se *localhub.ServiceError
			if err := tt.call(); !errors.As(err, &se) {
				t.Fatalf("error = %v, want a *ServiceError", err)
			}
			if tt.want.Message == "" {
				se.Message = ""
			}
			if diff := cmp.Diff(&tt.want, se); diff != "" {
				t.Errorf("refusal (-want +got):\n%s", diff)
			}
		})
	}
}

// TestThrottling runs an S1 hub: direct methods beyond its budget are
// shaped (they wait), and refused with 429001 once the backlog is full;
// a job's device operations are paced at 10 a second.
func TestThrottling(t *testing.T) {
	t.Run("direct methods", func(t *testing.T) {
		hub, err := localhub.Start(t.Context(), localhub.Options{Devices: []string{"dev"}, Logger: testLogger(t), Tier: localhub.Tier{SKU: "S1", Units: 1}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hub.Close() })
		mux := device.NewMethodMux()
		mux.HandleFunc("big", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
			return &device.MethodResponse{Status: 200}, nil
		})
		runDevice(t, hub, "dev", "mqtt", mux, nil)
		waitSubscribed(t, hub, "dev")
		// 128 KB calls count 32 meters of 4 KB each: S1's minute of 160
		// KB/s holds 75 of them, its backlog 75 more; 170 overflow it. The
		// minute's 75 are answered, the overflow is refused with 429001,
		// and calls still wait in the backlog then. (TestShaper shows the
		// waiting itself on a fake clock.)
		payload := json.RawMessage(`"` + strings.Repeat("x", 128*1024-2) + `"`)
		const calls, budget = 170, 75
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		type outcome struct{ ok, refused bool }
		results := make(chan outcome, calls)
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				_, err := hub.ServiceClient().Invoke(ctx, "dev", "", localhub.MethodCall{MethodName: "big", Payload: payload})
				var se *localhub.ServiceError
				refused := errors.As(err, &se) && se.HTTPStatus == 429 && se.ErrorCode == 429001 && se.Name == "ThrottlingException"
				results <- outcome{ok: err == nil, refused: refused}
			})
		}
		var ok, refused, other int
		for ok+refused+other < calls && (refused == 0 || ok < budget) {
			select {
			case r := <-results:
				switch {
				case r.ok:
					ok++
				case r.refused:
					refused++
				default:
					other++
				}
			case <-ctx.Done():
				t.Fatalf("after %d answered and %d refused: %v", ok, refused, ctx.Err())
			}
		}
		waiting := calls - ok - refused - other
		cancel() // ends the calls still waiting in the backlog
		wg.Wait()
		if refused == 0 || ok < budget || other > 0 || waiting == 0 {
			t.Errorf("%d answered, %d refused with 429001, %d failed otherwise, %d waiting; want the %d of the budget answered, some refused while others wait", ok, refused, other, waiting, budget)
		}
		t.Logf("figure: S1, 170 direct methods of 128 KB at once: %d answered (the minute's budget holds 75), %d refused with 429001, %d waiting in the backlog", ok, refused, waiting)
	})

	t.Run("job pacing", func(t *testing.T) {
		var ids []string
		for i := range 11 {
			ids = append(ids, fmt.Sprintf("paced-%02d", i))
		}
		hub, err := localhub.Start(t.Context(), localhub.Options{Devices: ids, Logger: testLogger(t), Tier: localhub.Tier{SKU: "S1", Units: 1}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hub.Close() })
		for _, id := range ids {
			runDevice(t, hub, id, "mqtt", echoMux(), nil)
		}
		for _, id := range ids {
			waitSubscribed(t, hub, id)
		}
		ctx := ctxTimeout(t, 60*time.Second)
		if _, err := hub.ServiceClient().ScheduleJob(ctx, echoJob("paced", "deviceId >= 'paced-'", 60)); err != nil {
			t.Fatal(err)
		}
		_, _ = jobRecords(t, hub, ctx, "paced")
		records, err := hub.ServiceClient().DeviceJobs(ctx, "paced")
		if err != nil || len(records) != 11 {
			t.Fatalf("records: %d, %v", len(records), err)
		}
		first, _ := time.Parse(time.RFC3339Nano, records[0].StartTimeUTC)
		last, _ := time.Parse(time.RFC3339Nano, records[10].StartTimeUTC)
		// Eleven turns at 10 a second take at least a second; a busy
		// machine can only make them slower.
		if gap := last.Sub(first); gap < time.Second-10*time.Millisecond {
			t.Errorf("first to eleventh call: %v, want at least 1 s at S1's 10 job device operations a second", gap)
		}
	})
}

// TestJobsSurviveRestart: tags and a job whose device is offline outlive a
// restart of the hub from its directory; the device connects to the new
// hub and the job reaches it.
func TestJobsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	opts := localhub.Options{Dir: dir, Devices: []string{"dev"}, Logger: testLogger(t)}
	hub, err := localhub.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	ctx := ctxTimeout(t, 60*time.Second)
	if _, err := hub.ServiceClient().UpdateTwinTags(ctx, "dev", "", map[string]any{"ring": "canary"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.ServiceClient().ScheduleJob(ctx, echoJob("rollout", "tags.ring = 'canary'", 300)); err != nil {
		t.Fatal(err)
	}
	if err := hub.WaitCallsWaiting(ctx, "dev", 1); err != nil {
		t.Fatal(err)
	}
	hub.Close()

	next, err := localhub.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.Close() })
	runDevice(t, next, "dev", "amqp-ws", echoMux(), nil)
	job, records := jobRecords(t, next, ctx, "rollout")
	if diff := cmp.Diff([]string{`dev completed 200 {"job":"rollout"}`}, records); diff != "" || job.Status != "completed" {
		t.Errorf("job %s after the restart; records (-want +got):\n%s", job.Status, diff)
	}
}
