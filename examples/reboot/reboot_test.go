package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/transporttest"
	"github.com/google/go-cmp/cmp"
)

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock whose timers fire only when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

type fakeTimer struct {
	d       time.Duration
	c       chan time.Time // buffered 1
	stopped bool
}

func (c *fakeClock) Now() time.Time { return testNow }

func (c *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := &fakeTimer{d: d, c: make(chan time.Time, 1)}
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	return t.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.stopped = true
		return true
	}
}

// fire fires the latest timer.
func (c *fakeClock) fire() {
	c.mu.Lock()
	t := c.timers[len(c.timers)-1]
	c.mu.Unlock()
	t.c <- testNow.Add(t.d)
}

// delays returns the durations of the timers started, and whether each
// was stopped.
func (c *fakeClock) delays() (d []time.Duration, stopped []bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		d = append(d, t.d)
		stopped = append(stopped, t.stopped)
	}
	return d, stopped
}

// countingCommand counts its runs and fails with err.
type countingCommand struct {
	mu   sync.Mutex
	runs int
	err  error
}

func (c *countingCommand) run(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs++
	return c.err
}

func (c *countingCommand) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs
}

// TestRebootMethods drives the methods through the SDK's fake hub. The
// timers never fire here: the command must not run.
func TestRebootMethods(t *testing.T) {
	clk := &fakeClock{}
	cmd := &countingCommand{}
	r := newRebooter(slog.New(slog.NewTextHandler(t.Output(), nil)), clk, cmd.run, false)
	fake := transporttest.NewFake(nil)
	cred, err := sas.NewKeyCredential("MDEyMzQ1Njc4OWFiY2RlZg==", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	client, err := device.NewClient("hub.example", "pi-1", cred, &device.ClientOptions{Transport: fake})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), r.methods()) }() // joined below
	defer func() {
		client.Close()
		if err := <-done; !errors.Is(err, device.ErrClientClosed) {
			t.Errorf("Run = %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	type answer struct {
		Status int
		Body   string
	}
	steps := []struct {
		method, payload string
		want            answer
	}{
		{"cancelReboot", "", answer{409, `{"error":"no reboot is pending"}`}},
		{"reboot", `{"delaySeconds":-1}`, answer{400, `{"error":"delaySeconds must be an integer from 0 to 3600"}`}},
		{"reboot", `{"delaySeconds":3601}`, answer{400, `{"error":"delaySeconds must be an integer from 0 to 3600"}`}},
		{"reboot", `{"delaySeconds":1.5}`, answer{400, `{"error":"invalid payload: \"delaySeconds\" must be a whole number that fits, not 1.5"}`}},
		{"reboot", `{"delaySeconds":"soon"}`, answer{400, `{"error":"invalid payload: \"delaySeconds\" must be a number, not a string"}`}},
		{"reboot", `[1]`, answer{400, `{"error":"invalid payload: the payload must be a JSON object, not an array"}`}},
		{"reboot", `{"delaySeconds":30}`, answer{200, `{"scheduledAt":"2026-05-01T12:00:30Z","delaySeconds":30}`}},
		{"reboot", `{"delaySeconds":5}`, answer{409, `{"error":"a reboot is already scheduled for 2026-05-01T12:00:30Z"}`}},
		{"cancelReboot", "", answer{200, `{"cancelled":true,"scheduledAt":"2026-05-01T12:00:30Z"}`}},
		{"cancelReboot", "", answer{409, `{"error":"no reboot is pending"}`}},
		{"reboot", "", answer{200, `{"scheduledAt":"2026-05-01T12:00:10Z","delaySeconds":10}`}},
		{"reboot", "", answer{409, `{"error":"a reboot is already scheduled for 2026-05-01T12:00:10Z"}`}},
		{"cancelReboot", "", answer{200, `{"cancelled":true,"scheduledAt":"2026-05-01T12:00:10Z"}`}},
		{"reboot", `{}`, answer{200, `{"scheduledAt":"2026-05-01T12:00:10Z","delaySeconds":10}`}},
		{"cancelReboot", "", answer{200, `{"cancelled":true,"scheduledAt":"2026-05-01T12:00:10Z"}`}},
		{"reboot", `{"delaySeconds":0}`, answer{200, `{"scheduledAt":"2026-05-01T12:00:00Z","delaySeconds":0}`}},
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
		if diff := cmp.Diff(s.want, answer{status, string(body)}); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", s.method, s.payload, diff)
		}
	}

	// The last reboot is still pending: shutdown cancels it and joins.
	r.shutdown()
	if n := cmd.count(); n != 0 {
		t.Errorf("the command ran %d times, want 0", n)
	}
	delays, stopped := clk.delays()
	wantDelays := []time.Duration{30 * time.Second, 10 * time.Second, 10 * time.Second, 0}
	if diff := cmp.Diff(wantDelays, delays); diff != "" {
		t.Errorf("timers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{true, true, true, true}, stopped); diff != "" {
		t.Errorf("timers stopped (-want +got):\n%s", diff)
	}
	if _, err := r.reboot(ctx, &device.MethodRequest{}); !isStatus(err, 503) {
		t.Errorf("reboot after shutdown = %v, want 503", err)
	}
}

func isStatus(err error, status int) bool {
	var me *device.MethodError
	return errors.As(err, &me) && me.Status == status
}

// TestRebootRunsOnceAfterTheDelay fires the timer and checks the command
// ran exactly once, and only then.
func TestRebootRunsOnceAfterTheDelay(t *testing.T) {
	tests := []struct {
		name     string
		dryRun   bool
		cmdErr   error
		wantRuns int
	}{
		{"reboots", false, nil, 1},
		{"command fails", false, errors.New("access denied"), 1},
		{"dry run runs nothing", true, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := &fakeClock{}
				cmd := &countingCommand{err: tt.cmdErr}
				r := newRebooter(nil, clk, cmd.run, tt.dryRun)
				defer r.shutdown()
				if _, err := r.reboot(t.Context(), &device.MethodRequest{Payload: []byte(`{"delaySeconds":60}`)}); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				if n := cmd.count(); n != 0 {
					t.Fatalf("the command ran %d times before the delay", n)
				}
				clk.fire()
				synctest.Wait() // the scheduler's goroutine has run the command and ended
				if n := cmd.count(); n != tt.wantRuns {
					t.Errorf("the command ran %d times, want %d", n, tt.wantRuns)
				}
				// Done (or failed): nothing is pending any more.
				if _, err := r.cancelReboot(t.Context(), nil); !isStatus(err, 409) {
					t.Errorf("cancelReboot after the reboot = %v, want 409", err)
				}
				if _, err := r.reboot(t.Context(), &device.MethodRequest{}); err != nil {
					t.Errorf("a new reboot after the first = %v", err)
				}
			})
		})
	}
}

// TestCancelWhileRunning checks that a running command cannot be
// cancelled, and that shutdown stops it through its context.
func TestCancelWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &fakeClock{}
		started := make(chan struct{})
		stopped := make(chan error, 1)
		command := func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			stopped <- ctx.Err()
			return ctx.Err()
		}
		r := newRebooter(nil, clk, command, false)
		if _, err := r.reboot(t.Context(), &device.MethodRequest{}); err != nil {
			t.Fatal(err)
		}
		clk.fire()
		<-started
		if _, err := r.cancelReboot(t.Context(), nil); !isStatus(err, 409) {
			t.Errorf("cancelReboot while the command runs = %v, want 409", err)
		}
		if _, err := r.reboot(t.Context(), &device.MethodRequest{}); !isStatus(err, 409) {
			t.Errorf("reboot while the command runs = %v, want 409", err)
		}
		r.shutdown()
		if err := <-stopped; !errors.Is(err, context.Canceled) {
			t.Errorf("the command's context ended with %v, want Canceled", err)
		}
	})
}

// TestRebootWithTheSystemClock checks the real timer in a bubble: waiting
// for the command lets the bubble's clock jump to the timer, and the
// command runs exactly when the delay has passed.
func TestRebootWithTheSystemClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ran := make(chan time.Time, 1)
		command := func(context.Context) error {
			ran <- time.Now()
			return nil
		}
		r := newRebooter(nil, systemClock{}, command, false)
		defer r.shutdown()
		start := time.Now()
		if _, err := r.reboot(t.Context(), &device.MethodRequest{Payload: []byte(`{"delaySeconds":7}`)}); err != nil {
			t.Fatal(err)
		}
		if got := (<-ran).Sub(start); got != 7*time.Second {
			t.Errorf("the command ran after %v, want 7s", got)
		}
	})
}
