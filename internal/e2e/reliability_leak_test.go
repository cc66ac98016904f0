package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/internal/localhub"
)

// maxHeapGrowth is the heap growth allowed across a leak test's loop.
const maxHeapGrowth = 2 << 20

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC() // finalizers queued by the first run are collected by the second
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// assertNoGoroutinesLeft waits a bounded time for every goroutine but the
// testing package's to end, after the test closed its hub and clients.
func assertNoGoroutinesLeft(t *testing.T) {
	t.Helper()
	if leaked := leakcheck.Wait(10 * time.Second); len(leaked) > 0 {
		t.Fatalf("%d goroutines left behind, first:\n%s", len(leaked), leaked[0])
	}
}

// TestConnectCloseCycles creates, connects and closes 1,000 clients per
// transport, all transports at once against one hub, invoking a method on
// every tenth, and checks that nothing is left: no goroutine once the hub
// is closed too, and a bounded heap growth over the 4,000 cycles (measured
// once for all transports, after a warm-up).
func TestConnectCloseCycles(t *testing.T) {
	const cycles = 1000
	hub, err := localhub.Start(t.Context(), localhub.Options{Devices: transports, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	svc := hub.ServiceClient()
	// cycle runs one client life for the identity named after its
	// transport; errors are returned, as it runs off the test goroutine.
	cycle := func(tr string, i int) error {
		cs, err := hub.ConnectionString(tr)
		if err != nil {
			return err
		}
		states := newStateLog()
		opts := deviceOptions(t, hub, tr)
		states.tweak(opts)
		client, err := device.NewClientFromConnectionString(cs, opts)
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- client.Run(context.Background(), echoMux()) }() // joined below
		defer func() { client.Close(); <-done }()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if _, err := states.wait(ctx, device.StateConnected, 1); err != nil {
			return fmt.Errorf("%s cycle %d: not connected: %w: %v", tr, i, err, states.snapshot())
		}
		if i%10 == 0 {
			payload := fmt.Sprint(i)
			res, err := svc.Invoke(ctx, tr, "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(payload), ConnectTimeoutInSeconds: 10})
			if err != nil || res.Status != 200 || string(res.Payload) != payload {
				return fmt.Errorf("%s cycle %d: invoke = %+v, %v", tr, i, res, err)
			}
		}
		return nil
	}
	// loop runs n cycles on every transport at once.
	loop := func(n int) map[string]time.Duration {
		var mu sync.Mutex
		took := map[string]time.Duration{}
		var wg sync.WaitGroup
		for _, tr := range transports {
			wg.Go(func() { // owned by the test: joined below
				begin := time.Now()
				for i := range n {
					if err := cycle(tr, i); err != nil {
						t.Error(err)
						return
					}
				}
				mu.Lock()
				took[tr] = time.Since(begin)
				mu.Unlock()
			})
		}
		wg.Wait()
		return took
	}
	loop(20) // warm up pools and caches before measuring
	before := heapInUse()
	took := loop(cycles)
	growth := int64(heapInUse()) - int64(before)
	for _, tr := range transports {
		t.Logf("figure: leak-cycles transport=%s cycles=%d seconds=%.1f", tr, cycles, took[tr].Seconds())
	}
	t.Logf("figure: leak-cycles transports=%d cycles_each=%d heap_growth_kb=%d", len(transports), cycles, growth/1024)
	if t.Failed() {
		return
	}
	if growth > maxHeapGrowth {
		t.Errorf("heap grew by %d KB over %d cycles per transport, want under %d KB", growth/1024, cycles, maxHeapGrowth/1024)
	}
	hub.Close()
	assertNoGoroutinesLeft(t)
}

// TestForcedReconnects drops one client's connection 200 times, half by
// the hub (Disconnect) and half by a reset at the proxy; it reconnects
// every time, methods still work at the end, and nothing is left behind.
func TestForcedReconnects(t *testing.T) {
	const drops = 200
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			hub, err := localhub.Start(t.Context(), localhub.Options{Devices: []string{"dev-1"}, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer hub.Close()
			cs, err := hub.ConnectionString("dev-1")
			if err != nil {
				t.Fatal(err)
			}
			proxy := startProxy(t, hub, tr)
			states := newStateLog()
			opts := deviceOptions(t, hub, tr)
			viaProxy(proxy, states.tweak)(opts)
			opts.Backoff = func(int) time.Duration { return time.Millisecond }
			client, err := device.NewClientFromConnectionString(cs, opts)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- client.Run(context.Background(), echoMux()) }() // joined below
			states.waitFor(t, device.StateConnected, 1, 20*time.Second)

			before := heapInUse()
			begin := time.Now()
			for i := 1; i <= drops; i++ {
				waitSubscribed(t, hub, "dev-1")
				if i%2 == 0 {
					hub.Disconnect("dev-1")
				} else {
					proxy.Reset()
				}
				states.waitFor(t, device.StateConnected, i+1, 20*time.Second)
			}
			took := time.Since(begin)
			res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 20*time.Second), "dev-1", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`"after"`), ConnectTimeoutInSeconds: 10})
			if err != nil || res.Status != 200 {
				t.Fatalf("invoke after %d drops = %+v, %v", drops, res, err)
			}
			growth := int64(heapInUse()) - int64(before)
			t.Logf("figure: leak-reconnects transport=%s drops=%d seconds=%.1f heap_growth_kb=%d", tr, drops, took.Seconds(), growth/1024)
			if growth > maxHeapGrowth {
				t.Errorf("heap grew by %d KB over %d reconnections, want under %d KB", growth/1024, drops, maxHeapGrowth/1024)
			}
			if n := states.count(device.StateDisconnected); n != drops {
				var reasons []string
				for _, e := range states.snapshot() {
					reasons = append(reasons, e.String())
				}
				t.Errorf("%d disconnections for %d drops: %s", n, drops, strings.Join(reasons, ", "))
			}
			client.Close()
			if err := <-done; !errors.Is(err, device.ErrClientClosed) {
				t.Errorf("Run = %v", err)
			}
			proxy.Close()
			hub.Close()
			assertNoGoroutinesLeft(t)
		})
	}
}
