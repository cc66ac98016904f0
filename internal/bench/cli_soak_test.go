package bench

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMainSoak runs a one-second soak through the command, as JSON.
func TestMainSoak(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Main(ctx, []string{"-soak", "1s", "-devices", "1", "-transport", "amqp", "-seed", "7", "-json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	type line struct {
		Phase      string   `json:"phase"`
		Seed       uint64   `json:"seed"`
		Devices    int      `json:"devices"`
		Transports []string `json:"transports"`
		Passed     *bool    `json:"passed"`
	}
	var phases []string
	for _, r := range decodeLines[line](t, &out) {
		phases = append(phases, r.Phase)
		if r.Seed != 7 || r.Devices != 1 || !cmp.Equal([]string{"amqp"}, r.Transports) {
			t.Errorf("report %+v", r)
		}
		if r.Phase == SoakEnd && (r.Passed == nil || !*r.Passed) {
			t.Errorf("end report: passed %v", r.Passed)
		}
	}
	if diff := cmp.Diff([]string{SoakStart, SoakEnd}, phases); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
}

func TestMainSoakRefusesOtherModes(t *testing.T) {
	for _, args := range [][]string{
		{"-soak", "1s", "-compare"},
		{"-soak", "1s", "-fleet", "10"},
		{"-soak", "1s", "-hub-url", "https://127.0.0.1:1", "-service", "x"},
		{"-soak", "1s", "-count", "5"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(t.Context(), args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "-soak") {
			t.Errorf("Main(%q) = %d, stderr %q; want 2 and a message about -soak", args, code, errOut.String())
		}
	}
}

func TestSoakOptionDefaults(t *testing.T) {
	for _, tt := range []struct {
		args       []string
		devices    int
		transports string
	}{
		{[]string{"-soak", "1m"}, 8, "mqtt,mqtt-ws,amqp,amqp-ws"},
		{[]string{"-soak", "1m", "-devices", "2", "-transport", "amqp-ws"}, 2, "amqp-ws"},
		{[]string{"-devices", "3"}, 3, "mqtt"},
	} {
		o, err := parseFlags(tt.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.devices != tt.devices || o.transports != tt.transports {
			t.Errorf("%q: devices %d, transports %q; want %d, %q", tt.args, o.devices, o.transports, tt.devices, tt.transports)
		}
	}
	o, err := parseFlags([]string{"-soak", "1m", "-seed", "0"}, io.Discard)
	if err != nil || o.seed != 0 {
		t.Errorf("an explicit -seed 0: %v, %v", o, err)
	}
}
