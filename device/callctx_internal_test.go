package device

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

type valueKey struct{}

// TestHandlerContextBehavesAsAContext: the handler's context reports its
// deadline and Run's values, ends once with the first error, closes Done
// whether it was asked for before or after the end, and carries its end to
// derived contexts and AfterFunc, as package context's own do.
func TestHandlerContextBehavesAsAContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		deadline := time.Now().Add(time.Minute)
		parent := context.WithValue(context.Background(), valueKey{}, "v")
		c := &callContext{parent: context.WithoutCancel(parent), deadline: deadline}
		if d, ok := c.Deadline(); !ok || !d.Equal(deadline) {
			t.Errorf("Deadline = %v, %v", d, ok)
		}
		if got := c.Value(valueKey{}); got != "v" {
			t.Errorf("Value = %v, want Run's", got)
		}
		done := c.Done()
		child, cancelChild := context.WithCancel(c)
		defer cancelChild()
		timed, cancelTimed := context.WithTimeout(c, time.Hour)
		defer cancelTimed()
		ran := make(chan struct{})
		context.AfterFunc(c, func() { close(ran) })
		stopped := context.AfterFunc(c, func() { t.Error("a stopped AfterFunc ran") })
		if !stopped() {
			t.Error("stop before the end reported false")
		}
		if c.Err() != nil {
			t.Fatalf("Err before the end = %v", c.Err())
		}

		if !c.end(context.DeadlineExceeded) || c.end(context.Canceled) {
			t.Error("end did not report the first end only")
		}
		<-done
		<-ran
		<-child.Done()
		<-timed.Done()
		for name, ctx := range map[string]context.Context{"handler": c, "child": child, "child with a timeout": timed} {
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				t.Errorf("%s: Err %v, Cause %v; want DeadlineExceeded", name, ctx.Err(), context.Cause(ctx))
			}
		}
		select {
		case <-c.Done(): // asked for after the end: closed too
		default:
			t.Error("Done asked for after the end is not closed")
		}
		late := make(chan struct{})
		if context.AfterFunc(c, func() { close(late) })() {
			t.Error("stop after the end reported true")
		}
		<-late
	})
}

// TestAnswerContextEnds: an answer's context ends at its deadline or with
// its parent, whether or not Done was asked for, and release lets its
// timer go.
func TestAnswerContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		answer := func(parent context.Context) *callContext {
			return &callContext{parent: parent, deadline: time.Now().Add(time.Second), answer: true}
		}
		// Done asked for: closed by the timer at the deadline.
		a := answer(context.Background())
		begin := time.Now()
		<-a.Done()
		if waited := time.Since(begin); waited != time.Second || !errors.Is(a.Err(), context.DeadlineExceeded) {
			t.Errorf("ended after %v with %v; want 1s and DeadlineExceeded", waited, a.Err())
		}
		// Never asked for: Err alone finds the deadline passed.
		b := answer(context.Background())
		if b.Err() != nil {
			t.Errorf("Err before the deadline = %v", b.Err())
		}
		time.Sleep(time.Second)
		if !errors.Is(b.Err(), context.DeadlineExceeded) {
			t.Errorf("Err after the deadline = %v", b.Err())
		}
		// The parent's end, seen through Done and through Err.
		parent, cancel := context.WithCancel(context.Background())
		c, d := answer(parent), answer(parent)
		done := c.Done()
		cancel()
		<-done
		if !errors.Is(c.Err(), context.Canceled) || !errors.Is(d.Err(), context.Canceled) {
			t.Errorf("after the parent's end: %v and %v, want Canceled", c.Err(), d.Err())
		}
		// Released before the deadline: no timer or watch is left behind
		// (synctest would report the bubble's goroutines blocked forever
		// otherwise, and the deadline passing ends nothing).
		e := answer(context.Background())
		e.Done()
		e.release()
		synctest.Wait()
	})
}

// TestDeadlineTimerFindsOnlyItsCall: a timer disarmed for one call and
// armed for the next does not end the next at the first one's deadline.
func TestDeadlineTimerFindsOnlyItsCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		td := newTestDispatcher(nil, 1, time.Minute)
		dt := newDeadlineTimer(td.dispatcher)
		newCall := func(timeout time.Duration) *call {
			c := &call{deadline: time.Now().Add(timeout)}
			c.handlerCtx.parent, c.handlerCtx.deadline = context.Background(), c.deadline
			return c
		}
		first := newCall(time.Second)
		dt.arm(first)
		dt.disarm()
		second := newCall(3 * time.Second)
		dt.arm(second)
		time.Sleep(2 * time.Second)
		if first.handlerCtx.err != nil || second.handlerCtx.Err() != nil {
			t.Errorf("ended at the first call's deadline: %v, %v", first.handlerCtx.err, second.handlerCtx.Err())
		}
		dt.disarm()
		synctest.Wait()
	})
}
