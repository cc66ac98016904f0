package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// FleetConfig describes a fleet run: many idle SDK clients over MQTT in
// this process.
type FleetConfig struct {
	// Clients is how many device clients to connect; the Target needs as
	// many identities.
	Clients int
	// ConnectParallelism caps the connections being set up at once.
	// Default 64.
	ConnectParallelism int
	// InvokeConcurrency caps the invocations in flight. Default 64.
	InvokeConcurrency int
	// ConnectTimeout bounds connecting the whole fleet; InvokeTimeout
	// bounds invoking it. Defaults 5 min and 2 min.
	ConnectTimeout, InvokeTimeout time.Duration
	// HubInProcess says the hub runs in this process, so that its memory
	// is counted with the clients'.
	HubInProcess bool
	// HubRSS, when set, reads the resident set of a hub running in another
	// process, to report its cost per session too.
	HubRSS func() (int64, error)
}

// FleetResult is what a fleet run measured.
type FleetResult struct {
	Clients             int           `json:"clients"`
	FileLimit           uint64        `json:"file_limit"`
	ConnectTime         time.Duration `json:"connect_ns"`
	HeapPerClient       int64         `json:"heap_per_client_bytes"`
	StackPerClient      int64         `json:"stack_per_client_bytes"`
	GoroutinesPerClient float64       `json:"goroutines_per_client"`
	RSSPerClient        int64         `json:"rss_per_client_bytes"`
	HubInProcess        bool          `json:"hub_in_process"`
	HubRSSPerSession    int64         `json:"hub_rss_per_session_bytes,omitempty"`
	InvokeTime          time.Duration `json:"invoke_ns"`
	Invoked             int           `json:"invoked"`
	Errors              int           `json:"errors"`
}

// Fleet targets, as examples/bench/README.md states them.
const (
	MaxHeapPerClient = 64 * 1024
	MaxFleetInvoke   = 30 * time.Second
)

// String is the one-line text form.
func (f FleetResult) String() string {
	where := "hub in another process"
	if f.HubInProcess {
		where = "hub in this process: its sessions are counted too"
	}
	hub := ""
	if f.HubRSSPerSession > 0 {
		hub = fmt.Sprintf(" hub-rss/session=%.1fKB", float64(f.HubRSSPerSession)/1024)
	}
	return fmt.Sprintf("fleet    clients=%d connect=%s heap/client=%.1fKB (target <= %dKB: %s) stack/client=%.1fKB goroutines/client=%.1f rss/client=%.1fKB%s invoke-all=%s (target < %s: %s) invoked=%d errors=%d fd-limit=%d (%s)",
		f.Clients, f.ConnectTime.Round(time.Millisecond),
		float64(f.HeapPerClient)/1024, MaxHeapPerClient/1024, verdict(f.HeapPerClient <= MaxHeapPerClient),
		float64(f.StackPerClient)/1024, f.GoroutinesPerClient, float64(f.RSSPerClient)/1024, hub,
		f.InvokeTime.Round(time.Millisecond), MaxFleetInvoke, verdict(f.InvokeTime < MaxFleetInvoke && f.Errors == 0),
		f.Invoked, f.Errors, f.FileLimit, where)
}

// fdReserve is the descriptors kept for other uses than the clients (and
// the hub's ends when it shares the process).
const fdReserve = 256

// Fleet connects cfg.Clients SDK clients over MQTT to t, measures what
// they cost idle, invokes echo once on each and closes them.
func Fleet(ctx context.Context, t *Target, cfg FleetConfig) (FleetResult, error) {
	setDefault(&cfg.ConnectParallelism, 64)
	setDefault(&cfg.InvokeConcurrency, 64)
	setDefault(&cfg.ConnectTimeout, 5*time.Minute)
	setDefault(&cfg.InvokeTimeout, 2*time.Minute)
	res := FleetResult{Clients: cfg.Clients, HubInProcess: cfg.HubInProcess}
	if cfg.Clients <= 0 {
		return res, fmt.Errorf("bench: fleet of %d clients", cfg.Clients)
	}
	if len(t.ConnectionStrings) < cfg.Clients {
		return res, fmt.Errorf("bench: fleet of %d clients, %d identities available", cfg.Clients, len(t.ConnectionStrings))
	}
	limit, err := RaiseFileLimit()
	if err != nil {
		return res, err
	}
	res.FileLimit = limit
	need := uint64(cfg.Clients + fdReserve)
	if cfg.HubInProcess {
		need += uint64(cfg.Clients)
	}
	if limit != 0 && limit < need {
		return res, fmt.Errorf("bench: a fleet of %d needs about %d open files, the limit is %d: raise it (ulimit -n) or run the hub in another process", cfg.Clients, need, limit)
	}

	ids := make([]string, cfg.Clients)
	for i := range ids {
		if ids[i], err = t.DeviceID(i); err != nil {
			return res, err
		}
	}
	before := MeasureMemory()
	var hubBefore int64
	if cfg.HubRSS != nil {
		hubBefore, _ = cfg.HubRSS()
	}

	start := time.Now()
	devices, err := connectFleet(ctx, t, cfg)
	res.ConnectTime = time.Since(start)
	defer closeFleet(devices, cfg.ConnectParallelism)
	if err != nil {
		return res, err
	}

	after := MeasureMemory()
	n := int64(cfg.Clients)
	res.HeapPerClient = (after.HeapInuse - before.HeapInuse) / n
	res.StackPerClient = (after.StackInuse - before.StackInuse) / n
	res.GoroutinesPerClient = float64(after.Goroutines-before.Goroutines) / float64(n)
	res.RSSPerClient = (after.RSS - before.RSS) / n
	if cfg.HubRSS != nil {
		if hubAfter, err := cfg.HubRSS(); err == nil && hubBefore > 0 {
			res.HubRSSPerSession = (hubAfter - hubBefore) / n
		}
	}

	invokeCtx, cancel := context.WithTimeout(ctx, cfg.InvokeTimeout)
	defer cancel()
	inv := &invoker{service: t.Service, ids: ids, payload: Payload(DefaultPayloadBytes), timeout: 30 * time.Second}
	inv.want = echoPayload(inv.payload)
	start = time.Now()
	res.Invoked, res.Errors = invokeEach(invokeCtx, inv, cfg.Clients, cfg.InvokeConcurrency)
	res.InvokeTime = time.Since(start)
	return res, ctx.Err()
}

// connectFleet connects the clients, at most cfg.ConnectParallelism at a
// time. It returns what it connected, with the first error.
func connectFleet(ctx context.Context, t *Target, cfg FleetConfig) ([]Device, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	devices := make([]Device, cfg.Clients)
	var (
		next     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	for range min(cfg.ConnectParallelism, cfg.Clients) {
		wg.Go(func() { // owned by connectFleet: ends when the work or ctx runs out; joined below
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= cfg.Clients {
					return
				}
				d, err := connectSDK(ctx, KindSDK, "mqtt", t, t.ConnectionStrings[i])
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("bench: fleet client %d: %w", i, err) })
					cancel()
					return
				}
				devices[i] = d
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("bench: fleet connect: %w", context.Cause(ctx))
	}
	return devices, firstErr
}

// invokeEach invokes echo once on each of n devices, concurrency at a
// time, and returns the calls made and the failures.
func invokeEach(ctx context.Context, inv *invoker, n, concurrency int) (calls, failures int) {
	var (
		next, made, failed atomic.Int64
		wg                 sync.WaitGroup
	)
	for range min(concurrency, n) {
		wg.Go(func() { // owned by invokeEach, joined below
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				made.Add(1)
				if _, err := inv.call(ctx, i); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	failures = int(failed.Load()) + n - int(made.Load()) // calls never made failed too
	return int(made.Load()), failures
}

// closeFleet closes the connected clients, parallelism at a time.
func closeFleet(devices []Device, parallelism int) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(parallelism, len(devices)) {
		wg.Go(func() { // owned by closeFleet, joined below
			for {
				i := int(next.Add(1)) - 1
				if i >= len(devices) {
					return
				}
				if devices[i] != nil {
					devices[i].Close()
				}
			}
		})
	}
	wg.Wait()
}
