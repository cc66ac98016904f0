package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/devicecli"
	"github.com/directmethods/iotdevice/internal/devicecli/devicetest"
	"github.com/google/go-cmp/cmp"
)

// TestSensorAgainstLocalHub runs the program as main does on a thermal
// zone file, then without one, and reads through the hub's REST API.
func TestSensorAgainstLocalHub(t *testing.T) {
	zone := writeTemp(t, "51250\n")
	tests := []struct {
		transport, path string
		simulate        bool
		wantSource      string
	}{
		{"mqtt", zone, false, sourceThermalZone},
		{"mqtt-ws", zone, false, sourceThermalZone},
		{"amqp", zone, false, sourceThermalZone},
		{"amqp-ws", zone, false, sourceThermalZone},
		{"mqtt", filepath.Join(t.TempDir(), "absent"), false, sourceSimulated},
		{"mqtt", zone, true, sourceSimulated},
	}
	for _, tt := range tests {
		t.Run(tt.transport+"/"+tt.wantSource, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(t.Output(), nil))
			p := devicetest.Start(t, "sensor-1", tt.transport, func(ctx context.Context, flags devicecli.Flags) error {
				return run(ctx, log, config{Flags: flags, Simulate: tt.simulate}, tt.path)
			})
			status, payload := p.Invoke(t, "getReading", `{"unit":"fahrenheit"}`)
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
			status, payload = p.Invoke(t, "getReading", `{"unit":"rankine"}`)
			if diff := cmp.Diff(`400 {"error":"unit must be \"celsius\" or \"fahrenheit\""}`, formatAnswer(status, payload)); diff != "" {
				t.Errorf("getReading rankine (-want +got):\n%s", diff)
			}
			if err := p.Stop(t); err != nil {
				t.Errorf("run after a stop = %v, want nil", err)
			}
		})
	}
}

func formatAnswer(status int, payload string) string {
	return strconv.Itoa(status) + " " + payload
}
