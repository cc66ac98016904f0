package main

import (
	"context"
	"github.com/directmethods/iotdevice/internal/transportname"
	"log/slog"
	"testing"

	"github.com/directmethods/iotdevice/internal/devicecli"
	"github.com/directmethods/iotdevice/internal/devicecli/devicetest"
	"github.com/google/go-cmp/cmp"
)

// TestFanAgainstLocalHub runs the program as main does, with a simulated
// pin, and switches the fan through the hub's REST API.
func TestFanAgainstLocalHub(t *testing.T) {
	for _, transport := range transportname.Names {
		t.Run(transport, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(t.Output(), nil))
			p := devicetest.Start(t, "fan-1", transport, func(ctx context.Context, flags devicecli.Flags) error {
				return run(ctx, log, config{Flags: flags, Pin: "GPIO18", Simulate: true}, noGPIO)
			})
			type answer struct {
				Status  int
				Payload string
			}
			calls := []struct {
				method, payload string
				want            answer
			}{
				{"turnOnFan", `{"speed":2}`, answer{200, `{"on":true,"speed":2}`}},
				{"getFanState", "", answer{200, `{"on":true,"speed":2}`}},
				{"turnOnFan", `{"speed":9}`, answer{400, `{"error":"speed must be 1, 2 or 3"}`}},
				{"turnOffFan", "", answer{200, `{"on":false,"speed":0}`}},
			}
			for _, c := range calls {
				status, payload := p.Invoke(t, c.method, c.payload)
				if diff := cmp.Diff(c.want, answer{status, payload}); diff != "" {
					t.Errorf("%s %s (-want +got):\n%s", c.method, c.payload, diff)
				}
			}
			if err := p.Stop(t); err != nil {
				t.Errorf("run after a stop = %v, want nil", err)
			}
		})
	}
}
