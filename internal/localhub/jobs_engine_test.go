package localhub

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The jobs engine on a hub without listeners, in a synctest bubble: its
// devices are fake sessions on the router, so every wait (start times,
// pacing, offline devices, response timeouts) runs on the bubble's clock.

// engineHub is a hub with a registry, a router and the service side, and
// no network.
func engineHub(t *testing.T, tier Tier, devices ...string) *Hub {
	t.Helper()
	h := &Hub{log: slog.New(slog.NewTextHandler(t.Output(), nil)), hostName: "localhost", router: newRouter()}
	h.reg = newRegistry("localhost", newKey())
	for _, d := range devices {
		if err := h.addIdentity(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.initService("", tier); err != nil {
		t.Fatal(err)
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// stop ends the hub's goroutines as Close does.
func (h *Hub) stopEngine() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// fakeSession is a device session that answers each request after delay
// with status 200 and the request's payload, or never when delay < 0.
type fakeSession struct {
	calls pendingCalls
	delay time.Duration
}

func (s *fakeSession) deliver(ctx context.Context, req methodRequest) (*pendingCall, error) {
	c := s.calls.add(ctx)
	if s.delay >= 0 {
		go func() { // owned by the call: ends when answered or when the call ends
			t := time.NewTimer(s.delay)
			defer t.Stop()
			select {
			case <-t.C:
				s.calls.resolve(c.n, methodResponse{status: 200, payload: req.payload})
			case <-c.ctx.Done():
			}
		}()
	}
	return c, nil
}

func (s *fakeSession) forget(c *pendingCall) { s.calls.remove(c) }
func (s *fakeSession) drop(string)           {}

// online connects identity with a session that answers after delay.
func online(h *Hub, identity string, delay time.Duration) *fakeSession {
	s := &fakeSession{delay: delay}
	h.router.attach(identity, s, true)
	h.router.setSubscribed(identity, s, true, 1)
	return s
}

// schedule creates a job as PUT /jobs/v2 does and starts its runner.
func schedule(t *testing.T, h *Hub, body string) {
	t.Helper()
	var id struct{ JobID string }
	if err := json.Unmarshal([]byte(body), &id); err != nil {
		t.Fatal(err)
	}
	j, rerr := decodeJobBody([]byte(body), id.JobID, time.Now())
	if rerr != nil {
		t.Fatal(rerr.message)
	}
	if _, exists := h.jobs.add(j, 0, j.Created); exists {
		t.Fatalf("job %s exists", j.ID)
	}
	if !h.startJob(j.ID) {
		t.Fatal("hub closing")
	}
}

// jobNow returns the job's JobResponse and device records.
func jobNow(h *Hub, id string) (Job, []DeviceJob) {
	var resp Job
	var records []DeviceJob
	h.jobs.view(id, func(j *job) {
		resp = j.response()
		for _, d := range j.Devices {
			records = append(records, d.record(j))
		}
	})
	return resp, records
}

// recordSummary is what the tests compare of a device's record.
func recordSummary(records []DeviceJob) []string {
	var out []string
	for _, r := range records {
		s := r.DeviceID + " " + r.Status
		if m := r.Outcome.DeviceMethodResponse; m != nil {
			s += " " + string(m.Payload)
		}
		if r.Error != nil {
			s += " " + r.Error.Code
		}
		out = append(out, s)
	}
	return out
}

func TestJobScheduledThenRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := engineHub(t, Tier{}, "a", "b", "c")
		defer h.stopEngine()
		for _, id := range []string{"a", "c"} {
			h.tags.update(id, "", func(map[string]any) (map[string]any, error) { return map[string]any{"floor": json.Number("3")}, nil })
		}
		online(h, "a", time.Second)
		online(h, "c", 2*time.Second)
		created := time.Now()
		schedule(t, h, `{"jobId":"j1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1}},
			"queryCondition":"tags.floor = 3","startTime":"`+created.Add(10*time.Second).Format(time.RFC3339)+`","maxExecutionTimeInSeconds":60}`)
		synctest.Wait()
		if resp, _ := jobNow(h, "j1"); resp.Status != jobScheduled {
			t.Fatalf("before its start: %s, want scheduled", resp.Status)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		resp, records := jobNow(h, "j1")
		if resp.Status != jobRunning || !cmp.Equal([]string{"a running", "c running"}, recordSummary(records)) {
			t.Fatalf("at its start: %s %v, want running with a and c running", resp.Status, recordSummary(records))
		}
		h.jobs.wait(t.Context(), "j1", func(j *job) bool { return terminalJobStatus(j.Status) })
		resp, records = jobNow(h, "j1")
		want := Job{
			JobID: "j1", QueryCondition: "tags.floor = 3", CreatedTime: formatJobTime(created),
			StartTime: formatJobTime(created.Add(10 * time.Second)), EndTime: formatJobTime(created.Add(12 * time.Second)),
			MaxExecutionTimeInSeconds: 60, Type: jobTypeDeviceMethod, Status: jobCompleted,
			CloudToDeviceMethod: JobMethod{MethodName: "reboot", Payload: json.RawMessage(`{"delay":1}`), ResponseTimeoutInSeconds: 30},
			DeviceJobStatistics: DeviceJobStatistics{DeviceCount: 2, SucceededCount: 2},
		}
		if diff := cmp.Diff(want, resp); diff != "" {
			t.Errorf("JobResponse (-want +got):\n%s", diff)
		}
		wantA := DeviceJob{DeviceID: "a", JobID: "j1", JobType: jobTypeDeviceMethod, Status: deviceJobCompleted,
			StartTimeUTC: formatJobTime(created.Add(10 * time.Second)), EndTimeUTC: formatJobTime(created.Add(11 * time.Second)),
			CreatedDateTimeUTC: formatJobTime(created.Add(10 * time.Second)), LastUpdatedDateTimeUTC: formatJobTime(created.Add(11 * time.Second)),
			Outcome: DeviceJobOutcome{DeviceMethodResponse: &MethodResult{Status: 200, Payload: json.RawMessage(`{"delay":1}`)}}}
		if diff := cmp.Diff(wantA, records[0]); diff != "" {
			t.Errorf("a's record (-want +got):\n%s", diff)
		}
	})
}

// TestJobOfflineDevices: a device offline at the start that connects within
// the job's time is called; one that never connects fails at the deadline.
func TestJobOfflineDevices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := engineHub(t, Tier{}, "early", "late", "never", "other/mod")
		defer h.stopEngine()
		online(h, "early", 0)
		start := time.Now()
		schedule(t, h, `{"jobId":"j","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},
			"queryCondition":"deviceId IN ['early', 'late', 'never']","maxExecutionTimeInSeconds":60}`)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		resp, records := jobNow(h, "j")
		if resp.DeviceJobStatistics != (DeviceJobStatistics{DeviceCount: 3, SucceededCount: 1, PendingCount: 2}) {
			t.Errorf("while two devices are offline: %+v", resp.DeviceJobStatistics)
		}
		if diff := cmp.Diff([]string{"early completed null", "late pending", "never pending"}, recordSummary(records)); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
		online(h, "late", 0)
		h.jobs.wait(t.Context(), "j", func(j *job) bool { return terminalJobStatus(j.Status) })
		resp, records = jobNow(h, "j")
		if resp.Status != jobCompleted || resp.EndTime != formatJobTime(start.Add(60*time.Second)) ||
			resp.DeviceJobStatistics != (DeviceJobStatistics{DeviceCount: 3, SucceededCount: 2, FailedCount: 1}) {
			t.Errorf("job = %s ended %s %+v, want completed at the deadline, 2 succeeded and 1 failed", resp.Status, resp.EndTime, resp.DeviceJobStatistics)
		}
		if diff := cmp.Diff([]string{"early completed null", "late completed null", "never failed DeviceNotOnline"}, recordSummary(records)); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
		if got := records[1].StartTimeUTC; got != formatJobTime(start.Add(30*time.Second)) {
			t.Errorf("late's startTimeUtc = %s, want when it connected", got)
		}
		if e := records[2].Error; e.Description != "Timed out waiting for device to connect." {
			t.Errorf("never's error = %+v", e)
		}
	})
}

// TestJobCancel: cancelling stops the devices not yet called; a call in
// flight runs its course and is recorded.
func TestJobCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := engineHub(t, Tier{}, "slow", "offline")
		defer h.stopEngine()
		online(h, "slow", 5*time.Second)
		schedule(t, h, `{"jobId":"j","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","payload":1},"queryCondition":"IS_DEFINED(deviceId)"}`)
		time.Sleep(time.Second)
		synctest.Wait()
		resp, ok := h.cancelJob("j")
		if !ok || resp.Status != jobCancelled || resp.StatusMessage != "The job was cancelled." {
			t.Fatalf("cancelJob = %+v, %v; want cancelled at once", resp, ok)
		}
		synctest.Wait()
		_, records := jobNow(h, "j")
		if diff := cmp.Diff([]string{"offline canceled", "slow running"}, recordSummary(records)); diff != "" {
			t.Errorf("records right after the cancel (-want +got):\n%s", diff)
		}
		h.jobs.wait(t.Context(), "j", func(j *job) bool { return !j.End.IsZero() })
		resp, records = jobNow(h, "j")
		if diff := cmp.Diff([]string{"offline canceled", "slow completed 1"}, recordSummary(records)); diff != "" {
			t.Errorf("records at the end (-want +got):\n%s", diff)
		}
		if resp.Status != jobCancelled || resp.DeviceJobStatistics != (DeviceJobStatistics{DeviceCount: 2, SucceededCount: 1, FailedCount: 1}) {
			t.Errorf("job = %s %+v", resp.Status, resp.DeviceJobStatistics)
		}
		if again, _ := h.cancelJob("j"); again.EndTime != resp.EndTime {
			t.Errorf("a second cancel changed the job: %+v", again)
		}
	})
}

// TestJobPacedAndOutOfTime runs a job on 25 online devices of an S1 hub,
// paced at 10 a second, with 2 s to run: the devices whose turn has not
// come by then fail with JobTimedOut.
func TestJobPacedAndOutOfTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ids []string
		for i := range 25 {
			ids = append(ids, "d"+string(rune('a'+i)))
		}
		h := engineHub(t, Tier{"S1", 1}, ids...)
		defer h.stopEngine()
		for _, id := range ids {
			online(h, id, 0)
		}
		start := time.Now()
		schedule(t, h, `{"jobId":"paced","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"deviceId >= 'd'","maxExecutionTimeInSeconds":2}`)
		h.jobs.wait(t.Context(), "paced", func(j *job) bool { return terminalJobStatus(j.Status) })
		resp, records := jobNow(h, "paced")
		// Turns at 0, 0.1 s, ..., 1.9 s: 20 devices; the next turn would
		// come at the deadline, so the job ends with the 20th call.
		if resp.DeviceJobStatistics != (DeviceJobStatistics{DeviceCount: 25, SucceededCount: 20, FailedCount: 5}) || time.Since(start) != 1900*time.Millisecond {
			t.Errorf("after %v: %+v, want 20 succeeded and 5 failed at 1.9s", time.Since(start), resp.DeviceJobStatistics)
		}
		if r := records[24]; r.Status != deviceJobFailed || r.Error.Code != codeJobTimedOut {
			t.Errorf("last device = %+v, want failed with JobTimedOut", r)
		}
		if r := records[19]; r.StartTimeUTC != formatJobTime(start.Add(1900*time.Millisecond)) {
			t.Errorf("20th device called at %s, want 1.9 s after the start", r.StartTimeUTC)
		}
	})
}

// TestJobConditionDoesNotParse fails the job at its start, as IoT Hub does.
func TestJobConditionDoesNotParse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := engineHub(t, Tier{}, "a")
		defer h.stopEngine()
		schedule(t, h, `{"jobId":"bad","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"SELECT * FROM devices"}`)
		h.jobs.wait(t.Context(), "bad", func(j *job) bool { return terminalJobStatus(j.Status) })
		resp, _ := jobNow(h, "bad")
		if resp.Status != jobFailed || !strings.HasPrefix(resp.FailureReason, "The query condition could not be parsed: Line 1:1 ") || resp.EndTime == "" {
			t.Errorf("job = %s, failureReason %q, end %q; want failed with the parser's position", resp.Status, resp.FailureReason, resp.EndTime)
		}
	})
}

// TestJobResponseTimeout fails a device that does not answer within the
// job's response timeout with GatewayTimeout, and keeps a module job on
// its module.
func TestJobResponseTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := engineHub(t, Tier{}, "dev/mod")
		defer h.stopEngine()
		online(h, "dev/mod", -1)
		schedule(t, h, `{"jobId":"silent","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":5},"queryCondition":"FROM devices.modules WHERE moduleId = 'mod'"}`)
		h.jobs.wait(t.Context(), "silent", func(j *job) bool { return terminalJobStatus(j.Status) })
		_, records := jobNow(h, "silent")
		if len(records) != 1 || records[0].ModuleID != "mod" || records[0].Error == nil || records[0].Error.Code != codeGatewayTimeout {
			t.Errorf("records = %+v, want dev/mod failed with GatewayTimeout", records)
		}
	})
}

// TestJobCancelledBeforeItsRunnerStarts: a cancel that comes between the
// job's creation and its runner's start still ends the job.
func TestJobCancelledBeforeItsRunnerStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := engineHub(t, Tier{}, "a")
		defer h.stopEngine()
		j, rerr := decodeJobBody([]byte(`{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"true"}`), "early", time.Now())
		if rerr != nil {
			t.Fatal(rerr.message)
		}
		h.jobs.add(j, 0, j.Created)
		if _, ok := h.cancelJob("early"); !ok {
			t.Fatal("no job")
		}
		h.startJob("early")
		h.jobs.wait(t.Context(), "early", func(j *job) bool { return !j.End.IsZero() })
		if resp, _ := jobNow(h, "early"); resp.Status != jobCancelled || resp.DeviceJobStatistics.DeviceCount != 0 {
			t.Errorf("job = %s %+v, want cancelled without devices", resp.Status, resp.DeviceJobStatistics)
		}
	})
}
