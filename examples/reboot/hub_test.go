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

// TestRebootAgainstLocalHub runs the program as main does, in dry-run
// mode, and schedules and cancels a reboot through the hub's REST API.
func TestRebootAgainstLocalHub(t *testing.T) {
	for _, transport := range transportname.Names {
		t.Run(transport, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(t.Output(), nil))
			clk := &fakeClock{}
			p := devicetest.Start(t, "pi-1", transport, func(ctx context.Context, flags devicecli.Flags) error {
				return run(ctx, log, config{Flags: flags, Command: "false", DryRun: true}, clk)
			})
			type answer struct {
				Status  int
				Payload string
			}
			calls := []struct {
				method, payload string
				want            answer
			}{
				{"reboot", `{"delaySeconds":120}`, answer{200, `{"scheduledAt":"2026-05-01T12:02:00Z","delaySeconds":120}`}},
				{"reboot", "", answer{409, `{"error":"a reboot is already scheduled for 2026-05-01T12:02:00Z"}`}},
				{"cancelReboot", "", answer{200, `{"cancelled":true,"scheduledAt":"2026-05-01T12:02:00Z"}`}},
				{"reboot", `{"delaySeconds":"now"}`, answer{400, `{"error":"invalid payload: \"delaySeconds\" must be a number, not a string"}`}},
				{"reboot", "", answer{200, `{"scheduledAt":"2026-05-01T12:00:10Z","delaySeconds":10}`}},
			}
			for _, c := range calls {
				status, payload := p.Invoke(t, c.method, c.payload)
				if diff := cmp.Diff(c.want, answer{status, payload}); diff != "" {
					t.Errorf("%s %s (-want +got):\n%s", c.method, c.payload, diff)
				}
			}
			// The program cancels the pending reboot as it stops.
			if err := p.Stop(t); err != nil {
				t.Errorf("run after a stop = %v, want nil", err)
			}
			if _, stopped := clk.delays(); !cmp.Equal([]bool{true, true}, stopped) {
				t.Errorf("timers stopped = %v, want both", stopped)
			}
		})
	}
}
