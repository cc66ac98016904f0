package main

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/transporttest"
	"github.com/google/go-cmp/cmp"
)

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// writeTemp writes a thermal zone file with content and returns its path.
func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "temp")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serve runs s's methods on a fake hub until the test ends.
func serve(t *testing.T, s *sensor) *transporttest.Fake {
	t.Helper()
	fake := transporttest.NewFake(nil)
	cred, err := sas.NewKeyCredential("MDEyMzQ1Njc4OWFiY2RlZg==", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	client, err := device.NewClient("hub.example", "sensor-1", cred, &device.ClientOptions{Transport: fake})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), s.methods()) }() // joined in the cleanup
	t.Cleanup(func() {
		client.Close()
		if err := <-done; !errors.Is(err, device.ErrClientClosed) {
			t.Errorf("Run = %v", err)
		}
	})
	return fake
}

func TestGetReading(t *testing.T) {
	pi := writeTemp(t, "48312\n")
	tests := []struct {
		name       string
		path       string // "" simulates
		payload    string
		wantStatus int
		wantBody   string
	}{
		{"celsius by default", pi, "", 200, `{"celsius":48.312,"source":"thermal_zone0","readAt":"2026-05-01T12:00:00Z"}`},
		{"null payload", pi, "null", 200, `{"celsius":48.312,"source":"thermal_zone0","readAt":"2026-05-01T12:00:00Z"}`},
		{"empty object", pi, "{}", 200, `{"celsius":48.312,"source":"thermal_zone0","readAt":"2026-05-01T12:00:00Z"}`},
		{"celsius", pi, `{"unit":"celsius"}`, 200, `{"celsius":48.312,"source":"thermal_zone0","readAt":"2026-05-01T12:00:00Z"}`},
		{"fahrenheit", pi, `{"unit":"fahrenheit"}`, 200, `{"celsius":48.312,"fahrenheit":118.962,"source":"thermal_zone0","readAt":"2026-05-01T12:00:00Z"}`},
		{"kelvin", pi, `{"unit":"kelvin"}`, 400, `{"error":"unit must be \"celsius\" or \"fahrenheit\""}`},
		{"unit case", pi, `{"unit":"Celsius"}`, 400, `{"error":"unit must be \"celsius\" or \"fahrenheit\""}`},
		{"unit not a string", pi, `{"unit":1}`, 400, ""},
		{"payload not an object", pi, `"celsius"`, 400, ""},
		{"simulated", "", "", 200, `{"celsius":45,"source":"simulated","readAt":"2026-05-01T12:00:00Z"}`},
		{"negative", writeTemp(t, "-5250\n"), `{"unit":"fahrenheit"}`, 200, `{"celsius":-5.25,"fahrenheit":22.55,"source":"thermal_zone0","readAt":"2026-05-01T12:00:00Z"}`},
		{"empty file", writeTemp(t, ""), "", 500, "the file is empty"},
		{"blank file", writeTemp(t, " \n"), "", 500, "the file is empty"},
		{"garbage", writeTemp(t, "hot\n"), "", 500, `not an integer of millidegrees: \"hot\"`},
		{"fraction", writeTemp(t, "48.3\n"), "", 500, "not an integer of millidegrees"},
		{"out of range", writeTemp(t, "900000\n"), "", 500, "out of range"},
		{"missing file", filepath.Join(t.TempDir(), "absent"), "", 500, "cannot read the temperature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := serve(t, &sensor{path: tt.path, now: fixedNow})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var p []byte
			if tt.payload != "" {
				p = []byte(tt.payload)
			}
			status, body, err := fake.Invoke(ctx, "getReading", p)
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.wantStatus {
				t.Errorf("status %d (%s), want %d", status, body, tt.wantStatus)
			}
			switch {
			case status == 200:
				if diff := cmp.Diff(tt.wantBody, string(body)); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			case !strings.HasPrefix(string(body), `{"error":"`) || !strings.Contains(string(body), tt.wantBody):
				t.Errorf("body %s, want a JSON error containing %s", body, tt.wantBody)
			}
		})
	}
}

func TestParseMillidegrees(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"48312\n", 48.312, false},
		{"0", 0, false},
		{"-273150", -273.15, false},
		{"200000\n", 200, false},
		{"  51000  \n", 51, false},
		{"", 0, true},
		{"\n", 0, true},
		{"abc", 0, true},
		{"48312 47000", 0, true},
		{"1e3", 0, true},
		{"-273151", 0, true},
		{"200001", 0, true},
		{"99999999999999999999", 0, true},
		{"\x00\xff", 0, true},
	}
	for _, tt := range tests {
		got, err := parseMillidegrees([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseMillidegrees(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, errBadReading) {
			t.Errorf("parseMillidegrees(%q) error %v does not wrap errBadReading", tt.in, err)
		}
	}
}

func FuzzParseMillidegrees(f *testing.F) {
	for _, s := range []string{"48312\n", "", "-5250", "abc", "200001", "1e3", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseMillidegrees(b)
		if err != nil {
			if !errors.Is(err, errBadReading) {
				t.Fatalf("error %v does not wrap errBadReading", err)
			}
			return
		}
		if math.IsNaN(c) || c < -273.15 || c > 200 {
			t.Fatalf("parseMillidegrees(%q) = %v, out of range", b, c)
		}
	})
}

func TestSimulatedCelsius(t *testing.T) {
	for i := range 60 {
		now := testNow.Add(time.Duration(i) * 17 * time.Second)
		c := simulatedCelsius(now)
		if c < 42 || c > 48 {
			t.Errorf("simulatedCelsius(%v) = %v, want 42 to 48", now, c)
		}
		if again := simulatedCelsius(now); again != c {
			t.Errorf("simulatedCelsius(%v) = %v then %v", now, c, again)
		}
	}
	if a, b := simulatedCelsius(testNow), simulatedCelsius(testNow.Add(2*time.Minute)); a == b {
		t.Errorf("the simulated temperature does not move: %v", a)
	}
}
