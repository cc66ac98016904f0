package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/device"
)

// Bounds of the delay a reboot request may ask for, in seconds.
const (
	defaultDelaySeconds = 10
	maxDelaySeconds     = 3600
)

// commandTimeout bounds the reboot command; systemctl returns as soon as
// the reboot is queued.
const commandTimeout = time.Minute

// clock is the scheduler's time source; tests replace it.
type clock interface {
	Now() time.Time
	// NewTimer returns a channel that receives once after d, and a
	// function that stops the timer.
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// commandFunc runs the reboot command; it must stop when ctx ends.
type commandFunc func(ctx context.Context) error

// rebootRequest is the payload of reboot; every field is optional.
type rebootRequest struct {
	DelaySeconds *int `json:"delaySeconds"`
}

// rebootScheduled answers reboot.
type rebootScheduled struct {
	ScheduledAt  string `json:"scheduledAt"` // RFC 3339
	DelaySeconds int    `json:"delaySeconds"`
}

// rebootCancelled answers cancelReboot.
type rebootCancelled struct {
	Cancelled   bool   `json:"cancelled"`
	ScheduledAt string `json:"scheduledAt"` // of the reboot that will not happen
}

// pendingReboot is a scheduled reboot.
type pendingReboot struct {
	at      time.Time
	cancel  context.CancelFunc // stops its timer, or its command once running
	running bool               // the timer fired: the command runs
}

// rebooter schedules at most one reboot at a time and owns its timer.
// Its methods are safe for concurrent use.
type rebooter struct {
	log     *slog.Logger
	clock   clock
	command commandFunc
	dryRun  bool // log instead of running the command

	mu      sync.Mutex
	pending *pendingReboot
	closed  bool
	wg      sync.WaitGroup // the goroutine of the pending reboot
}

func newRebooter(log *slog.Logger, c clock, command commandFunc, dryRun bool) *rebooter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &rebooter{log: log, clock: c, command: command, dryRun: dryRun}
}

// methods returns the direct methods reboot (optional payload
// {"delaySeconds": 0-3600}) and cancelReboot.
func (r *rebooter) methods() *device.MethodMux {
	mux := device.NewMethodMux()
	mux.HandleFunc("reboot", r.reboot)
	mux.HandleFunc("cancelReboot", r.cancelReboot)
	return mux
}

// parseDelay reads the delay of a reboot request: the default when the
// payload or its field is missing, a 400 *device.MethodError when it is
// not an integer from 0 to maxDelaySeconds.
func parseDelay(req *device.MethodRequest) (int, error) {
	if len(req.Payload) == 0 || string(req.Payload) == "null" {
		return defaultDelaySeconds, nil
	}
	var args rebootRequest
	if err := req.Unmarshal(&args); err != nil {
		return 0, err
	}
	if args.DelaySeconds == nil {
		return defaultDelaySeconds, nil
	}
	if d := *args.DelaySeconds; d < 0 || d > maxDelaySeconds {
		return 0, device.Errorf(400, "delaySeconds must be an integer from 0 to %d", maxDelaySeconds)
	}
	return *args.DelaySeconds, nil
}

// reboot schedules a reboot and answers at once; 409 if one is pending.
func (r *rebooter) reboot(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
	delay, err := parseDelay(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, device.Errorf(503, "the program is stopping")
	}
	if p := r.pending; p != nil {
		return nil, device.Errorf(409, "a reboot is already scheduled for %s", rfc3339(p.at))
	}
	d := time.Duration(delay) * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	p := &pendingReboot{at: r.clock.Now().Add(d), cancel: cancel}
	fired, stop := r.clock.NewTimer(d)
	r.pending = p
	r.wg.Add(1)
	// Owned by r: ends when the timer fires and the command returns, or
	// when p.cancel is called (cancelReboot, shutdown); joined by shutdown.
	go r.await(ctx, p, fired, stop)
	r.log.Info("reboot scheduled", "at", rfc3339(p.at), "delay", d, "dry_run", r.dryRun)
	return device.JSONResponse(200, rebootScheduled{ScheduledAt: rfc3339(p.at), DelaySeconds: delay})
}

// await waits for p's timer, then reboots, unless p is cancelled first.
func (r *rebooter) await(ctx context.Context, p *pendingReboot, fired <-chan time.Time, stop func() bool) {
	defer r.wg.Done()
	defer p.cancel()
	select {
	case <-ctx.Done():
		stop()
		return
	case <-fired:
	}
	r.mu.Lock()
	if r.pending != p { // cancelled as the timer fired
		r.mu.Unlock()
		return
	}
	p.running = true
	r.mu.Unlock()

	r.run(ctx)

	r.mu.Lock()
	if r.pending == p {
		r.pending = nil
	}
	r.mu.Unlock()
}

// run runs the reboot command, or only logs in dry-run mode.
func (r *rebooter) run(ctx context.Context) {
	if r.dryRun {
		r.log.Info("dry run: the device would reboot now")
		return
	}
	r.log.Info("rebooting")
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if err := r.command(ctx); err != nil {
		r.log.Error("the reboot command failed", "err", err)
	}
}

// cancelReboot cancels the pending reboot; 409 if there is none or its
// command already runs.
func (r *rebooter) cancelReboot(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending
	switch {
	case p == nil:
		return nil, device.Errorf(409, "no reboot is pending")
	case p.running:
		return nil, device.Errorf(409, "the reboot is under way")
	}
	r.pending = nil
	p.cancel()
	r.log.Info("reboot cancelled", "at", rfc3339(p.at))
	return device.JSONResponse(200, rebootCancelled{Cancelled: true, ScheduledAt: rfc3339(p.at)})
}

// shutdown cancels the pending reboot (and stops its command if it runs),
// refuses new ones, and waits for its goroutine to end.
func (r *rebooter) shutdown() {
	r.mu.Lock()
	r.closed = true
	if p := r.pending; p != nil {
		r.pending = nil
		p.cancel()
		r.log.Info("stopping: the pending reboot is cancelled", "at", rfc3339(p.at))
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
