package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/google/go-cmp/cmp"
)

// TestPlugAndPlay runs a Plug and Play device on every transport: the hub
// records the model ID it announces, and the digital twin command API
// reaches the handlers of the default component and of a component, with
// the device's status and payload coming back, and 501 for a component
// the device does not have.
func TestPlugAndPlay(t *testing.T) {
	const model = "dtmi:com:example:TemperatureController;2"
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "pnp-1")
			mux := device.NewMethodMux()
			answer := func(status int) device.MethodHandlerFunc {
				return func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
					component, command := r.Command()
					return device.JSONResponse(status, map[string]any{"component": component, "command": command, "payload": r.Payload})
				}
			}
			mux.HandleCommand("", "reboot", answer(200))
			mux.HandleCommand("thermostat1", "getMaxMinReport", answer(203))
			runDevice(t, hub, "pnp-1", tr, mux, func(o *device.ClientOptions) { o.ModelID = model })
			waitSubscribed(t, hub, "pnp-1")
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 30*time.Second)

			twin, err := svc.GetTwin(ctx, "pnp-1", "")
			if err != nil {
				t.Fatal(err)
			}
			if twin.ModelID != model || twin.ConnectionState != "Connected" {
				t.Errorf("twin: modelId %q, connectionState %q; want %q, Connected", twin.ModelID, twin.ConnectionState, model)
			}
			dt, err := svc.GetDigitalTwin(ctx, "pnp-1")
			if err != nil {
				t.Fatal(err)
			}
			if dt.Metadata.Model != model {
				t.Errorf("digital twin $model = %q, want %q", dt.Metadata.Model, model)
			}

			tests := []struct {
				name               string
				component, command string
				payload            json.RawMessage
				want               localhub.CommandResult
			}{
				{"root command", "", "reboot", json.RawMessage(`5`),
					localhub.CommandResult{Status: 200, Payload: json.RawMessage(`{"command":"reboot","component":"","payload":5}`)}},
				{"component command", "thermostat1", "getMaxMinReport", json.RawMessage(`"2026-11-30T10:00:00Z"`),
					localhub.CommandResult{Status: 203, Payload: json.RawMessage(`{"command":"getMaxMinReport","component":"thermostat1","payload":"2026-11-30T10:00:00Z"}`)}},
				{"unknown component", "thermostat9", "getMaxMinReport", nil,
					localhub.CommandResult{Status: 501, Payload: json.RawMessage(`{"error":"method not implemented","method":"thermostat9*getMaxMinReport"}`)}},
				{"unknown root command", "", "getMaxMinReport", nil,
					localhub.CommandResult{Status: 501, Payload: json.RawMessage(`{"error":"method not implemented","method":"getMaxMinReport"}`)}},
			}
			for _, tt := range tests {
				got, err := svc.InvokeCommand(ctx, "pnp-1", tt.component, tt.command, tt.payload, localhub.CommandOptions{})
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if got.RequestID == "" {
					t.Errorf("%s: no x-ms-request-id", tt.name)
				}
				got.RequestID = ""
				if diff := cmp.Diff(tt.want, *got, cmp.Transformer("compact", compactJSON)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", tt.name, diff)
				}
			}
		})
	}
}
