package inbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/transport"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// waitTimeout bounds every wait of the tests.
const waitTimeout = 10 * time.Second

var errLost = errors.New("test: connection lost")

func req(id string) *transport.MethodRequest {
	return &transport.MethodRequest{Name: "m", RequestID: id}
}

// receiveAll calls Receive until it fails and returns the request ids and
// the error.
func receiveAll(t *testing.T, b *Inbox) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	var ids []string
	for {
		r, err := b.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("Receive did not end: %v", err)
			}
			return ids, err
		}
		ids = append(ids, r.RequestID)
	}
}

func TestPutAnswersFullQueue(t *testing.T) {
	b := New("test", 2, 0)
	var got []bool
	for _, id := range []string{"1", "2", "3"} {
		got = append(got, b.Put(req(id)))
	}
	if diff := cmp.Diff([]bool{true, true, false}, got); diff != "" {
		t.Errorf("Put results (-want +got):\n%s", diff)
	}
	r, err := b.Receive(t.Context())
	if err != nil || r.RequestID != "1" {
		t.Fatalf("Receive = %v, %v; want request 1", r, err)
	}
	if !b.Put(req("4")) {
		t.Error("Put refused a request after Receive made room")
	}
}

// TestDrainThenEnd: after the connection ends, Receive returns what was
// queued, in order, then the end's error, and keeps returning it.
func TestDrainThenEnd(t *testing.T) {
	tests := []struct {
		name    string
		end     func(b *Inbox)
		want    error
		wantErr error // Err once ended
	}{
		{"closed", func(b *Inbox) { b.Close(); b.Stop() }, net.ErrClosed, net.ErrClosed},
		{"lost", func(b *Inbox) { b.Fail(errLost) }, errLost, errLost},
		{"lost then closed", func(b *Inbox) { b.Fail(errLost); b.Close(); b.Stop() }, net.ErrClosed, net.ErrClosed},
		{"closed then lost", func(b *Inbox) { b.Close(); b.Fail(errLost); b.Stop() }, net.ErrClosed, net.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New("test", 4, 0)
			if err := b.Err(); err != nil {
				t.Fatalf("Err before the end = %v", err)
			}
			b.Put(req("1"))
			b.Put(req("2"))
			tt.end(b)
			select {
			case <-b.Done():
			default:
				t.Error("Done is open after the end")
			}
			ids, err := receiveAll(t, b)
			if diff := cmp.Diff([]string{"1", "2"}, ids); diff != "" {
				t.Errorf("drained (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Receive once drained = %v, want %v", err, tt.want)
			}
			if _, again := b.Receive(t.Context()); !errors.Is(again, tt.want) {
				t.Errorf("Receive again = %v, want %v", again, tt.want)
			}
			if err := b.Err(); !errors.Is(err, tt.wantErr) {
				t.Errorf("Err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestErrorNamesTheAdapter(t *testing.T) {
	b := New("mqtt", 1, 0)
	b.Fail(errLost)
	_, err := b.Receive(t.Context())
	if want := "mqtt: receive: test: connection lost"; err == nil || err.Error() != want {
		t.Errorf("Receive = %v, want %q", err, want)
	}
}

func TestFirstFailureWins(t *testing.T) {
	b := New("test", 1, 0)
	second := errors.New("test: second failure")
	if !b.Fail(errLost) {
		t.Error("first Fail reported false")
	}
	if b.Fail(second) {
		t.Error("second Fail reported true")
	}
	if err := b.Err(); !errors.Is(err, errLost) {
		t.Errorf("Err = %v, want the first failure", err)
	}
}

// TestCloseWaitsForStop: a request the protocol library hands over while
// the owner closes the connection comes out of Receive, even for a
// receiver that was already waiting when Close started.
func TestCloseWaitsForStop(t *testing.T) {
	b := New("test", 4, 0)
	type result struct {
		ids []string
		err error
	}
	done := make(chan result, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // owned by the test; ends when Receive fails after Stop, joined above
		ids, err := receiveAll(t, b)
		done <- result{ids, err}
	})
	b.Close()
	if !b.Put(req("late")) {
		t.Fatal("Put refused a request after Close")
	}
	b.Stop()
	var r result
	select {
	case r = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Receive did not end after Stop")
	}
	if diff := cmp.Diff([]string{"late"}, r.ids); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if !errors.Is(r.err, net.ErrClosed) {
		t.Errorf("Receive once drained = %v, want net.ErrClosed", r.err)
	}
}

func TestReceiveHonoursContext(t *testing.T) {
	tests := []struct {
		name string
		prep func(b *Inbox)
	}{
		{"empty", func(*Inbox) {}},
		{"closed, not stopped", func(b *Inbox) { b.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New("test", 1, 0)
			tt.prep(b)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := b.Receive(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("Receive = %v, want context.Canceled", err)
			}
		})
	}
}

// TestQueuedBeforeCanceled: a queued request wins over a done context.
func TestQueuedBeforeCanceled(t *testing.T) {
	b := New("test", 1, 0)
	b.Put(req("1"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if r, err := b.Receive(ctx); err != nil || r.RequestID != "1" {
		t.Errorf("Receive = %v, %v; want request 1", r, err)
	}
}

// TestQuiesceEndsTheStream: after Quiesce, Receive returns what was queued
// and then ErrQuiesced, Put refuses, and the connection stays usable (Err
// is nil) until it is closed, whose error then wins.
func TestQuiesceEndsTheStream(t *testing.T) {
	b := New("test", 4, 0)
	b.Put(req("1"))
	b.Put(req("2"))
	b.Quiesce()
	if b.Put(req("3")) {
		t.Error("Put after Quiesce accepted a request")
	}
	ids, err := receiveAll(t, b)
	if diff := cmp.Diff([]string{"1", "2"}, ids); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if !errors.Is(err, transport.ErrQuiesced) {
		t.Errorf("Receive once drained = %v, want ErrQuiesced", err)
	}
	if err := b.Err(); err != nil {
		t.Errorf("Err after Quiesce = %v, want nil: answers still go out", err)
	}
	b.Close()
	b.Stop()
	if _, err := receiveAll(t, b); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Receive after Close = %v, want net.ErrClosed", err)
	}
}

// TestQuiesceWakesAWaitingReceive: a Receive already waiting returns
// ErrQuiesced when the stream ends.
func TestQuiesceWakesAWaitingReceive(t *testing.T) {
	b := New("test", 4, 0)
	got := make(chan error, 1)
	go func() { // joined through got
		_, err := b.Receive(t.Context())
		got <- err
	}()
	b.Quiesce()
	select {
	case err := <-got:
		if !errors.Is(err, transport.ErrQuiesced) {
			t.Errorf("Receive = %v, want ErrQuiesced", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Receive still waiting after Quiesce")
	}
}

// TestPutBoundsBytes: the queue holds at most maxBytes of payload, but
// always takes one request when it is empty, whatever its size; Receive
// makes room again.
func TestPutBoundsBytes(t *testing.T) {
	sized := func(id string, n int) *transport.MethodRequest {
		return &transport.MethodRequest{Name: "m", RequestID: id, Payload: make([]byte, n)}
	}
	b := New("test", 100, 10)
	var got []bool
	for _, r := range []*transport.MethodRequest{sized("big", 30), sized("small", 1)} {
		got = append(got, b.Put(r))
	}
	if diff := cmp.Diff([]bool{true, false}, got); diff != "" {
		t.Errorf("Put into an empty queue, then past the bound (-want +got):\n%s", diff)
	}
	if r, err := b.Receive(t.Context()); err != nil || r.RequestID != "big" {
		t.Fatalf("Receive = %v, %v; want the big request", r, err)
	}
	got = got[:0]
	for _, n := range []int{4, 6, 1} {
		got = append(got, b.Put(sized(fmt.Sprint(n), n)))
	}
	if diff := cmp.Diff([]bool{true, true, false}, got); diff != "" {
		t.Errorf("Put up to 10 bytes, then one more (-want +got):\n%s", diff)
	}
}

// TestQueueReusesItsRoom: a long run of Put and Receive keeps the queue's
// backing array at the size of its deepest backlog.
func TestQueueReusesItsRoom(t *testing.T) {
	b := New("test", 8, 0)
	for i := range 1000 {
		for j := range 3 {
			if !b.Put(req(fmt.Sprint(i, j))) {
				t.Fatalf("Put %d/%d refused", i, j)
			}
		}
		for j := range 3 {
			r, err := b.Receive(t.Context())
			if err != nil || r.RequestID != fmt.Sprint(i, j) {
				t.Fatalf("Receive = %v, %v; want %s", r, err, fmt.Sprint(i, j))
			}
		}
	}
	if c := cap(b.queue); c > 8 {
		t.Errorf("queue capacity grew to %d", c)
	}
}

// TestManyReceivers: with several goroutines in Receive, a burst of
// requests put at once reaches them all, each request exactly once (one
// pending wake-up is passed on from waiter to waiter), and the end wakes
// every one of them. A waiter whose context ends does not swallow the
// wake-up meant for another.
func TestManyReceivers(t *testing.T) {
	const receivers, requests = 8, 1000
	b := New("test", requests, 0)
	var mu sync.Mutex
	seen := map[string]int{}
	ends := make(chan error, receivers)
	var wg sync.WaitGroup
	for range receivers {
		wg.Go(func() { // ends when Receive fails after Fail, joined below
			ids, err := receiveAll(t, b)
			mu.Lock()
			for _, id := range ids {
				seen[id]++
			}
			mu.Unlock()
			ends <- err
		})
	}
	// A waiter that gives up while the others wait.
	impatient, cancel := context.WithCancel(t.Context())
	defer cancel()
	wg.Go(func() { // ends with its context, cancelled below
		for {
			r, err := b.Receive(impatient)
			if err != nil {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, errLost) {
					t.Errorf("cancelled Receive = %v, want context.Canceled or the failure", err)
				}
				return
			}
			mu.Lock()
			seen[r.RequestID]++
			mu.Unlock()
		}
	})
	for i := range requests {
		if !b.Put(req(fmt.Sprint(i))) {
			t.Fatalf("Put %d refused", i)
		}
		if i == requests/2 {
			cancel()
		}
	}
	b.Fail(errLost)
	wg.Wait()
	close(ends)
	for err := range ends {
		if !errors.Is(err, errLost) {
			t.Errorf("Receive ended with %v, want the failure", err)
		}
	}
	if len(seen) != requests {
		t.Errorf("%d distinct requests received, want %d", len(seen), requests)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("request %s received %d times", id, n)
		}
	}
}
