package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
)

// Config describes one run.
type Config struct {
	Transport string // "mqtt", "mqtt-ws", "amqp" or "amqp-ws"
	Device    string // one of the Kind constants
	// Devices is how many device connections the calls are spread over;
	// the Target needs at least that many identities. Default 1.
	Devices int
	// Concurrency is how many callers invoke at once. Default 1.
	Concurrency int
	// Count, when positive, is how many calls to make; otherwise the run
	// lasts Duration (default 5 s).
	Count    int
	Duration time.Duration
	// PayloadBytes is the size of the JSON request payload, echoed back.
	// 0 sends none. Default (negative) 100.
	PayloadBytes int
	// CallTimeout bounds each invocation. Default 10 s.
	CallTimeout time.Duration
	// ConnectTimeout bounds connecting the devices. Default 30 s.
	ConnectTimeout time.Duration
	// DeviceCommand, when set, runs the devices in a child process
	// started with this command line (the program, then its arguments),
	// which must serve ServeChildDevices on its standard input and output;
	// Result.CPUPerCall is then the child's CPU time per call, the
	// devices' alone. Empty: the devices run in this process, and their
	// CPU time is not measured.
	DeviceCommand []string
	// DeviceCPUProfile, with DeviceCommand, has the child write a CPU
	// profile of its devices to this file, from when they are connected
	// until they are closed.
	DeviceCPUProfile string
}

// DefaultPayloadBytes is the default echo payload size.
const DefaultPayloadBytes = 100

func (c Config) withDefaults() Config {
	setDefault(&c.Devices, 1)
	setDefault(&c.Concurrency, 1)
	setDefault(&c.Duration, 5*time.Second)
	setDefault(&c.CallTimeout, 10*time.Second)
	setDefault(&c.ConnectTimeout, 30*time.Second)
	if c.PayloadBytes < 0 {
		c.PayloadBytes = DefaultPayloadBytes
	}
	return c
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Payload returns a JSON value of exactly n bytes: nothing for 0, "0" for
// 1, otherwise a string of x's in quotes.
func Payload(n int) []byte {
	switch {
	case n <= 0:
		return nil
	case n == 1:
		return []byte("0")
	}
	return []byte(`"` + strings.Repeat("x", n-2) + `"`)
}

// Run connects cfg.Devices devices of cfg.Device kind to t, drives echo
// invocations through t.Service and returns the result. Failed calls are
// counted in Result.Errors; an error is returned only when the run could
// not take place.
func Run(ctx context.Context, t *Target, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	if len(t.ConnectionStrings) < cfg.Devices {
		return Result{}, fmt.Errorf("bench: %d devices asked for, %d identities available", cfg.Devices, len(t.ConnectionStrings))
	}
	ids := make([]string, cfg.Devices)
	for i := range ids {
		var err error
		if ids[i], err = t.DeviceID(i); err != nil {
			return Result{}, err
		}
	}
	devices, err := startDevices(ctx, t, cfg)
	if err != nil {
		return Result{}, err
	}
	defer devices.close()

	payload := Payload(cfg.PayloadBytes)
	want := echoPayload(payload)
	inv := &invoker{service: t.Service, ids: ids, payload: payload, want: want, timeout: cfg.CallTimeout}
	if err := warmUp(ctx, inv, cfg); err != nil {
		return Result{}, err
	}

	cpuBefore, cpuErr := devices.cpu()
	if cpuErr != nil && !errors.Is(cpuErr, ErrNoDeviceCPU) {
		return Result{}, cpuErr
	}
	latencies, calls, failures, elapsed := drive(ctx, inv, cfg)
	r := Result{
		Transport: cfg.Transport, Device: cfg.Device, Devices: cfg.Devices, Concurrency: cfg.Concurrency,
		PayloadBytes: cfg.PayloadBytes, Calls: calls, Errors: failures, Elapsed: elapsed,
		Latencies: Summarize(latencies),
	}
	if elapsed > 0 {
		r.Rate = float64(calls-failures) / elapsed.Seconds()
	}
	if cpuErr == nil && calls > 0 {
		cpuAfter, err := devices.cpu()
		if err != nil {
			return Result{}, err
		}
		r.CPUPerCall = (cpuAfter - cpuBefore) / time.Duration(calls)
	}
	return r, ctx.Err()
}

// startDevices connects the devices of a run: in a child process when
// cfg.DeviceCommand is set, otherwise in this one.
func startDevices(ctx context.Context, t *Target, cfg Config) (deviceSet, error) {
	if len(cfg.DeviceCommand) > 0 {
		return startChildDevices(ctx, t, cfg)
	}
	devices, _, err := connectAll(ctx, cfg, t)
	if err != nil {
		return nil, err
	}
	return localDevices(devices), nil
}

// warmUpAttempts bounds the calls each caller makes before the measured
// run until one succeeds: a hub may still be routing to the identity's
// previous connection for a moment after a device reconnects.
const warmUpAttempts = 20

// warmUpConnectTimeout is how long warm-up calls let the hub wait for
// the device to be online, in seconds.
const warmUpConnectTimeout = 5

// warmUp has each caller make calls until one succeeds, which also opens
// the HTTP connections the measured calls will reuse.
func warmUp(ctx context.Context, measured *invoker, cfg Config) error {
	inv := *measured
	inv.connectTimeout = warmUpConnectTimeout
	errs := make([]error, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range cfg.Concurrency {
		wg.Go(func() { // owned by warmUp, joined below
			for range warmUpAttempts {
				if _, errs[i] = inv.call(ctx, i); errs[i] == nil || ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bench: warm-up calls failed (%s %s): %w", cfg.Transport, cfg.Device, err)
		}
	}
	return nil
}

// connectAll connects the devices in parallel, returning them and their
// device ids, or closing those connected on the first failure.
func connectAll(ctx context.Context, cfg Config, t *Target) ([]Device, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	devices := make([]Device, cfg.Devices)
	ids := make([]string, cfg.Devices)
	errs := make([]error, cfg.Devices)
	var wg sync.WaitGroup
	for i := range cfg.Devices {
		wg.Go(func() { // owned by connectAll: one connect, joined below
			ids[i], errs[i] = t.DeviceID(i)
			if errs[i] == nil {
				devices[i], errs[i] = Connect(ctx, cfg.Device, cfg.Transport, t, t.ConnectionStrings[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(devices)
		return nil, nil, err
	}
	return devices, ids, nil
}

// closeAll closes the non-nil devices in parallel.
func closeAll(devices []Device) {
	var wg sync.WaitGroup
	for _, d := range devices {
		if d != nil {
			wg.Go(func() { d.Close() }) // owned by closeAll, joined below
		}
	}
	wg.Wait()
}

// invoker makes echo calls and checks their answers.
type invoker struct {
	service       *localhub.ServiceClient
	ids           []string
	payload, want []byte
	timeout       time.Duration
	// connectTimeout is how long the hub waits for an offline device, in
	// seconds; 0 fails at once, as measured calls should.
	connectTimeout int
}

// errWrongAnswer reports an echo that came back different.
var errWrongAnswer = errors.New("bench: wrong echo answer")

// call invokes the echo of device n mod len(ids) and returns its latency.
func (inv *invoker) call(ctx context.Context, n int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, inv.timeout)
	defer cancel()
	start := time.Now()
	res, err := inv.service.Invoke(ctx, inv.ids[n%len(inv.ids)], "", localhub.MethodCall{
		MethodName: EchoMethod, Payload: inv.payload, ResponseTimeoutInSeconds: int(inv.timeout / time.Second),
		ConnectTimeoutInSeconds: inv.connectTimeout,
	})
	elapsed := time.Since(start)
	if err != nil {
		return elapsed, err
	}
	if res.Status != 200 || !bytes.Equal(res.Payload, inv.want) {
		return elapsed, fmt.Errorf("%w: status %d", errWrongAnswer, res.Status)
	}
	return elapsed, nil
}

// drive runs cfg.Concurrency callers until cfg.Count calls are made or
// cfg.Duration has passed, and returns every latency, the number of calls
// and of failures, and the time taken.
func drive(ctx context.Context, inv *invoker, cfg Config) (latencies []time.Duration, calls, failures int, elapsed time.Duration) {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		wg       sync.WaitGroup
		start    = time.Now()
		deadline = start.Add(cfg.Duration)
	)
	for caller := range cfg.Concurrency {
		wg.Go(func() { // owned by drive: ends at the count, the deadline or ctx; joined below
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				n := int(next.Add(1)) - 1
				if cfg.Count > 0 && n >= cfg.Count || cfg.Count <= 0 && time.Now().After(deadline) {
					break
				}
				d, err := inv.call(ctx, caller+n)
				mine = append(mine, d)
				if err != nil {
					bad++
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			failures += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	return latencies, len(latencies), failures, time.Since(start)
}
