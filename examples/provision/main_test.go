package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/google/go-cmp/cmp"
)

// testHub is an in-process hub with a symmetric-key enrollment group, and
// the flags that reach its DPS over MQTT.
func testHub(t *testing.T) (*hubtest.Hub, *hubtest.Enrollment, []string) {
	t.Helper()
	hub := hubtest.New(t, nil)
	group, err := hub.AddEnrollmentGroup("fans", nil)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, hub.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return hub, group, []string{"-provisioning-host", hub.HostName(), "-port", strconv.Itoa(hub.Port(hubtest.MQTT)), "-ca", caFile}
}

// running is the program running in the background.
type running struct {
	lines chan string // its stdout, line by line
	done  chan error  // run's result
	stop  context.CancelFunc

	once sync.Once
	err  error
}

// wait returns run's result, once it has returned.
func (r *running) wait() error {
	r.once.Do(func() { r.err = <-r.done })
	return r.err
}

func start(t *testing.T, args []string, env map[string]string) *running {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	r := &running{lines: make(chan string, 8), done: make(chan error, 1), stop: stop}
	out, w := io.Pipe()
	go func() { // owned by the test: ends when run returns, received from r.done
		err := run(ctx, args, func(k string) string { return env[k] }, w, io.Discard)
		w.Close()
		r.done <- err
	}()
	go func() { // owned by the test: ends when run's stdout closes
		s := bufio.NewScanner(out)
		for s.Scan() {
			r.lines <- s.Text()
		}
		close(r.lines)
	}()
	t.Cleanup(func() {
		stop()
		r.wait()
	})
	return r
}

func waitLine(t *testing.T, r *running) string {
	t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			t.Fatalf("the program ended without printing its assignment: %v", r.wait())
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("no assignment printed within 30 s")
		panic("unreachable")
	}
}

// TestProvisionAndServe: with the group key in the environment, the
// program registers, prints its assignment as one JSON line, and answers
// echo through the REST API; with -cache, a second start connects without
// registering.
func TestProvisionAndServe(t *testing.T) {
	hub, group, args := testHub(t)
	cache := filepath.Join(t.TempDir(), "assignment.json")
	env := map[string]string{envIDScope: hub.IDScope(), envRegistrationID: "fan-17", envGroupKey: group.PrimaryKey()}
	for round := range 2 {
		r := start(t, append(args, "-cache", cache), env)
		var got map[string]string
		if err := json.Unmarshal([]byte(waitLine(t, r)), &got); err != nil {
			t.Fatalf("round %d: the printed line is not JSON: %v", round, err)
		}
		if diff := cmp.Diff(map[string]string{"assignedHub": hub.HostName(), "deviceId": "fan-17"}, got); diff != "" {
			t.Errorf("round %d: assignment (-want +got):\n%s", round, diff)
		}
		dev, err := hub.Device("fan-17")
		if err != nil {
			t.Fatal(err)
		}
		res, err := dev.Invoke(t.Context(), "echo", []byte(`{"round":`+strconv.Itoa(round)+`}`), &hubtest.InvokeOptions{ConnectTimeout: 20 * time.Second})
		if err != nil || res.Status != 200 || string(res.Payload) != `{"round":`+strconv.Itoa(round)+`}` {
			t.Fatalf("round %d: echo = %+v, %v", round, res, err)
		}
		r.stop()
		if err := r.wait(); err != nil {
			t.Errorf("round %d: run after a stop = %v, want nil", round, err)
		}
		// The next round's call must not reach this round's closing
		// connection.
		if err := dev.WaitDisconnected(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(cache); err != nil {
			t.Errorf("round %d: no cached assignment: %v", round, err)
		}
		// Without its enrollment the device can only start again from
		// the cache.
		if round == 0 {
			if err := group.Delete(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestWrongKeyEndsFast: a wrong key ends the program within 15 s with an
// error that says it was refused as unauthorized.
func TestWrongKeyEndsFast(t *testing.T) {
	hub, _, args := testHub(t)
	begin := time.Now()
	err := run(t.Context(), append(args, "-id-scope", hub.IDScope(), "-registration-id", "fan-18"),
		func(k string) string { return map[string]string{envGroupKey: "d3Jvbmcga2V5IGZvciB0aGUgZ3JvdXA="}[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Errorf("run with a wrong key = %v, want an error naming 401 and unauthorized", err)
	}
	if took := time.Since(begin); took > 15*time.Second {
		t.Errorf("a wrong key took %v to end the program", took)
	}
}

// TestFlags: what the program refuses before it connects.
func TestFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no scope", []string{"-registration-id", "r", "-key", "a2V5"}, nil, "ID scope"},
		{"no registration id", []string{"-id-scope", "s"}, nil, "registration ID"},
		{"no key", []string{"-id-scope", "s", "-registration-id", "r"}, nil, "no key"},
		{"both keys", []string{"-id-scope", "s", "-registration-id", "r", "-key", "a2V5"}, map[string]string{envGroupKey: "a2V5"}, "both"},
		{"unknown transport", []string{"-id-scope", "s", "-registration-id", "r", "-key", "a2V5", "-transport", "amqp"}, nil, "transport"},
		{"bad group key", []string{"-id-scope", "s", "-registration-id", "r", "-group-key", "not base64!"}, nil, "group key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(t.Context(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run = %v, want an error about %q", err, tt.want)
			}
		})
	}
}
