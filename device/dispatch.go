package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/busy"
	"github.com/directmethods/iotdevice/transport"
)

// Statuses the client answers with on a handler's behalf.
const (
	statusBadRequest     = 400
	statusTooLarge       = 413
	statusInternal       = 500
	statusUnavailable    = 503
	statusHandlerTimeout = 504
)

// respondTimeout bounds the delivery of the answers refused during the
// shutdown (see Client.refuse).
const respondTimeout = 30 * time.Second

// answerGrace is how long an answer may still take to go out once its
// handler's deadline has passed, and how long answers may still take once
// the shutdown grace period is over.
const answerGrace = time.Second

// dispatcher runs handlers for the requests connections deliver, at most
// MaxConcurrentMethods at a time, and answers each request exactly once.
//
// The path of one request:
//
//  1. receive: one goroutine at a time holds the receiver role and waits
//     in the connection's Receive. When a request arrives and a handler
//     slot is free, it starts a new goroutine to take the receiver role
//     over and runs the handler itself. So a handler that returns at once
//     costs one goroutine handoff between the protocol library and the
//     answer: the adapter's queue, from the MQTT reader goroutine (or
//     go-amqp's receiver) to the receiver. When no slot is free the
//     request waits in the pending queue (MaxPendingMethods), or is
//     answered 503 at once when that is full; the receiver goes on.
//  2. run: the handler's context carries the values of Run's context and
//     the method deadline. If the deadline passes (or the shutdown gives
//     up on handlers) first, the dispatcher answers 504 (503) on the
//     handler's behalf and passes its slot on (see watch); the handler's
//     goroutine ends whenever the handler returns, and its result is
//     dropped.
//  3. answer: on the connection the request arrived on (see origin).
//
// Slots are a semaphore. A goroutine that finishes a call takes the next
// queued one, if any; then it waits as a spare for the next receiver role
// rather than ending (see goroutines.go for the figure that buys).
type dispatcher struct {
	handler    MethodHandler
	respond    func(ctx context.Context, c *call, status int, body []byte)
	timeout    time.Duration
	maxPending int
	log        *slog.Logger
	counters   *counters

	slots chan struct{} // one token per running handler

	// handlers is the parent of every handler's context: the values of
	// Run's context, without its cancellation (the shutdown cancels
	// handlers one by one, after its grace period).
	handlers      context.Context
	answers       context.Context // cancelled when the shutdown gives up on answers
	giveUpAnswers context.CancelFunc

	mu       sync.Mutex
	pending  []*call       // waiting for a slot
	active   int           // slots taken
	idle     chan struct{} // closed when active drops to 0; made by waitIdle
	stopping bool          // shutting down: no handler starts any more
	handling callList      // calls whose handlers run, in deadline order (see watch)
	watcher  *time.Timer   // runs watch by the deadline of handling's oldest call
	// watcherArmed says the watcher is set, for watcherAt.
	watcherArmed bool
	watcherAt    time.Time
	spares       []*spare    // goroutines waiting for a receiver role, most recent last (goroutines.go)
	sweeping     bool        // sweeper is set
	sweeper      *time.Timer // runs sweep

	calls      sync.WaitGroup // calls in our care, from receipt to answer
	goroutines sync.WaitGroup // the dispatcher's goroutines, but those left to an overrun handler
}

// call is one request in the client's care.
type call struct {
	req    *transport.MethodRequest
	origin *origin       // the connection req arrived on, where its answer goes
	handed MethodRequest // what the handler sees; kept here to spare an allocation

	// While its handler runs; guarded by dispatcher.mu.
	deadline   time.Time
	cancel     context.CancelFunc // ends the handler's context
	overran    bool               // the deadline or the shutdown answered for the handler
	prev, next *call              // neighbours in dispatcher.handling
}

// callList is a list of calls linked through their prev and next fields.
type callList struct{ head, tail *call }

func (l *callList) push(c *call) {
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *callList) remove(c *call) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// newDispatcher returns a dispatcher whose handlers' contexts carry the
// values of runCtx (but not its cancellation: the shutdown decides when
// handlers are cancelled).
func newDispatcher(runCtx context.Context, h MethodHandler, o *ClientOptions, respond func(context.Context, *call, int, []byte), counters *counters) *dispatcher {
	d := &dispatcher{
		handler: h, respond: respond, timeout: o.MethodTimeout,
		maxPending: o.MaxPendingMethods, log: o.Logger, counters: counters,
		slots: make(chan struct{}, o.MaxConcurrentMethods),
	}
	d.handlers = context.WithoutCancel(runCtx)
	d.answers, d.giveUpAnswers = context.WithCancel(d.handlers)
	return d
}

// accept takes a request that arrived on o into the dispatcher's care.
// It reports whether the request holds a slot and is to run now, on the
// caller's goroutine.
func (d *dispatcher) accept(req *transport.MethodRequest, o *origin) (*call, bool) {
	c := &call{req: req, origin: o}
	o.add()
	d.calls.Add(1)
	return c, d.admit(c)
}

// admit takes a slot for c and reports true, or queues c, or answers it
// 503 at once when the queue is full or the client shuts down.
func (d *dispatcher) admit(c *call) bool {
	d.mu.Lock()
	switch {
	case d.stopping:
		d.mu.Unlock()
		d.answer(c, statusUnavailable, errorBody("device shutting down"))
		return false
	case d.active < cap(d.slots):
		d.active++
		d.slots <- struct{}{}
		d.mu.Unlock()
		return true
	case len(d.pending) < d.maxPending:
		d.pending = append(d.pending, c)
		d.mu.Unlock()
		return false
	}
	d.mu.Unlock()
	d.log.Warn("request refused: too many pending requests", "method", c.req.Name, "request_id", c.req.RequestID)
	d.answer(c, busy.Status, busy.Body())
	return false
}

// work runs c, which holds a slot, then the queued calls while there are
// any. It reports false when a handler overran: the slot went on without
// this goroutine, which stays with the handler (see overrun).
func (d *dispatcher) work(c *call) bool {
	for c != nil {
		if !d.run(c) {
			return false
		}
		c = d.next()
	}
	return true
}

// next hands the caller's slot to the next queued call and returns it, or
// frees the slot and returns nil.
func (d *dispatcher) next() *call {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) > 0 && !d.stopping {
		c := d.pending[0]
		d.pending[0] = nil
		d.pending = d.pending[1:]
		return c
	}
	<-d.slots
	d.active--
	if d.active == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
	return nil
}

// run serves one call that holds a slot, and reports whether its
// goroutine still owns the slot (false when the deadline or the shutdown
// answered first and passed the slot on).
func (d *dispatcher) run(c *call) bool {
	if c.origin.ended() {
		// Its answer could only go on the connection that has closed: the
		// handler does not run for a caller that cannot hear back.
		d.counters.requestsDropped.Add(1)
		d.log.Warn("request dropped: its connection closed before its handler started", "method", c.req.Name, "request_id", c.req.RequestID)
		c.origin.done()
		d.calls.Done()
		return true
	}
	if status, body, ok := checkRequest(c.req); !ok {
		d.answer(c, status, body)
		return true
	}
	d.mu.Lock()
	if d.stopping { // queued calls get no handler once the shutdown began
		d.mu.Unlock()
		d.answer(c, statusUnavailable, errorBody("device shutting down"))
		return true
	}
	c.deadline = time.Now().Add(d.timeout)
	ctx, cancel := context.WithDeadline(d.handlers, c.deadline)
	c.cancel = cancel
	d.handling.push(c)
	if d.handling.head == c {
		d.armWatcherLocked()
	}
	d.mu.Unlock()

	resp, err := d.call(ctx, c)
	cancel()

	d.mu.Lock()
	if c.overran {
		// The deadline or the shutdown answered (see watch); the result is
		// dropped and the slot belongs to someone else now.
		d.mu.Unlock()
		d.log.Warn("method handler returned after its deadline; result dropped", "method", c.req.Name, "request_id", c.req.RequestID)
		return false
	}
	d.handling.remove(c)
	d.mu.Unlock()
	status, body := d.response(c.req, resp, err)
	if err != nil && ctx.Err() == context.DeadlineExceeded && errors.Is(err, context.DeadlineExceeded) {
		// It gave up at its deadline, just before the dispatcher would
		// have answered for it: the same answer.
		status, body = d.timedOut()
	}
	d.answer(c, status, body)
	return true
}

// timedOut is the answer for a handler that did not answer by its
// deadline.
func (d *dispatcher) timedOut() (int, []byte) {
	return statusHandlerTimeout, errorBody(fmt.Sprintf("method handler did not answer within %v", d.timeout))
}

// Handler deadlines. Every handler gets the same timeout, so the calls in
// d.handling, pushed as their handlers start, are also in the order of
// their deadlines, and one timer set for the oldest serves them all. It
// replaces a context.AfterFunc per call, which cost 5 of the 13
// allocations of a call (BenchmarkDispatchSDK/100B: 8 allocations with
// the timer, the echo handler's response included).

// armWatcherLocked makes sure the timer fires by the deadline of the
// oldest call handling; d.mu is held. A timer already set for an earlier
// time is left alone (watch sets it again when it fires), which spares a
// timer operation per call under a steady load.
func (d *dispatcher) armWatcherLocked() {
	at := d.handling.head.deadline
	if d.watcherArmed && !d.watcherAt.After(at) {
		return
	}
	d.watcherArmed, d.watcherAt = true, at
	if d.watcher == nil {
		d.watcher = time.AfterFunc(time.Until(at), d.watch) // runs on its own goroutine each time; stopped at shutdown
		return
	}
	d.watcher.Reset(time.Until(at))
}

// watch answers for the handlers whose deadline has passed (see overrun)
// and sets the timer for the next deadline.
func (d *dispatcher) watch() {
	d.mu.Lock()
	d.watcherArmed = false
	now := time.Now()
	var overran []*call
	for c := d.handling.head; c != nil && !c.deadline.After(now); c = d.handling.head {
		d.handling.remove(c)
		c.overran = true
		overran = append(overran, c)
	}
	if d.handling.head != nil {
		d.armWatcherLocked()
	}
	d.mu.Unlock()
	for _, c := range overran {
		// The handler's context ends by itself at the deadline, with
		// context.DeadlineExceeded.
		go d.overrun(c) // owned by the dispatcher: counted in d.calls until it has answered
	}
}

// overrun answers for a handler whose context ended before it returned:
// 504 past its deadline, 503 when the client shuts down. It passes the
// handler's slot on and releases its goroutine from d.goroutines: the
// handler finishes on its own.
func (d *dispatcher) overrun(c *call) {
	if next := d.next(); next != nil {
		d.start(role{}, next)
	}
	d.goroutines.Done() // the handler's goroutine leaves the pool
	d.mu.Lock()
	stopping := d.stopping
	d.mu.Unlock()
	status, body := d.timedOut()
	if stopping {
		status, body = statusUnavailable, errorBody("device shutting down")
	}
	d.log.Warn("method handler overran", "method", c.req.Name, "request_id", c.req.RequestID, "status", status)
	d.answer(c, status, body)
}

// answer sends c's answer and ends c. The answer must go out by its
// handler's deadline (or now, for a call no handler ran) plus
// answerGrace, and before the shutdown gives up on answers: one that
// cannot is stale, and the transport drops it rather than send it late.
func (d *dispatcher) answer(c *call, status int, body []byte) {
	deadline := c.deadline
	if deadline.IsZero() {
		deadline = time.Now()
	}
	ctx, cancel := context.WithDeadline(d.answers, deadline.Add(answerGrace))
	d.respond(ctx, c, status, body)
	cancel()
	c.origin.done()
	d.calls.Done()
}

// call runs the handler, turning a panic into an error.
func (d *dispatcher) call(ctx context.Context, c *call) (resp *MethodResponse, err error) {
	req := c.req
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("method handler panicked", "method", req.Name, "request_id", req.RequestID,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			resp, err = nil, &MethodError{Status: statusInternal, Message: "method handler panicked"}
		}
	}()
	var payload json.RawMessage
	if len(req.Payload) > 0 {
		payload = req.Payload
	}
	c.handed = MethodRequest{Name: req.Name, RequestID: req.RequestID, Payload: payload}
	return d.handler.ServeMethod(ctx, &c.handed)
}

// response turns a handler's result into the status and body to send,
// refusing bodies the hub would not carry.
func (d *dispatcher) response(req *transport.MethodRequest, resp *MethodResponse, err error) (int, []byte) {
	if err != nil {
		var me *MethodError
		if errors.As(err, &me) {
			return me.Status, me.body()
		}
		d.log.Warn("method handler failed", "method", req.Name, "request_id", req.RequestID, "err", err)
		return statusInternal, errorBody("method handler failed")
	}
	if resp == nil {
		return 200, nullBody
	}
	status := resp.Status
	if status == 0 {
		status = 200
	}
	body := []byte(resp.Payload)
	switch {
	case len(body) == 0:
		return status, nullBody
	case len(body) > MaxPayloadSize:
		d.log.Error("method response too large; answering 500", "method", req.Name, "request_id", req.RequestID, "size", len(body))
		return statusInternal, errorBody(fmt.Sprintf("invalid response: payload of %d bytes exceeds the limit of %d", len(body), MaxPayloadSize))
	case !validJSON(body):
		d.log.Error("method response is not valid JSON; answering 500", "method", req.Name, "request_id", req.RequestID)
		return statusInternal, errorBody("invalid response: payload is not valid JSON")
	}
	return status, body
}

var nullBody = []byte("null")

// checkRequest refuses requests no handler should see.
func checkRequest(req *transport.MethodRequest) (int, []byte, bool) {
	switch {
	case len(req.Payload) > MaxPayloadSize:
		return statusTooLarge, errorBody(fmt.Sprintf("request payload of %d bytes exceeds the limit of %d", len(req.Payload), MaxPayloadSize)), false
	case len(req.Payload) > 0 && !validJSON(req.Payload):
		return statusBadRequest, errorBody("request payload is not valid JSON"), false
	}
	return 0, nil, true
}

// waitIdle waits until no handler holds a slot or ctx is done.
func (d *dispatcher) waitIdle(ctx context.Context) {
	d.mu.Lock()
	if d.active == 0 {
		d.mu.Unlock()
		return
	}
	if d.idle == nil {
		d.idle = make(chan struct{})
	}
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}

// shutdown answers the queued calls 503, lets running handlers finish for
// up to grace, then cancels them (their calls are answered 503 on their
// behalf), gives their answers answerGrace, and waits until every call has
// been answered and every goroutine has ended. Handlers that ignore
// cancellation are left behind: Go cannot stop them. The receivers have
// ended before shutdown starts.
func (d *dispatcher) shutdown(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	d.shutdownUntil(ctx)
}

// shutdownUntil is shutdown with a grace period that lasts until ctx ends.
func (d *dispatcher) shutdownUntil(graceCtx context.Context) {
	d.mu.Lock()
	d.stopping = true
	queued := d.pending
	d.pending = nil
	d.mu.Unlock()
	for _, c := range queued {
		d.answer(c, statusUnavailable, errorBody("device shutting down"))
	}
	d.waitIdle(graceCtx)
	d.mu.Lock()
	var overran []*call
	for c := d.handling.head; c != nil; c = d.handling.head {
		d.handling.remove(c)
		c.overran = true
		overran = append(overran, c)
	}
	if d.watcher != nil {
		d.watcher.Stop() // a watch already started finds the list empty
	}
	d.mu.Unlock()
	for _, c := range overran {
		c.cancel()
		go d.overrun(c) // owned by the dispatcher: counted in d.calls until it has answered
	}
	giveUp := time.AfterFunc(answerGrace, d.giveUpAnswers) // runs on its own goroutine; ends at once
	d.calls.Wait()
	giveUp.Stop()
	d.giveUpAnswers()
	d.closeSpares()
	d.goroutines.Wait()
}
