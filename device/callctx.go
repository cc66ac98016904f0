package device

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// callContext is a context.Context of one call, kept in the call's own
// allocation. A handler's carries the Run context's values and the call's
// deadline, and ends at the deadline (see deadlineTimer), at the shutdown,
// or when the handler returns. An answer's ends at the handler's deadline
// plus answerGrace, or when the shutdown gives up on answers; since a
// transport rarely waits to send (over MQTT, only behind another write),
// its timer is set only once Done is asked for. context.WithDeadline and
// context.AfterFunc cost 13 of a call's 16 allocations, two timers and a
// registration with the parent per call. End to end over MQTT (the
// bench's sdk device against the same tree on package context, 7
// alternating rounds) this type saves 6 % of the device's CPU per call at
// concurrency 16 (30.9 against 33.1 µs; lower in 6 rounds of 7) and adds
// 3 % to its rate; at concurrency 1 the two are within the noise.
//
// Contexts derived from it follow its end through its AfterFunc method,
// which package context looks for, without a goroutine each.
type callContext struct {
	parent   context.Context // the values; an answer's also ends with it
	deadline time.Time
	answer   bool // an answer's: follows parent and the deadline by itself

	mu         sync.Mutex
	done       chan struct{} // made when first asked for; closed at the end
	err        error         // set at the end
	after      []*func()     // run at the end, each on a goroutine of its own
	timer      *time.Timer   // an answer's, once Done was asked for
	stopParent func() bool   // likewise
}

func (c *callContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *callContext) Value(key any) any { return c.parent.Value(key) }

func (c *callContext) String() string {
	if c.answer {
		return "device: answer context"
	}
	return "device: method handler context"
}

func (c *callContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkLocked()
	return c.err
}

func (c *callContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkLocked()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		} else if c.answer {
			c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.end(context.DeadlineExceeded) })
			c.stopParent = context.AfterFunc(c.parent, func() { c.end(c.parent.Err()) })
		}
	}
	return c.done
}

// AfterFunc runs f on a goroutine of its own once c has ended, as
// context.AfterFunc does; stop reports whether it kept f from running.
func (c *callContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkLocked()
	if c.err != nil {
		go f() // owned by the caller of AfterFunc, as with package context
		return func() bool { return false }
	}
	fp := &f
	c.after = append(c.after, fp)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.after, fp)
		if i < 0 {
			return false
		}
		c.after = slices.Delete(c.after, i, i+1)
		return true
	}
}

// end ends c with err, and reports whether this was its end: false when it
// had ended already.
func (c *callContext) end(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	c.endLocked(err)
	return true
}

// checkLocked ends an answer's context whose deadline has passed or whose
// parent has ended, without waiting for its timer.
func (c *callContext) checkLocked() {
	if c.err != nil || !c.answer {
		return
	}
	if err := c.parent.Err(); err != nil {
		c.endLocked(err)
	} else if !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
}

func (c *callContext) endLocked(err error) {
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	for _, f := range c.after {
		go (*f)() // owned by the caller of AfterFunc, as with package context
	}
	c.after = nil
	c.releaseLocked()
}

// release stops an answer's timer and its watch of the parent, once the
// answer no longer needs them.
func (c *callContext) release() {
	c.mu.Lock()
	c.releaseLocked()
	c.mu.Unlock()
}

func (c *callContext) releaseLocked() {
	if c.timer != nil {
		c.timer.Stop()
		c.stopParent()
		c.timer, c.stopParent = nil, nil
	}
}

// deadlineTimer is a goroutine's timer for the deadlines of the calls it
// runs one after another: at a call's deadline it ends the handler's
// context and answers for the handler (dispatcher.overrun). One timer per
// goroutine, reset for each call, spares a timer per call.
type deadlineTimer struct {
	t    *time.Timer
	call atomic.Pointer[call] // the call being run
}

func newDeadlineTimer(d *dispatcher) *deadlineTimer {
	dt := &deadlineTimer{}
	dt.t = time.AfterFunc(time.Hour, func() { // on its own goroutine, at a deadline
		// A timer stopped too late for an earlier call may find the
		// next one, whose deadline has not come.
		c := dt.call.Load()
		if c != nil && !time.Now().Before(c.deadline) && c.handlerCtx.end(context.DeadlineExceeded) {
			d.overrun(c)
		}
	})
	dt.t.Stop()
	return dt
}

// arm sets the timer for c's deadline.
func (dt *deadlineTimer) arm(c *call) {
	dt.call.Store(c)
	dt.t.Reset(time.Until(c.deadline))
}

// disarm stops the timer once c's handler has returned.
func (dt *deadlineTimer) disarm() {
	dt.t.Stop()
	dt.call.Store(nil)
}
