package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/deviceflag"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/internal/slowpath"
)

// SoakConfig describes a soak run. Zero fields take the defaults.
type SoakConfig struct {
	// Transports are those the devices use. Default: all four.
	Transports []string
	// Devices is how many devices run on each transport, each behind a
	// fault proxy of its own. Default 8.
	Devices int
	// Callers is how many callers invoke each device, one call at a time
	// each. Default 2.
	Callers int
	// Duration is how long faults are injected; the quiet period follows.
	// Default 10 min.
	Duration time.Duration
	// Quiet bounds the quiet period after the faults: each device must
	// answer a call made after the faults stopped within it. Default 12
	// keep-alives, at least a minute.
	Quiet time.Duration
	// ReportEvery is the period of progress reports. Default 30 s.
	ReportEvery time.Duration
	// Seed seeds every random choice: each device's faults and their
	// lengths, the hub's restarts, each caller's payload sizes, handler
	// delays and timeouts. A seed draws the same sequences again; when
	// each event happens depends on the machine.
	Seed uint64
	// KeepAlive is the clients' keep-alive. The faults' lengths, the hub's
	// downtime at a restart and the clients' backoff (full jitter, up to
	// one keep-alive) scale with it. Default 5 s.
	KeepAlive time.Duration
	// FaultGap is the mean pause between two faults on a device. Default
	// 20 s.
	FaultGap time.Duration
	// RestartGap is the mean time between two restarts of the hub.
	// Default 90 s.
	RestartGap time.Duration
	// ConnectTimeouts and ResponseTimeouts are the
	// connectTimeoutInSeconds and responseTimeoutInSeconds that mixed
	// calls draw from. Defaults: 0, 0, one and three keep-alives (in whole
	// seconds); 5, 10 and 30. The hub takes response timeouts from 5 s.
	ConnectTimeouts, ResponseTimeouts []int
	// Logger receives the soak's events: wrong answers and devices that
	// did not recover at Error, hub restarts at Info, each fault at Debug.
	// The hub's and the clients' records of Warn and above go to it too.
	// Nil discards them.
	Logger *slog.Logger

	// handler, when set, replaces the devices' handler (tests).
	handler device.MethodHandler
}

func (c SoakConfig) withDefaults() SoakConfig {
	if len(c.Transports) == 0 {
		c.Transports = deviceflag.TransportNames
	}
	setDefault(&c.Devices, 8)
	setDefault(&c.Callers, 2)
	setDefault(&c.Duration, 10*time.Minute)
	setDefault(&c.ReportEvery, 30*time.Second)
	setDefault(&c.KeepAlive, 5*time.Second)
	setDefault(&c.Quiet, max(time.Minute, 12*c.KeepAlive))
	setDefault(&c.FaultGap, 20*time.Second)
	setDefault(&c.RestartGap, 90*time.Second)
	if len(c.ConnectTimeouts) == 0 {
		ka := int((c.KeepAlive + time.Second - 1) / time.Second)
		c.ConnectTimeouts = []int{0, 0, ka, 3 * ka}
	}
	if len(c.ResponseTimeouts) == 0 {
		c.ResponseTimeouts = []int{5, 10, 30}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// soakConnectTimeout bounds the devices' first connection and first
// answer, before any fault.
const soakConnectTimeout = time.Minute

// soakSettle bounds the wait for goroutines to end after everything is
// closed.
const soakSettle = 30 * time.Second

// Random streams: each goroutine that draws gets a generator of its own,
// from the seed and a stream number, so that its sequence does not depend
// on the others.
const (
	streamRestarts = 1
	streamProbes   = 1 << 20
	streamFaults   = 2 << 20
	streamCallers  = 3 << 20
)

// soak is one soak run.
type soak struct {
	cfg      SoakConfig
	log      *slog.Logger // the soak's events
	partsLog *slog.Logger // the hub's and clients': Warn and above
	hub      *soakHub
	service  *localhub.ServiceClient
	devices  []*soakDevice
	counters soakCounters
	start    time.Time // when the devices were connected
	abort    context.CancelCauseFunc
}

func (s *soak) rng(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(s.cfg.Seed, stream)) }

// Soak runs cfg.Devices SDK clients on each of cfg.Transports against a
// local hub of its own, each behind its own fault proxy, while callers
// invoke SoakMethod on them continuously through the hub's service API
// and check every answer against its call. For cfg.Duration it injects
// faults at random into each device's proxy (resets, black holes shorter
// and longer than the keep-alive, stalls, slow links) and restarts the
// hub; then it stops the faults and waits, up to cfg.Quiet, for every
// device to answer again, and calls each once more. Last it closes the
// clients, the proxies and the hub, and measures what is left.
//
// report receives the start report once the devices are connected, a
// progress report every cfg.ReportEvery, and the end report, which Soak
// also returns; it is never called concurrently. The soak failed when the
// end report's Failures are not empty: a wrong answer, a device that did
// not recover, a client whose Run ended by itself, or goroutines or heap
// beyond SoakGoroutineSlack and SoakHeapSlack over the baseline once
// everything is closed. An error is returned when the soak could not run
// (its hub or devices did not start, or the hub could not restart) or was
// interrupted by ctx.
func Soak(ctx context.Context, cfg SoakConfig, report func(SoakReport)) (SoakReport, error) {
	cfg = cfg.withDefaults()
	for _, name := range cfg.Transports {
		if _, err := slowpath.Dialer(name, sendBuffer); err != nil {
			return SoakReport{}, fmt.Errorf("bench: soak: %w", err)
		}
	}
	if report == nil {
		report = func(SoakReport) {}
	}
	s := &soak{cfg: cfg, log: cfg.Logger, partsLog: slog.New(atLeast{cfg.Logger.Handler(), slog.LevelWarn})}
	baseline := soakMemory(MeasureMemory())
	dir, err := os.MkdirTemp("", "bench-soak-")
	if err != nil {
		return SoakReport{}, fmt.Errorf("bench: soak: %w", err)
	}
	defer os.RemoveAll(dir)

	end, err := s.run(ctx, dir, report, baseline)
	closeErrs := s.closeAll()
	if end.Phase != SoakEnd {
		return end, err
	}
	closed := settle(baseline.Goroutines + SoakGoroutineSlack)
	end.Memory, end.Baseline = closed, &baseline
	for _, e := range closeErrs {
		end.Failures = append(end.Failures, e.Error())
	}
	if grew := closed.Goroutines - baseline.Goroutines; grew > SoakGoroutineSlack {
		end.Failures = append(end.Failures, fmt.Sprintf("%d more goroutines once everything was closed (bound %d)", grew, SoakGoroutineSlack))
	}
	if grew := closed.Heap - baseline.Heap; grew > SoakHeapSlack {
		end.Failures = append(end.Failures, fmt.Sprintf("heap grew by %s once everything was closed (bound %s)", mib(grew), mib(SoakHeapSlack)))
	}
	report(end)
	return end, err
}

// run sets up the hub and the devices, runs the soak and returns its end
// report, not yet with the memory once closed; closeAll undoes the set-up.
// Before the start report is made, it returns only an error.
func (s *soak) run(ctx context.Context, dir string, report func(SoakReport), baseline SoakMemory) (SoakReport, error) {
	if err := s.setUp(ctx, dir); err != nil {
		return SoakReport{}, err
	}
	start := s.snapshot(SoakStart)
	start.Baseline = &baseline
	report(start)

	run, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	s.abort = abort
	faults, stopFaults := context.WithCancel(run)
	defer stopFaults()
	stopCalls, stopReports := make(chan struct{}), make(chan struct{})
	var callers, injectors, reporter sync.WaitGroup
	for i, d := range s.devices {
		for c := range s.cfg.Callers {
			rng := s.rng(streamCallers + uint64(i*s.cfg.Callers+c))
			callers.Go(func() { s.callLoop(run, stopCalls, d, fmt.Sprintf("c%d", c), rng) }) // owned by run: ends at stopCalls, joined below
		}
		rng := s.rng(streamFaults + uint64(i))
		injectors.Go(func() { s.faultLoop(faults, d, rng) }) // owned by run: ends at stopFaults, joined below
	}
	injectors.Go(func() { s.restartLoop(faults, run, s.rng(streamRestarts)) }) // owned by run: ends at stopFaults, joined below
	reporter.Go(func() { s.reportLoop(stopReports, report) })                  // owned by run: ends at stopReports, joined below

	pause(run, nil, s.cfg.Duration)
	stopFaults()
	injectors.Wait()

	// The quiet period: each device is probed until it answers.
	faultsEnded := time.Now()
	s.log.Info("soak: faults stopped; waiting for every device to answer", "within", s.cfg.Quiet)
	var probes sync.WaitGroup
	for i, d := range s.devices {
		rng := s.rng(streamProbes + uint64(i))
		probes.Go(func() { s.probe(run, d, faultsEnded, faultsEnded.Add(s.cfg.Quiet), rng) }) // owned by run: ends at its answer or the deadline, joined below
	}
	probes.Wait()
	close(stopCalls)
	callers.Wait()
	close(stopReports)
	reporter.Wait()

	unrecovered := s.lastCalls(run)
	end := s.snapshot(SoakEnd)
	running := end.Memory
	end.Running = &running
	for _, d := range s.devices {
		if d.recovered {
			end.Recovered++
			end.RecoveryMax = max(end.RecoveryMax, d.recovery)
		}
	}
	end.Unrecovered = unrecovered
	if end.WrongAnswers > 0 {
		end.Failures = append(end.Failures, fmt.Sprintf("%d wrong answers", end.WrongAnswers))
	}
	if len(unrecovered) > 0 {
		end.Failures = append(end.Failures, fmt.Sprintf("%d devices did not recover: %v", len(unrecovered), unrecovered))
	}
	err := context.Cause(run) // nil unless ctx ended or the hub could not restart
	if err != nil {
		end.Failures = append(end.Failures, "interrupted: "+err.Error())
	}
	return end, err
}

// setUp starts the hub, the service client and the devices, and waits
// until every device has connected and answered a call.
func (s *soak) setUp(ctx context.Context, dir string) error {
	var ids, transports []string
	for _, name := range s.cfg.Transports {
		for i := range s.cfg.Devices {
			ids = append(ids, fmt.Sprintf("soak-%s-%02d", name, i))
			transports = append(transports, name)
		}
	}
	var err error
	if s.hub, err = startSoakHub(ctx, dir, ids, s.partsLog); err != nil {
		return err
	}
	// The service client outlives the hub's restarts: it dials the same
	// port and signs with the same key.
	first := s.hub.hub
	if s.service, err = localhub.NewServiceClient("https://"+first.HTTPSAddr(), first.ServiceConnectionString(), first.CertPool()); err != nil {
		return err
	}
	roots := first.CertPool()
	for i, id := range ids {
		cs, err := first.ConnectionString(id)
		if err != nil {
			return fmt.Errorf("bench: soak: %w", err)
		}
		d, err := s.startDevice(id, transports[i], cs, roots)
		if err != nil {
			return err
		}
		s.devices = append(s.devices, d)
	}

	ctx, cancel := context.WithTimeout(ctx, soakConnectTimeout)
	defer cancel()
	for _, d := range s.devices {
		select {
		case <-d.connected:
		case err := <-d.done:
			d.done <- err // for close
			return fmt.Errorf("bench: soak: %s stopped: %w", d.id, err)
		case <-ctx.Done():
			return fmt.Errorf("bench: soak: %s did not connect: %w", d.id, context.Cause(ctx))
		}
	}
	errs := make([]error, len(s.devices))
	var wg sync.WaitGroup
	for i, d := range s.devices {
		rng := s.rng(streamProbes + uint64(i))
		wg.Go(func() { // owned by setUp: one device's first answer, joined below
			c := s.newCall(d, "first", 0, rng, false)
			c.connect = warmUpConnectTimeout
			if outcome := s.invoke(ctx, c); outcome != outcomeOK {
				errs[i] = fmt.Errorf("bench: soak: %s did not answer its first call: %s", d.id, outcome)
			}
		})
	}
	wg.Wait()
	s.counters = soakCounters{} // the soak's counts start now
	s.start = time.Now()
	return errors.Join(errs...)
}

// lastCalls calls every device once more, promptly, after the quiet
// period, and returns those that did not recover or did not answer it
// right.
func (s *soak) lastCalls(ctx context.Context) []string {
	failed := make([]string, len(s.devices))
	var wg sync.WaitGroup
	for i, d := range s.devices {
		rng := s.rng(streamProbes + uint64(i))
		wg.Go(func() { // owned by lastCalls: one call, joined below
			if !d.recovered {
				failed[i] = d.id + " (no answer within the quiet period)"
				return
			}
			if outcome := s.invoke(ctx, s.newCall(d, "last", 0, rng, false)); outcome != outcomeOK {
				failed[i] = fmt.Sprintf("%s (last call: %s)", d.id, outcome)
			}
		})
	}
	wg.Wait()
	failed = slices.DeleteFunc(failed, func(f string) bool { return f == "" })
	for _, f := range failed {
		s.log.Error("soak: device did not recover", "device", f)
	}
	return failed
}

// reportLoop makes a progress report every ReportEvery until stop.
func (s *soak) reportLoop(stop <-chan struct{}, report func(SoakReport)) {
	tick := time.NewTicker(s.cfg.ReportEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			report(s.snapshot(SoakProgress))
		case <-stop:
			return
		}
	}
}

// snapshot returns a report of phase with the counts so far and the
// memory now.
func (s *soak) snapshot(phase string) SoakReport {
	r := SoakReport{
		Phase: phase, Seed: s.cfg.Seed, Transports: s.cfg.Transports,
		Devices: len(s.devices), Callers: len(s.devices) * s.cfg.Callers,
	}
	if !s.start.IsZero() {
		r.Elapsed = time.Since(s.start)
	}
	s.counters.fill(&r)
	for _, d := range s.devices {
		st := d.client.Stats()
		r.AnswersLost += st.AnswersLost
		r.RequestsDropped += st.RequestsDropped
		r.Reconnects += max(d.connects.Load()-1, 0)
	}
	r.Memory = soakMemory(MeasureMemory())
	return r
}

// closeAll closes the devices (their clients and proxies) and the hub,
// and returns what went wrong: clients whose Run had ended by itself.
func (s *soak) closeAll() []error {
	errs := make([]error, len(s.devices))
	var wg sync.WaitGroup
	for i, d := range s.devices {
		wg.Go(func() { errs[i] = d.close() }) // owned by closeAll, joined below
	}
	wg.Wait()
	s.devices = nil
	if s.hub != nil {
		s.hub.Close()
	}
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

// settle waits, up to soakSettle, until at most goroutines run, and
// returns the memory then.
func settle(goroutines int) SoakMemory {
	deadline := time.Now().Add(soakSettle)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		// Polling is the only way to watch other goroutines end.
		time.Sleep(50 * time.Millisecond)
	}
	return soakMemory(MeasureMemory())
}

// atLeast passes on the records of level and above.
type atLeast struct {
	slog.Handler
	level slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(attrs), h.level}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h.Handler.WithGroup(name), h.level}
}
