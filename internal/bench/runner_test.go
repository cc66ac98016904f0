package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRunCountsCalls(t *testing.T) {
	target := startHub(t, 2)
	for _, kind := range []string{KindSDK, KindRaw} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			r, err := Run(ctx, target, Config{Transport: "mqtt", Device: kind, Devices: 2, Concurrency: 3, Count: 20, PayloadBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			want := Result{Transport: "mqtt", Device: kind, Devices: 2, Concurrency: 3, PayloadBytes: DefaultPayloadBytes, Calls: 20}
			got := r
			got.Elapsed, got.Rate, got.Latencies = 0, 0, Latencies{}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Run (-want +got):\n%s", diff)
			}
			if r.Rate <= 0 || r.P50 <= 0 || r.P50 > r.P90 || r.P90 > r.P99 || r.P99 > r.Max {
				t.Errorf("implausible measures: %v", r)
			}
		})
	}
}

func TestRunOverAMQP(t *testing.T) {
	target := startHub(t, 1)
	for _, transportName := range []string{"amqp", "amqp-ws"} {
		for _, kind := range []string{KindSDK, KindRaw} {
			t.Run(transportName+"/"+kind, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				r, err := Run(ctx, target, Config{Transport: transportName, Device: kind, Concurrency: 2, Count: 6, PayloadBytes: 0})
				if err != nil {
					t.Fatal(err)
				}
				if r.Calls != 6 || r.Errors != 0 {
					t.Errorf("Run = %v", r)
				}
			})
		}
	}
}

func TestRunNeedsIdentities(t *testing.T) {
	if _, err := Run(t.Context(), &Target{}, Config{Transport: "mqtt", Device: KindSDK}); err == nil {
		t.Error("Run without identities succeeded")
	}
}

func TestPairs(t *testing.T) {
	mqtt := []Pair{{KindSDK, KindRawAtLeastOnce, KindFloorAtLeastOnce, KindFloorHandoffAtLeastOnce}, {KindSDKAtMostOnce, KindRaw, KindFloor, KindFloorHandoff}}
	amqp := []Pair{{KindSDK, KindRawAtLeastOnce, "", ""}, {KindSDKAtMostOnce, KindRaw, "", ""}}
	for name, want := range map[string][]Pair{"mqtt": mqtt, "mqtt-ws": mqtt, "amqp": amqp, "amqp-ws": amqp} {
		if diff := cmp.Diff(want, Pairs(name)); diff != "" {
			t.Errorf("Pairs(%q) (-want +got):\n%s", name, diff)
		}
	}
}

func TestCompare(t *testing.T) {
	target := startHub(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, transportName := range []string{"mqtt-ws", "amqp"} {
		for _, pair := range Pairs(transportName) {
			var kinds []string
			c, err := Compare(ctx, target, Config{Transport: transportName, Count: 5, PayloadBytes: 10}, pair, 2, func(r Result) { kinds = append(kinds, r.Device) })
			if err != nil {
				t.Fatal(err)
			}
			want := []string{pair.SDK, pair.Raw, pair.Raw, pair.SDK}
			if pair.Floor != "" {
				want = []string{pair.SDK, pair.Raw, pair.Floor, pair.Handoff, pair.Handoff, pair.Floor, pair.Raw, pair.SDK}
			}
			if diff := cmp.Diff(want, kinds); diff != "" {
				t.Errorf("%s: run order (-want +got):\n%s", transportName, diff)
			}
			if c.Runs != 2 || c.SDK.Calls != 10 || c.Raw.Calls != 10 || c.P50Ratio <= 0 || c.RateRatio <= 0 ||
				c.SDKKind != pair.SDK || c.RawKind != pair.Raw || c.SDK.Errors != 0 || c.Raw.Errors != 0 {
				t.Errorf("%s: Compare = %+v", transportName, c)
			}
			if c.FloorKind != pair.Floor || pair.Floor != "" && (c.Floor.Calls != 10 || c.Floor.Errors != 0 || c.FloorP50Ratio <= 0 || c.FloorRateRatio <= 0) {
				t.Errorf("%s: Compare's floor = %+v", transportName, c)
			}
			if c.HandoffKind != pair.Handoff || pair.Handoff != "" && (c.Handoff.Device != pair.Handoff || c.Handoff.Calls != 10 || c.Handoff.Errors != 0 || c.HandoffP50Ratio <= 0 || c.HandoffRateRatio <= 0) {
				t.Errorf("%s: Compare's handoff floor = %+v", transportName, c)
			}
			if c.CPURatio != 0 || c.FloorCPURatio != 0 || c.HandoffCPURatio != 0 { // devices in this process: not measured
				t.Errorf("%s: CPU ratios %v, %v and %v without child devices", transportName, c.CPURatio, c.FloorCPURatio, c.HandoffCPURatio)
			}
		}
	}
}

// childDevicesCommand runs the devices of a test in a child process: the
// test binary, which TestMain turns into Main with -child-devices.
func childDevicesCommand(t *testing.T) []string {
	t.Helper()
	if !ChildDevicesSupported {
		t.Skip("no child devices on this platform")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, "-child-devices"}
}

func TestRunChildDevicesMeasuresCPU(t *testing.T) {
	target := startHub(t, 2)
	command := childDevicesCommand(t)
	for _, tt := range []struct{ kind, transport string }{{KindSDK, "mqtt"}, {KindFloor, "mqtt-ws"}, {KindFloorHandoffAtLeastOnce, "mqtt-ws"}, {KindRawAtLeastOnce, "amqp"}} {
		t.Run(tt.kind+"/"+tt.transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			profile := filepath.Join(t.TempDir(), "device.prof")
			r, err := Run(ctx, target, Config{Transport: tt.transport, Device: tt.kind, Devices: 2, Concurrency: 2, Count: 20, DeviceCommand: command, DeviceCPUProfile: profile})
			if err != nil {
				t.Fatal(err)
			}
			if r.Calls != 20 || r.Errors != 0 || r.CPUPerCall <= 0 || r.CPUPerCall > time.Second {
				t.Errorf("Run = %v, CPU per call %v", r, r.CPUPerCall)
			}
			if st, err := os.Stat(profile); err != nil || st.Size() == 0 {
				t.Errorf("device profile %s: %v, %v", profile, st, err)
			}
		})
	}
}

func TestRunChildDevicesFailures(t *testing.T) {
	target := startHub(t, 1)
	command := childDevicesCommand(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name   string
		target *Target
		cfg    Config
		want   string
	}{
		{"a device that cannot connect", target, Config{Transport: "amqp", Device: KindFloor}, "no floor device"},
		{"roots without PEM", &Target{Roots: target.Roots, ConnectionStrings: target.ConnectionStrings}, Config{Transport: "mqtt", Device: KindRaw}, "RootsPEM"},
		{"a command that is not a child", target, Config{Transport: "mqtt", Device: KindRaw, DeviceCommand: []string{"true"}}, "read reply"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.DeviceCommand == nil {
				cfg.DeviceCommand = command
			}
			cfg.Count = 1
			if _, err := Run(ctx, tt.target, cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestServeChildDevices(t *testing.T) {
	target := startHub(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	inW, outR, done := serveOnPipes(func(in io.Reader, out io.Writer) error { return ServeChildDevices(ctx, in, out) })
	enc, dec := json.NewEncoder(inW), json.NewDecoder(outR)
	spec := childDeviceSpec{Kind: KindFloor, Transport: "mqtt", MQTTPort: target.MQTTPort, RootsPEM: string(target.RootsPEM), ConnectionStrings: target.ConnectionStrings}
	var replies []childReply
	for _, v := range []any{spec, childRequest{Op: "cpu"}, childRequest{Op: "dance"}} {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		var r childReply
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		replies = append(replies, r)
	}
	if replies[0] != (childReply{}) || replies[1].CPU <= 0 && ChildDevicesSupported || !strings.Contains(replies[2].Error, "dance") {
		t.Errorf("replies %+v: want ready, a CPU time, an error about the unknown request", replies)
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, outR)
}

func TestFleetInProcess(t *testing.T) {
	target := startHub(t, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res, err := Fleet(ctx, target, FleetConfig{Clients: 5, ConnectParallelism: 2, HubInProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clients != 5 || res.Invoked != 5 || res.Errors != 0 || res.ConnectTime <= 0 || res.InvokeTime <= 0 || res.FileLimit == 0 {
		t.Errorf("Fleet = %+v", res)
	}
	if _, err := Fleet(ctx, target, FleetConfig{Clients: 6}); err == nil {
		t.Error("a fleet larger than the identities succeeded")
	}
}

func TestMainOneRunJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Main(ctx, []string{"-transport", "mqtt,mqtt-ws", "-device", "raw", "-count", "4", "-payload", "30", "-json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	type line struct {
		Transport string `json:"transport"`
		Device    string `json:"device"`
		Calls     int    `json:"calls"`
		Payload   int    `json:"payload_bytes"`
	}
	var got []string
	for _, r := range decodeLines[line](t, &out) {
		got = append(got, strings.Join([]string{r.Transport, r.Device}, " "))
		if r.Calls != 4 || r.Payload != 30 {
			t.Errorf("line %+v", r)
		}
	}
	if diff := cmp.Diff([]string{"mqtt raw", "mqtt-ws raw"}, got); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestMainCompareText(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	if code := Main(ctx, []string{"-compare", "-count", "3"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	wantPrefixes := []string{
		"mqtt     sdk  calls=3 ", "mqtt     raw-at-least-once calls=3 ", "mqtt     floor-at-least-once calls=3 ", "mqtt     floor-handoff-at-least-once calls=3 ",
		"compare  mqtt     sdk vs raw-at-least-once: ",
		"mqtt     sdk-at-most-once calls=3 ", "mqtt     raw  calls=3 ", "mqtt     floor calls=3 ", "mqtt     floor-handoff calls=3 ",
		"compare  mqtt     sdk-at-most-once vs raw: ",
	}
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(wantPrefixes), out.String())
	}
	for i, prefix := range wantPrefixes {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], prefix)
		}
		if ChildDevicesSupported && !strings.Contains(lines[i], "cpu") { // the devices ran in child processes
			t.Errorf("line %d = %q, without CPU figures", i, lines[i])
		}
		if strings.HasPrefix(prefix, "compare") && ChildDevicesSupported && !strings.Contains(lines[i], " cpu sdk/handoff=") {
			t.Errorf("line %d = %q, without the CPU ratio to the handoff floor", i, lines[i])
		}
	}
}

func TestMainBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-nope"},
		{"extra"},
		{"-service", "x"},
		{"-hub-url", "https://127.0.0.1:1"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(t.Context(), args, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("Main(%q) = %d, stderr %q; want 2 and a message", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := Main(t.Context(), []string{"-transport", "carrier-pigeon", "-count", "1"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "carrier-pigeon") {
		t.Errorf("unknown transport: exit %d, stderr %q", code, errOut.String())
	}
}

// serveOnPipes runs serve, the child side of a child process, on pipes
// that stand for its standard input and output. The test closes inW to
// end it, reads its result from done and then drains outR.
func serveOnPipes(serve func(in io.Reader, out io.Writer) error) (inW io.WriteCloser, outR io.Reader, done <-chan error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	result := make(chan error, 1)
	go func() { // owned by the test: ends when inW is closed, joined through done
		result <- serve(inR, outW)
		outW.Close()
	}()
	return inW, outR, result
}

func TestServeChildHub(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	inW, outR, done := serveOnPipes(func(in io.Reader, out io.Writer) error { return ServeChildHub(ctx, 3, in, out) })
	var info HubInfo
	if err := json.NewDecoder(outR).Decode(&info); err != nil {
		t.Fatal(err)
	}
	target, err := info.target()
	if err != nil {
		t.Fatal(err)
	}
	if len(target.ConnectionStrings) != 3 || target.MQTTPort == 0 || target.HTTPSPort == 0 {
		t.Errorf("target = %+v", target)
	}
	d, err := Connect(ctx, KindRaw, "mqtt", target, target.ConnectionStrings[2])
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	inW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, outR)
}

func TestMainWritesCPUProfile(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	file := filepath.Join(t.TempDir(), "cpu.prof")
	var out, errOut bytes.Buffer
	if code := Main(ctx, []string{"-count", "2", "-cpuprofile", file}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Errorf("profile %s: %v, %v", file, st, err)
	}
}

// decodeLines decodes the JSON values of r, one a line.
func decodeLines[T any](t *testing.T, r io.Reader) []T {
	t.Helper()
	var values []T
	dec := json.NewDecoder(r)
	for {
		var v T
		if err := dec.Decode(&v); err == io.EOF {
			return values
		} else if err != nil {
			t.Fatal(err)
		}
		values = append(values, v)
	}
}
