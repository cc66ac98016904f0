package device

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/transport"
)

// call is one request in the client's care, from receipt to answer. It
// carries its own two contexts, so that a call costs one timer and no
// context tree:
//
//   - handlerContext, the context the handler sees: done at the method
//     deadline, at shutdown, or once the handler has returned;
//   - answerContext, the context the answer is delivered under: done
//     respondTimeout after the transport first waits on it (Done) or asks
//     for its deadline, or when the dispatcher gives up on answers at
//     shutdown. A transport that answers without waiting thus costs no
//     timer operation and no clock reading; one that waits is bounded as
//     if the deadline had been set when the answer started, give or take
//     the non-blocking work it did before waiting.
//
// The one timer serves the handler deadline, then the answer deadline.
// Whoever ends the handling phase first owns the answer: the worker whose
// handler returned (it stopped the timer in time), the timer at the
// deadline, or the shutdown (it stopped the timer first). phase, under
// mu, makes that choice exactly once, so every call is answered once.
//
// Calls are never reused: a handler may keep its context after returning
// and must find it done, not serving someone else's request.
type call struct {
	d      *dispatcher
	req    *transport.MethodRequest
	origin *origin       // the connection req arrived on, where its answer goes
	handed MethodRequest // what the handler sees, kept here to spare an allocation

	mu              sync.Mutex
	phase           callPhase
	timer           *time.Timer // fires c.fire; armed for the phase at hand
	handlerDeadline time.Time
	handlerErr      error         // why the handler's context is done; nil while it is not
	handlerDone     chan struct{} // made on first use of Done
	afterHandler    []*func()     // run when the handler's context ends (handlerContext.AfterFunc)
	answerArmed     bool          // answerDeadline is set, and the timer unless answerErr was
	answerDeadline  time.Time
	answerErr       error         // why the answer's context is done; nil while it is not
	answerDone      chan struct{} // made on first use of Done
}

// callPhase is where a call stands; each step only moves forward.
type callPhase uint8

const (
	phaseQueued    callPhase = iota // holds no slot yet, or its handler has not started
	phaseHandling                   // its handler runs; the timer is set to the method deadline
	phaseReturned                   // the handler returned in time; its worker answers
	phaseOverran                    // the deadline or the shutdown ended the handling first
	phaseAnswering                  // its answer is being delivered; the timer bounds it
	phaseDone                       // answered
)

func newCall(d *dispatcher, req *transport.MethodRequest, o *origin) *call {
	return &call{d: d, req: req, origin: o}
}

// begin starts the handling phase with the method deadline. It reports
// false, starting nothing, once the dispatcher is shutting down.
func (c *call) begin(timeout time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.d.stopping.Load() {
		return false
	}
	c.phase = phaseHandling
	c.handlerDeadline = time.Now().Add(timeout)
	c.timer = time.AfterFunc(timeout, c.fire)
	return true
}

// end is called by the worker when the handler has returned. It reports
// whether the worker still owns the answer; false means the deadline or
// the shutdown took it (and the worker's slot) first. Either way the
// handler's context is done from here on.
func (c *call) end() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase != phaseHandling || !c.timer.Stop() {
		return false // the timer fired and c.fire is taking over, or has
	}
	c.phase = phaseReturned
	c.cancelHandler(context.Canceled)
	return true
}

// abort ends the handling phase at shutdown. It reports whether it took
// the answer; false means the handler already returned or its deadline
// fired, and the answer is someone else's to send.
func (c *call) abort() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase != phaseHandling || !c.timer.Stop() {
		return false
	}
	c.phase = phaseOverran
	c.cancelHandler(context.Canceled)
	return true
}

// fire is the timer's function: the method deadline while handling, the
// answer deadline while answering. It runs on the timer's own goroutine,
// accounted for by the dispatcher's calls count until the call is
// answered.
func (c *call) fire() {
	c.mu.Lock()
	switch c.phase {
	case phaseHandling:
		c.phase = phaseOverran
		c.cancelHandler(context.DeadlineExceeded)
		c.mu.Unlock()
		c.d.overran(c)
		return
	case phaseAnswering:
		c.cancelAnswer(context.DeadlineExceeded)
	}
	c.mu.Unlock()
}

// startAnswer starts the answering phase. Its deadline is set on first
// use (see armAnswer).
func (c *call) startAnswer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.phase = phaseAnswering
	if c.d.answersOver.Load() {
		c.cancelAnswer(context.Canceled)
	}
}

// armAnswer sets the answer's deadline, respondTimeout from now, unless
// it is set already. c.mu is held.
func (c *call) armAnswer() {
	if c.answerArmed {
		return
	}
	c.answerArmed = true
	c.answerDeadline = time.Now().Add(respondTimeout)
	switch {
	case c.answerErr != nil: // given up already: no timer needed
	case c.timer == nil: // answered without a handler
		c.timer = time.AfterFunc(respondTimeout, c.fire)
	default:
		c.timer.Reset(respondTimeout)
	}
}

// endAnswer ends the answering phase and releases the timer.
func (c *call) endAnswer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.phase = phaseDone
	if c.answerArmed && c.timer != nil {
		c.timer.Stop()
	}
}

// giveUpAnswer ends the answer's context if it is being delivered, at the
// end of the shutdown.
func (c *call) giveUpAnswer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase == phaseAnswering {
		c.cancelAnswer(context.Canceled)
	}
}

// cancelHandler ends the handler's context with err. c.mu is held.
func (c *call) cancelHandler(err error) {
	if c.handlerErr != nil {
		return
	}
	c.handlerErr = err
	if c.handlerDone != nil {
		close(c.handlerDone)
	}
	for _, f := range c.afterHandler {
		go (*f)() // owned by whoever registered f, as with context.AfterFunc
	}
	c.afterHandler = nil
}

// cancelAnswer ends the answer's context with err. c.mu is held.
func (c *call) cancelAnswer(err error) {
	if c.answerErr != nil {
		return
	}
	c.answerErr = err
	if c.answerDone != nil {
		close(c.answerDone)
	}
}

// doneChan returns *ch, made on first use; closed already when err is set.
// c.mu is held.
func doneChan(ch *chan struct{}, err error) chan struct{} {
	if *ch == nil {
		if err != nil {
			return closedChan
		}
		*ch = make(chan struct{})
	}
	return *ch
}

// closedChan is the Done channel of a context that ended before anyone
// asked for its channel.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// handlerContext is the context a call's handler sees. It is not derived
// from Run's context, so it carries no values.
type handlerContext call

func (h *handlerContext) Deadline() (time.Time, bool) {
	c := (*call)(h)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handlerDeadline, true
}

func (h *handlerContext) Done() <-chan struct{} {
	c := (*call)(h)
	c.mu.Lock()
	defer c.mu.Unlock()
	return doneChan(&c.handlerDone, c.handlerErr)
}

func (h *handlerContext) Err() error {
	c := (*call)(h)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handlerErr
}

// AfterFunc runs f on its own goroutine once the context is done, like
// context.AfterFunc; stop unregisters f and reports whether it did so
// before f started. The context package uses it for contexts derived from
// this one, which then need no goroutine each to watch Done.
func (h *handlerContext) AfterFunc(f func()) (stop func() bool) {
	c := (*call)(h)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handlerErr != nil {
		go f() // owned by the caller, as with context.AfterFunc
		return func() bool { return false }
	}
	entry := &f
	c.afterHandler = append(c.afterHandler, entry)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.afterHandler, entry)
		if i < 0 {
			return false
		}
		c.afterHandler = slices.Delete(c.afterHandler, i, i+1)
		return true
	}
}

// Value returns nil: the handler's context carries no values. (Handing
// the lookup to another context would let context.Cause find that
// context's cause instead of this one's.)
func (h *handlerContext) Value(any) any { return nil }

func (h *handlerContext) String() string { return "device.handlerContext" }

// answerContext is the context a call's answer is delivered under.
type answerContext call

func (a *answerContext) Deadline() (time.Time, bool) {
	c := (*call)(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armAnswer()
	return c.answerDeadline, true
}

func (a *answerContext) Done() <-chan struct{} {
	c := (*call)(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armAnswer()
	return doneChan(&c.answerDone, c.answerErr)
}

func (a *answerContext) Err() error {
	c := (*call)(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answerErr
}

// Value returns nil, as for handlerContext.
func (a *answerContext) Value(any) any { return nil }

func (a *answerContext) String() string { return "device.answerContext" }
