package hubtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/google/go-cmp/cmp"
)

func TestTags(t *testing.T) {
	hub := hubtest.New(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	dev, err := hub.AddModule("gateway", "fan")
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.SetTags(ctx, map[string]any{"room": map[string]any{"floor": 3, "name": "lab"}}); err != nil {
		t.Fatal(err)
	}
	if err := dev.SetTags(ctx, map[string]any{"room": map[string]any{"name": nil}}); err != nil {
		t.Fatal(err)
	}
	got, err := dev.Tags(ctx)
	if diff := cmp.Diff(map[string]any{"room": map[string]any{"floor": 3.0}}, got); diff != "" || err != nil {
		t.Errorf("Tags = %v; (-want +got):\n%s", err, diff)
	}
	var hubErr *hubtest.Error
	if err := dev.SetTags(ctx, map[string]any{"a.b": 1}); !errors.As(err, &hubErr) || hubErr.Code != 400004 {
		t.Errorf("SetTags with a dot in a key = %v, want *Error 400004", err)
	}
}

func TestJobErrorsAndCancel(t *testing.T) {
	hub := hubtest.New(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	sleeper, err := hub.AddDevice("sleeper")
	if err != nil {
		t.Fatal(err)
	}
	var hubErr *hubtest.Error
	if _, err := hub.Job(ctx, "nope"); !errors.As(err, &hubErr) || hubErr.Code != 404002 || hubErr.Name != "JobNotFound" {
		t.Errorf("Job(nope) = %v, want *Error 404002 JobNotFound", err)
	}
	if _, err := hub.WaitJob(ctx, "nope"); err == nil {
		t.Error("WaitJob(nope) succeeded")
	}
	if _, err := hub.ScheduleMethodJob(ctx, hubtest.MethodJob{ID: "j", Condition: "true", Method: "m", Payload: []byte("{")}); !errors.Is(err, hubtest.ErrPayloadNotJSON) {
		t.Errorf("a payload that is not JSON = %v, want ErrPayloadNotJSON", err)
	}
	if _, err := hub.ScheduleMethodJob(ctx, hubtest.MethodJob{ID: "no_underscores", Condition: "true", Method: "m"}); !errors.As(err, &hubErr) || hubErr.Code != 400004 {
		t.Errorf("a bad id = %v, want *Error 400004", err)
	}

	job, err := hub.ScheduleMethodJob(ctx, hubtest.MethodJob{ID: "wake", Condition: "deviceId = 'sleeper'", Method: "wake"})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != "queued" || job.StartTime.IsZero() || !job.EndTime.IsZero() {
		t.Errorf("new job = %+v, want queued, starting now", job)
	}
	if err := sleeper.WaitCallsWaiting(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if job, err = hub.CancelJob(ctx, "wake"); err != nil || job.Status != "cancelled" {
		t.Fatalf("CancelJob = %+v, %v; want cancelled", job, err)
	}
	if job, err = hub.WaitJob(ctx, "wake"); err != nil || job.Devices != 1 || job.Failed != 1 || job.EndTime.IsZero() {
		t.Errorf("cancelled job = %+v, %v; want its one device counted failed", job, err)
	}
	records, err := hub.DeviceJobs(ctx, "wake")
	if err != nil || len(records) != 1 || records[0].Status != "canceled" || records[0].Result != nil {
		t.Errorf("records = %+v, %v; want sleeper canceled without a result", records, err)
	}
}

func TestStartWithTier(t *testing.T) {
	if _, err := hubtest.Start(t.Context(), &hubtest.Options{Tier: "S9"}); err == nil {
		t.Error("Start with tier S9 succeeded")
	}
	if _, err := hubtest.Start(t.Context(), &hubtest.Options{Tier: "F1", TierUnits: 2}); err == nil {
		t.Error("Start with F1×2 succeeded")
	}
	hub := hubtest.New(t, &hubtest.Options{Tier: "s3", TierUnits: 10})
	if _, err := hub.AddDevice("dev"); err != nil {
		t.Fatal(err)
	}
}
