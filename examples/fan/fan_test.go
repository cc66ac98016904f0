package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/transporttest"
	"github.com/google/go-cmp/cmp"
)

// recordingPin remembers what the fan was told.
type recordingPin struct {
	sets []fanState
	fail error
}

func (p *recordingPin) Set(on bool, speed int) error {
	if p.fail != nil {
		return p.fail
	}
	p.sets = append(p.sets, fanState{on, speed})
	return nil
}

func TestFanMethods(t *testing.T) {
	pin := &recordingPin{}
	f := newFan(pin)
	fake := transporttest.NewFake(nil)
	cred, _ := sas.NewKeyCredential("MDEyMzQ1Njc4OWFiY2RlZg==", "", 0)
	client, err := device.NewClient("hub.example", "fan-1", cred, &device.ClientOptions{Transport: fake})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), f.methods()) }()
	defer func() {
		client.Close()
		if err := <-done; !errors.Is(err, device.ErrClientClosed) {
			t.Errorf("Run = %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	steps := []struct {
		method, payload string
		status          int
		body            string
	}{
		{"getFanState", "", 200, `{"on":false,"speed":0}`},
		{"turnOnFan", "", 200, `{"on":true,"speed":1}`},
		{"turnOnFan", `{"speed":3}`, 200, `{"on":true,"speed":3}`},
		{"turnOnFan", `{}`, 200, `{"on":true,"speed":3}`},
		{"turnOnFan", `{"speed":4}`, 400, `{"error":"speed must be 1, 2 or 3"}`},
		{"turnOnFan", `{"speed":0}`, 400, `{"error":"speed must be 1, 2 or 3"}`},
		{"turnOnFan", `{"speed":"max"}`, 400, ""},
		{"turnOnFan", `not json`, 400, `{"error":"request payload is not valid JSON"}`},
		{"getFanState", "", 200, `{"on":true,"speed":3}`},
		{"turnOffFan", "", 200, `{"on":false,"speed":0}`},
		{"turnOnFan", `null`, 200, `{"on":true,"speed":1}`},
		{"explode", "", 501, `{"error":"method not implemented","method":"explode"}`},
	}
	for _, s := range steps {
		var p []byte
		if s.payload != "" {
			p = []byte(s.payload)
		}
		status, body, err := fake.Invoke(ctx, s.method, p)
		if err != nil {
			t.Fatalf("%s %s: %v", s.method, s.payload, err)
		}
		if status != s.status || (s.body != "" && string(body) != s.body) {
			t.Errorf("%s %s = %d %s, want %d %s", s.method, s.payload, status, body, s.status, s.body)
		}
	}
	want := []fanState{{true, 1}, {true, 3}, {true, 3}, {false, 0}, {true, 1}}
	if diff := cmp.Diff(want, pin.sets); diff != "" {
		t.Errorf("pin changes (-want +got):\n%s", diff)
	}
}

func TestFanPinFailureAnswers500(t *testing.T) {
	f := newFan(&recordingPin{fail: errors.New("gpio busy")})
	_, err := f.turnOn(t.Context(), &device.MethodRequest{Name: "turnOnFan"})
	var me *device.MethodError
	if !errors.As(err, &me) || me.Status != 500 {
		t.Errorf("turnOn with a failing pin = %v, want a 500 MethodError", err)
	}
}

func TestFanShutdownSwitchesOff(t *testing.T) {
	pin := &recordingPin{}
	f := newFan(pin)
	if _, err := f.turnOn(t.Context(), &device.MethodRequest{Payload: []byte(`{"speed":2}`)}); err != nil {
		t.Fatal(err)
	}
	if err := f.shutdown(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]fanState{{true, 2}, {false, 0}}, pin.sets); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestRunNeedsAConnectionString(t *testing.T) {
	err := run(t.Context(), slog.New(slog.DiscardHandler), config{}, noGPIO)
	if !errors.Is(err, errNoConnectionString) {
		t.Errorf("run without a connection string = %v, want errNoConnectionString", err)
	}
}

func TestParseFlags(t *testing.T) {
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == envConnectionString {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name    string
		args    []string
		env     string
		want    config
		wantErr bool
	}{
		{"defaults", nil, "", config{}, false},
		{"environment", nil, "cs-env", config{ConnectionString: "cs-env"}, false},
		{"flag over environment", []string{"-connection-string", "cs-flag"}, "cs-env", config{ConnectionString: "cs-flag"}, false},
		{"every flag", []string{"-ca", "ca.pem", "-port", "18883", "-v", "-pin", "GPIO18", "-simulate"}, "cs", config{ConnectionString: "cs", CAFile: "ca.pem", Port: 18883, Verbose: true, Pin: "GPIO18", Simulate: true}, false},
		{"unknown flag", []string{"-transport", "amqp"}, "", config{}, true},
		{"stray argument", []string{"GPIO18"}, "", config{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, env(tt.env))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags(%q) error = %v, want error %v", tt.args, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseFlags(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestRunRefusesABadCAFile(t *testing.T) {
	cfg := config{ConnectionString: testConnectionString, CAFile: t.TempDir() + "/missing.pem"}
	err := run(t.Context(), slog.New(slog.DiscardHandler), cfg, noGPIO)
	if err == nil || !strings.Contains(err.Error(), "read CA") {
		t.Errorf("run with a missing CA file = %v, want a read CA error", err)
	}
}

func TestRunRefusesAMissingPin(t *testing.T) {
	cfg := config{ConnectionString: testConnectionString, Pin: "GPIO18"}
	err := run(t.Context(), slog.New(slog.DiscardHandler), cfg, noGPIO)
	if !errors.Is(err, errNoGPIO) {
		t.Errorf("run with -pin on a machine without GPIO = %v, want errNoGPIO", err)
	}
}
