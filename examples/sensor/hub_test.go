package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/google/go-cmp/cmp"
)

// TestSensorAgainstLocalHub runs the program as main does on a thermal
// zone file, then without one, and reads through the hub's REST API.
func TestSensorAgainstLocalHub(t *testing.T) {
	zone := writeTemp(t, "51250\n")
	hub := hubtest.New(t, nil)
	tests := []struct {
		transport  hubtest.Transport
		path       string
		simulate   bool
		wantSource string
	}{
		{hubtest.MQTT, zone, false, sourceThermalZone},
		{hubtest.MQTTWebSocket, zone, false, sourceThermalZone},
		{hubtest.AMQP, zone, false, sourceThermalZone},
		{hubtest.AMQPWebSocket, zone, false, sourceThermalZone},
		{hubtest.MQTT, filepath.Join(t.TempDir(), "absent"), false, sourceSimulated},
		{hubtest.MQTT, zone, true, sourceSimulated},
	}
	for i, tt := range tests {
		t.Run(tt.transport.String()+"/"+tt.wantSource, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(t.Output(), nil))
			dev, err := hub.AddDevice("sensor-" + strconv.Itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			stop := dev.StartProgram(t, tt.transport, func(ctx context.Context, flags deviceflag.Flags) error {
				return run(ctx, log, config{Flags: flags, Simulate: tt.simulate}, tt.path)
			})
			status, payload := invoke(t, dev, "getReading", `{"unit":"fahrenheit"}`)
			if status != 200 {
				t.Fatalf("getReading = %d %s", status, payload)
			}
			var got reading
			if err := json.Unmarshal([]byte(payload), &got); err != nil {
				t.Fatalf("getReading answered %s: %v", payload, err)
			}
			if got.Source != tt.wantSource || got.Fahrenheit == nil {
				t.Errorf("getReading = %s, want source %s with fahrenheit", payload, tt.wantSource)
			}
			if tt.wantSource == sourceThermalZone && (got.Celsius != 51.25 || *got.Fahrenheit != 124.25) {
				t.Errorf("getReading = %s, want 51.25 °C, 124.25 °F", payload)
			}
			if readAt, err := time.Parse(time.RFC3339, got.ReadAt); err != nil || time.Since(readAt) > time.Minute {
				t.Errorf("readAt %q is not a recent RFC 3339 time (%v)", got.ReadAt, err)
			}
			status, payload = invoke(t, dev, "getReading", `{"unit":"rankine"}`)
			if diff := cmp.Diff(`400 {"error":"unit must be \"celsius\" or \"fahrenheit\""}`, formatAnswer(status, payload)); diff != "" {
				t.Errorf("getReading rankine (-want +got):\n%s", diff)
			}
			if err := stop(); err != nil {
				t.Errorf("run after a stop = %v, want nil", err)
			}
		})
	}
}

func formatAnswer(status int, payload string) string {
	return strconv.Itoa(status) + " " + payload
}

// invoke calls method through the hub's REST API and returns the device's
// status and payload.
func invoke(t *testing.T, dev *hubtest.Identity, method, payload string) (int, string) {
	t.Helper()
	res, err := dev.Invoke(t.Context(), method, []byte(payload), nil)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return res.Status, string(res.Payload)
}
