package main

import (
	"context"
	"log/slog"
	"testing"

	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/google/go-cmp/cmp"
)

// TestFanAgainstLocalHub runs the program as main does, with a simulated
// pin, and switches the fan through the hub's REST API. The fan speaks
// MQTT over TLS only.
func TestFanAgainstLocalHub(t *testing.T) {
	hub := hubtest.New(t, nil)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	dev, err := hub.AddDevice("fan-1")
	if err != nil {
		t.Fatal(err)
	}
	stop := dev.StartProgram(t, hubtest.MQTT, func(ctx context.Context, flags deviceflag.Flags) error {
		cfg := config{ConnectionString: flags.ConnectionString, CAFile: flags.CAFile, Port: flags.Port, Pin: "GPIO18", Simulate: true}
		return run(ctx, log, cfg, noGPIO)
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
		res, err := dev.Invoke(t.Context(), c.method, []byte(c.payload), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.method, err)
		}
		if diff := cmp.Diff(c.want, answer{res.Status, string(res.Payload)}); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", c.method, c.payload, diff)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("run after a stop = %v, want nil", err)
	}
}
