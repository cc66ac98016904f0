package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/directmethods/iotdevice/transport"
	"github.com/google/go-cmp/cmp"
)

// answerRecord is one answer a test dispatcher sent.
type answerRecord struct {
	ID     string
	Status int
	Err    string // the answer context's error once respond returned, if any
}

// recordingConn is a connection whose answers go to a channel. respond,
// when set, runs before the answer is recorded (to block, for instance).
type recordingConn struct {
	got     chan answerRecord
	respond func(ctx context.Context)
}

func (c *recordingConn) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (c *recordingConn) Respond(ctx context.Context, req *transport.MethodRequest, status int, _ []byte) error {
	if c.respond != nil {
		c.respond(ctx)
	}
	var e string
	if err := ctx.Err(); err != nil {
		e = err.Error()
	}
	c.got <- answerRecord{ID: req.RequestID, Status: status, Err: e}
	return nil
}

func (c *recordingConn) Close() error { return nil }

// testDispatcher is a dispatcher whose answers go to a recordingConn.
type testDispatcher struct {
	*dispatcher
	*recordingConn
	nextID int
	origin *origin // the connection every request arrives on; never closed
}

type ctxKey struct{}

func newTestDispatcher(h MethodHandlerFunc, max int, timeout time.Duration) *testDispatcher {
	rc := &recordingConn{got: make(chan answerRecord, 64)}
	td := &testDispatcher{recordingConn: rc, origin: newOrigin(rc)}
	o := &ClientOptions{MethodTimeout: timeout, MaxConcurrentMethods: max, Logger: slog.New(slog.DiscardHandler)}
	runCtx := context.WithValue(context.Background(), ctxKey{}, "from Run")
	td.dispatcher = newDispatcher(runCtx, h, o, &counters{})
	return td
}

// submit runs a request with the next id on a goroutine of its own, as a
// crew's member would: once a slot is free.
func (td *testDispatcher) submit(method string) string {
	td.nextID++
	id := fmt.Sprint(td.nextID)
	td.slots <- struct{}{}
	c := td.take(&transport.MethodRequest{Name: method, RequestID: id}, td.origin)
	td.goroutines.Add(1)
	go func() { // owned by the dispatcher: joined through td.goroutines
		if td.run(c, newDeadlineTimer(td.dispatcher)) {
			td.finish()
		}
	}()
	return id
}

func TestHandlerContextAfterReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kept := make(chan context.Context, 1)
		var deadline time.Time
		td := newTestDispatcher(func(ctx context.Context, _ *MethodRequest) (*MethodResponse, error) {
			if ctx.Err() != nil {
				return nil, errors.New("context done while handling")
			}
			deadline, _ = ctx.Deadline()
			kept <- ctx
			return nil, nil
		}, 1, 3*time.Second)
		begin := time.Now()
		td.submit("m")
		if a := <-td.got; a.Status != 200 {
			t.Fatalf("answer %+v", a)
		}
		ctx := <-kept
		if want := begin.Add(3 * time.Second); !deadline.Equal(want) {
			t.Errorf("deadline %v, want %v", deadline, want)
		}
		select {
		case <-ctx.Done():
		default:
			t.Error("the handler's context is not done after it returned")
		}
		if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(context.Cause(ctx), context.Canceled) {
			t.Errorf("Err %v, Cause %v; want context.Canceled", ctx.Err(), context.Cause(ctx))
		}
		if got := ctx.Value(ctxKey{}); got != "from Run" {
			t.Errorf("the handler's context has value %v, want Run's", got)
		}
		// The next call gets a fresh context, not the kept one.
		td.submit("m")
		<-td.got
		if next := <-kept; next == ctx || next.Err() == nil || ctx.Err() == nil {
			t.Error("a call's context was reused")
		}
		td.shutdown(time.Second)
	})
}

func TestHandlerContextDeadlineAndChildren(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type seen struct{ Err, Cause, Child string }
		got := make(chan seen, 1)
		td := newTestDispatcher(func(ctx context.Context, _ *MethodRequest) (*MethodResponse, error) {
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			<-child.Done()
			got <- seen{ctx.Err().Error(), context.Cause(ctx).Error(), child.Err().Error()}
			return nil, ctx.Err()
		}, 1, 2*time.Second)
		begin := time.Now()
		td.submit("m")
		a := <-td.got
		if a.Status != StatusGatewayTimeout || time.Since(begin) != 2*time.Second {
			t.Errorf("answer %+v after %v, want 504 after 2s", a, time.Since(begin))
		}
		dl := context.DeadlineExceeded.Error()
		if diff := cmp.Diff(seen{dl, dl, dl}, <-got); diff != "" {
			t.Errorf("handler saw (-want +got):\n%s", diff)
		}
		td.shutdown(time.Second)
	})
}

// TestAnswerContextBounds checks that an answer waiting for an
// acknowledgement that never comes is given up at the end of the
// shutdown.
func TestAnswerContextBounds(t *testing.T) {
	ok := func(context.Context, *MethodRequest) (*MethodResponse, error) { return nil, nil }
	t.Run("shutdown gives up after answerGrace", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			td := newTestDispatcher(ok, 1, time.Minute)
			td.respond = func(ctx context.Context) { <-ctx.Done() }
			td.submit("m")
			synctest.Wait() // the answer is under way
			begin := time.Now()
			td.shutdown(2 * time.Second)
			a := <-td.got
			// The running call's slot is held while it answers: the grace
			// period passes, then answerGrace.
			if waited := time.Since(begin); waited != 2*time.Second+answerGrace || a.Err != context.Canceled.Error() {
				t.Errorf("shutdown took %v, answer ended with %q; want %v and context.Canceled", waited, a.Err, 2*time.Second+answerGrace)
			}
		})
	})
}

// A handler returning at the very instant of its deadline, or of the end
// of the shutdown grace period, races the timer and the shutdown for the
// answer: whoever wins, the call is answered exactly once.
func TestAnswerOnceAtTheDeadline(t *testing.T) {
	const timeout, calls = 2 * time.Second, 40
	for _, grace := range []time.Duration{time.Hour, timeout} {
		t.Run(fmt.Sprintf("grace %v", grace), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				td := newTestDispatcher(func(ctx context.Context, _ *MethodRequest) (*MethodResponse, error) {
					time.Sleep(timeout)
					return nil, nil
				}, calls, timeout)
				for range calls {
					td.submit("m")
				}
				if grace < time.Hour {
					td.shutdown(grace)
				}
				got := map[string]int{}
				statuses := map[int]bool{}
				for range calls {
					a := <-td.got
					got[a.ID]++
					statuses[a.Status] = true
				}
				synctest.Wait()
				select {
				case a := <-td.got:
					t.Errorf("an extra answer: %+v", a)
				default:
				}
				for id, n := range got {
					if n != 1 {
						t.Errorf("call %s answered %d times", id, n)
					}
				}
				for s := range statuses {
					if s != 200 && s != StatusGatewayTimeout && s != StatusServiceUnavailable {
						t.Errorf("unexpected status %d", s)
					}
				}
				if grace == time.Hour {
					td.shutdown(time.Second)
				}
			})
		})
	}
}
