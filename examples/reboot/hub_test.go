package main

import (
	"context"
	"log/slog"
	"testing"

	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/google/go-cmp/cmp"
)

// TestRebootAgainstLocalHub runs the program as main does, in dry-run
// mode, and schedules and cancels a reboot through the hub's REST API.
func TestRebootAgainstLocalHub(t *testing.T) {
	hub := hubtest.New(t, nil)
	for _, tr := range hubtest.Transports {
		t.Run(tr.String(), func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(t.Output(), nil))
			clk := &fakeClock{}
			dev, err := hub.AddDevice("pi-1-" + tr.String())
			if err != nil {
				t.Fatal(err)
			}
			stop := dev.StartProgram(t, tr, func(ctx context.Context, flags deviceflag.Flags) error {
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
				res, err := dev.Invoke(t.Context(), c.method, []byte(c.payload), nil)
				if err != nil {
					t.Fatalf("%s: %v", c.method, err)
				}
				if diff := cmp.Diff(c.want, answer{res.Status, string(res.Payload)}); diff != "" {
					t.Errorf("%s %s (-want +got):\n%s", c.method, c.payload, diff)
				}
			}
			// The program cancels the pending reboot as it stops.
			if err := stop(); err != nil {
				t.Errorf("run after a stop = %v, want nil", err)
			}
			if _, stopped := clk.delays(); !cmp.Equal([]bool{true, true}, stopped) {
				t.Errorf("timers stopped = %v, want both", stopped)
			}
		})
	}
}
