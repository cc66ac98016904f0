package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/transporttest"
	"github.com/google/go-cmp/cmp"
)

// newTestController returns a controller started at start whose clock
// reads now.
func newTestController(start, now time.Time) *controller {
	return &controller{started: start, now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler)}
}

// call serves one request through the controller's mux and returns the
// status and body it answers with.
func call(t *testing.T, c *controller, name, payload string) (int, string) {
	t.Helper()
	req := &device.MethodRequest{Name: name}
	if payload != "" {
		req.Payload = json.RawMessage(payload)
	}
	resp, err := c.methods().ServeMethod(t.Context(), req)
	var me *device.MethodError
	switch {
	case errors.As(err, &me):
		return me.Status, me.Message + string(me.Payload)
	case err != nil:
		t.Fatalf("%s: %v", name, err)
	case resp == nil:
		return 200, ""
	}
	return resp.Status, string(resp.Payload)
}

func TestGetMaxMinReport(t *testing.T) {
	start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	c := newTestController(start, start.Add(time.Minute))
	at := func(d time.Duration) float64 { return temperature("thermostat2", start.Add(d)) }

	// One reading: since falls between two samples, now is the next one.
	one := newTestController(start, start.Add(10*time.Second))
	status, body := call(t, one, "thermostat2*getMaxMinReport", `"2026-11-30T10:00:07Z"`)
	var got maxMinReport
	if status != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("one reading: %d %s", status, body)
	}
	v := at(10 * time.Second)
	want := maxMinReport{MaxTemp: v, MinTemp: v, AvgTemp: v, StartTime: "2026-11-30T10:00:10Z", EndTime: "2026-11-30T10:00:10Z"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("one reading (-want +got):\n%s", diff)
	}

	// Since before the start: every reading of the minute, 13 of them.
	status, body = call(t, c, "thermostat2*getMaxMinReport", `"2026-11-30T09:00:00+00:00"`)
	if status != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("whole minute: %d %s", status, body)
	}
	lo, hi, sum := at(0), at(0), 0.0
	for i := range 13 {
		v := at(time.Duration(i) * sampleInterval)
		lo, hi, sum = min(lo, v), max(hi, v), sum+v
	}
	if got.MinTemp != lo || got.MaxTemp != hi || got.StartTime != "2026-11-30T10:00:00Z" || got.EndTime != "2026-11-30T10:01:00Z" {
		t.Errorf("whole minute = %+v, want min %v max %v from 10:00:00 to 10:01:00", got, lo, hi)
	}
	if avg := sum / 13; got.AvgTemp < avg-0.01 || got.AvgTemp > avg+0.01 {
		t.Errorf("avgTemp = %v, want %.2f", got.AvgTemp, avg)
	}
}

func TestCommandErrors(t *testing.T) {
	start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	c := newTestController(start, start.Add(time.Minute))
	tests := []struct {
		name, method, payload string
		status                int
	}{
		{"since missing", "thermostat1*getMaxMinReport", "", 400},
		{"since not a string", "thermostat1*getMaxMinReport", `5`, 400},
		{"since not a time", "thermostat1*getMaxMinReport", `"yesterday"`, 400},
		{"since in the future", "thermostat1*getMaxMinReport", `"2026-11-30T11:00:00Z"`, 404},
		{"reboot", "reboot", `5`, 200},
		{"reboot without delay", "reboot", ``, 400},
		{"reboot with negative delay", "reboot", `-1`, 400},
		{"reboot of a component", "thermostat1*reboot", `5`, 501},
		{"unknown component", "thermostat3*getMaxMinReport", `"2026-11-30T10:00:00Z"`, 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := call(t, c, tt.method, tt.payload); status != tt.status {
				t.Errorf("%s = %d %s, want %d", tt.method, status, body, tt.status)
			}
		})
	}
}

func TestTemperatureStaysInRange(t *testing.T) {
	start := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for name, th := range thermostats {
		for i := range 200 {
			v := temperature(name, start.Add(time.Duration(i)*7*time.Second))
			if v < th.base-3 || v > th.base+3 {
				t.Fatalf("%s: %v outside %v ± 3", name, v, th.base)
			}
		}
	}
}

func TestRunRefusesBadSetups(t *testing.T) {
	t.Setenv(deviceflag.EnvConnectionString, "")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"no connection string", nil},
		{"unknown flag", []string{"-pin", "GPIO18"}},
		{"unknown transport", []string{"-connection-string", "HostName=h.example;DeviceId=d;SharedAccessKey=AAAA", "-transport", "pigeon"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := run(t.Context(), tt.args, io.Discard); err == nil {
				t.Error("run succeeded")
			}
		})
	}
}

// TestAgainstLocalHub runs the program as main does against an
// in-process hub, on every transport, and calls a component command as
// IoT Central does, through the direct method {component}*{command}.
func TestAgainstLocalHub(t *testing.T) {
	hub := hubtest.New(t, nil)
	for _, tr := range hubtest.Transports {
		t.Run(tr.String(), func(t *testing.T) {
			dev, err := hub.AddDevice("thermostat-" + tr.String())
			if err != nil {
				t.Fatal(err)
			}
			stop := dev.StartProgram(t, tr, func(ctx context.Context, flags deviceflag.Flags) error {
				return serve(ctx, flags, t.Output())
			})
			since, _ := json.Marshal(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
			res, err := dev.Invoke(t.Context(), "thermostat2*getMaxMinReport", since, nil)
			if err != nil || res.Status != 200 {
				t.Fatalf("getMaxMinReport = %+v, %v", res, err)
			}
			res, err = dev.Invoke(t.Context(), "thermostat3*getMaxMinReport", since, nil)
			if err != nil || res.Status != 501 {
				t.Errorf("unknown component = %+v, %v; want 501", res, err)
			}
			if err := stop(); err != nil {
				t.Errorf("run after a stop = %v, want nil", err)
			}
		})
	}
}

// TestThroughClient runs the commands through a device.Client on the
// in-memory transport: the model ID reaches the transport, and the
// commands come back with their answers.
func TestThroughClient(t *testing.T) {
	fake := transporttest.NewFake(nil)
	rec := &recordingDialer{Fake: fake, modelIDs: make(chan string, 1)}
	client, err := device.NewClientFromConnectionString("HostName=hub.example.net;DeviceId=thermostat-1;SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		&device.ClientOptions{Transport: rec, ModelID: modelID})
	if err != nil {
		t.Fatal(err)
	}
	c := &controller{started: time.Now().Add(-time.Minute), now: time.Now, log: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), c.methods()) }() // joined below
	defer func() {
		client.Close()
		<-done
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := fake.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-rec.modelIDs; got != modelID {
		t.Errorf("announced model ID %q, want %q", got, modelID)
	}
	since, _ := json.Marshal(time.Now().Add(-30 * time.Second).UTC().Format(time.RFC3339))
	status, body, err := fake.Invoke(ctx, "thermostat1*getMaxMinReport", since)
	if err != nil || status != 200 {
		t.Fatalf("getMaxMinReport = %d %s, %v", status, body, err)
	}
	var report map[string]any
	if err := json.Unmarshal(body, &report); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"maxTemp", "minTemp", "avgTemp", "startTime", "endTime"} {
		if _, ok := report[key]; !ok {
			t.Errorf("report %s has no %s", body, key)
		}
	}
	if status, body, err := fake.Invoke(ctx, "thermostat9*getMaxMinReport", since); err != nil || status != 501 {
		t.Errorf("unknown component = %d %s, %v; want 501", status, body, err)
	}
}

// recordingDialer is the in-memory transport, keeping the model ID of the
// first dial.
type recordingDialer struct {
	*transporttest.Fake
	modelIDs chan string
}

func (d *recordingDialer) Dial(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
	select {
	case d.modelIDs <- cfg.ModelID:
	default:
	}
	return d.Fake.Dial(ctx, cfg)
}
