package device_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

func TestModelIDValidation(t *testing.T) {
	cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
	tests := []struct {
		id string
		ok bool
	}{
		{"", true},
		{"dtmi:com:example:TemperatureController;2", true},
		{"dtmi:com:example:Thermostat;1", true},
		{"dtmi:a;1", true},
		{"dtmi:a_b:C9;999999999", true},
		{"dtmi:com:example:Thermostat;1.2", true},
		{"dtmi:com:example:Thermostat", false},            // no version
		{"dtmi:com:example:Thermostat;0", false},          // version starts with zero
		{"dtmi:com:example:Thermostat;01", false},         // leading zero
		{"dtmi:com:example:Thermostat;1234567890", false}, // ten digits
		{"dtmi:com:example:Thermostat;1.01", false},       // minor with leading zero
		{"DTMI:com:example:Thermostat;1", false},          // scheme is lower case
		{"dtmi:com:9example:Thermostat;1", false},         // segment starts with a digit
		{"dtmi:com:example_:Thermostat;1", false},         // segment ends with an underscore
		{"dtmi:_com:example;1", false},                    // system segment
		{"dtmi::example;1", false},                        // empty segment
		{"dtmi:com:example:Thermostat;1#frag", false},
		{"dtmi:com:exa mple;1", false},
		{"dtmi:com:example;1\n", false},
		{"urn:com:example;1", false},
		{"dtmi:" + strings.Repeat("a", 2100) + ";1", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			c, err := device.NewClient(testHost, "d", cred, &device.ClientOptions{Transport: transporttest.NewFake(nil), ModelID: tt.id})
			if tt.ok && err != nil {
				t.Fatalf("ModelID %q refused: %v", tt.id, err)
			}
			if !tt.ok && (!errors.Is(err, device.ErrInvalidConfig) || c != nil || !strings.Contains(err.Error(), "ModelID")) {
				t.Fatalf("ModelID %q: got (%v, %v), want an ErrInvalidConfig naming ModelID", tt.id, c, err)
			}
		})
	}
}

// configRecorder is a transport.Dialer that keeps the Config of the last
// dial and passes the dial on.
type configRecorder struct {
	transport.Dialer
	got chan transport.Config
}

func (r *configRecorder) Dial(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
	select {
	case r.got <- *cfg:
	default:
	}
	return r.Dialer.Dial(ctx, cfg)
}

func TestModelIDReachesTransport(t *testing.T) {
	const model = "dtmi:com:example:TemperatureController;2"
	rec := &configRecorder{Dialer: transporttest.NewFake(nil), got: make(chan transport.Config, 1)}
	c, err := device.NewClientFromConnectionString("HostName="+testHost+";DeviceId=d;SharedAccessKey="+testKeyB64,
		&device.ClientOptions{Transport: rec, ModelID: model})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(t.Context(), device.NewMethodMux()) }() // joined below
	var cfg transport.Config
	select {
	case cfg = <-rec.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no dial within 10 s")
	}
	c.Close()
	<-done
	if cfg.ModelID != model {
		t.Errorf("Config.ModelID = %q, want %q", cfg.ModelID, model)
	}
}
