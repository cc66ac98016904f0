package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

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

// dispatcher runs handlers on a pool of at most max slots, queueing up to
// maxPending requests behind them. Handlers run on pooled workers (see
// workers.go). Each call is answered exactly once (see call): with the
// handler's result, or on the handler's behalf when its deadline passes or
// the client shuts down, whichever is first. A handler that overruns its
// deadline gives its slot back at the deadline, so handlers that ignore
// their context cannot starve the others.
type dispatcher struct {
	handler    MethodHandler
	respond    func(ctx context.Context, c *call, status int, body []byte)
	timeout    time.Duration
	max        int
	maxPending int
	log        *slog.Logger
	counters   *counters

	// stopping is set at the end of the shutdown grace period: handlers
	// still running are cancelled and no new one starts.
	stopping atomic.Bool
	// answersOver is set answerGrace after stopping, so that an answer
	// waiting for a connection or an acknowledgement does not hold the
	// shutdown.
	answersOver atomic.Bool

	mu      sync.Mutex
	active  int                // slots taken
	pending []*call            // waiting for a slot
	running map[*call]struct{} // holding a slot or answering after an overrun; shutdown cancels them
	idle    chan struct{}      // closed when active drops to 0; made by drain
	parked  []*worker          // the pool's parked workers, most recent last
	closed  bool               // the pool is closed: workers end instead of parking

	fewestParked int           // low-water mark of len(parked) since the last sweep
	sweeping     bool          // sweeper is set
	sweeper      *time.Timer   // runs sweep
	sweepEnded   chan struct{} // closed by a sweep that found the pool closed

	// calls counts the calls in our care: added on receipt, done once
	// answered. shutdown waits on it.
	calls sync.WaitGroup
	// workers counts the workers in the pool; closePool waits on it.
	workers sync.WaitGroup
	// spawned counts the workers ever started, for tests.
	spawned atomic.Int32
}

func newDispatcher(h MethodHandler, o *ClientOptions, respond func(context.Context, *call, int, []byte), counters *counters) *dispatcher {
	return &dispatcher{
		handler: h, respond: respond, timeout: o.MethodTimeout,
		max: o.MaxConcurrentMethods, maxPending: o.MaxPendingMethods, log: o.Logger,
		counters: counters,
		running:  make(map[*call]struct{}),
	}
}

// submit takes a request that arrived on the connection o from the
// receive loop. It never blocks on a handler: the request starts at once,
// waits in the queue, or, when the queue is full, is answered 503 right
// here. The receive loop has ended before shutdown starts, so submit
// never meets a closed pool.
func (d *dispatcher) submit(req *transport.MethodRequest, o *origin) {
	c := newCall(d, req, o)
	o.add()
	d.calls.Add(1)
	d.mu.Lock()
	switch {
	case d.active < d.max:
		d.active++
		w := d.launchLocked(c)
		d.mu.Unlock()
		d.launch(w, c)
		return
	case len(d.pending) < d.maxPending:
		d.pending = append(d.pending, c)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	d.log.Warn("request refused: too many pending requests", "method", req.Name, "request_id", req.RequestID)
	d.deliver(c, statusUnavailable, errorBody("device busy: too many pending requests"))
	d.calls.Done()
}

// dequeueLocked takes the next queued call, if any. d.mu is held.
func (d *dispatcher) dequeueLocked() *call {
	if len(d.pending) == 0 {
		return nil
	}
	c := d.pending[0]
	d.pending[0] = nil
	d.pending = d.pending[1:]
	return c
}

// releaseSlotLocked frees a slot. d.mu is held.
func (d *dispatcher) releaseSlotLocked() {
	d.active--
	if d.active == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
}

// run serves one call on a worker and reports whether the worker still
// owns its slot (false when the deadline or the shutdown answered first
// and passed the slot on).
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
		d.deliver(c, status, body)
		d.calls.Done()
		return true
	}
	if !c.begin(d.timeout) { // shutting down: queued calls get no handler
		d.deliver(c, statusUnavailable, errorBody("device shutting down"))
		d.calls.Done()
		return true
	}
	resp, err := d.call(c)
	if !c.end() {
		// The deadline or the shutdown answered; the result is dropped and
		// the slot belongs to someone else now.
		d.log.Warn("method handler returned after its deadline; result dropped", "method", c.req.Name, "request_id", c.req.RequestID)
		return false
	}
	status, body := d.response(c.req, resp, err)
	d.deliver(c, status, body)
	d.calls.Done()
	return true
}

// overran answers for a handler whose deadline passed or that the
// shutdown cancelled, and passes its slot on. The handler's worker stays
// with the handler, outside the pool, until the handler returns. It runs
// on the timer's goroutine or on one shutdown started, accounted for by
// d.calls.
func (d *dispatcher) overran(c *call) {
	d.mu.Lock()
	next := d.dequeueLocked()
	var w *worker
	if next != nil {
		w = d.launchLocked(next)
	} else {
		d.releaseSlotLocked()
	}
	d.mu.Unlock()
	if next != nil {
		d.launch(w, next)
	}
	d.workers.Done() // the worker left the pool
	status, body := d.overrun()
	d.log.Warn("method handler overran", "method", c.req.Name, "request_id", c.req.RequestID, "status", status)
	d.deliver(c, status, body)
	d.mu.Lock()
	delete(d.running, c)
	d.mu.Unlock()
	d.calls.Done()
}

// overrun is the answer for a handler whose context ended: 504 past its
// deadline, 503 when the client shuts down.
func (d *dispatcher) overrun() (int, []byte) {
	if d.stopping.Load() {
		return statusUnavailable, errorBody("device shutting down")
	}
	return statusHandlerTimeout, errorBody(fmt.Sprintf("method handler did not answer within %v", d.timeout))
}

// deliver sends a call's answer under the call's answer context: bounded
// by respondTimeout and given up at the end of the shutdown.
func (d *dispatcher) deliver(c *call, status int, body []byte) {
	c.startAnswer()
	d.respond((*answerContext)(c), c, status, body)
	c.endAnswer()
	c.origin.done()
}

// call runs the handler, turning a panic into an error.
func (d *dispatcher) call(c *call) (resp *MethodResponse, err error) {
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
	return d.handler.ServeMethod((*handlerContext)(c), &c.handed)
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

// drain waits until no handler holds a slot or ctx is done.
func (d *dispatcher) drain(ctx context.Context) {
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

// shutdown lets running handlers finish for up to grace, then cancels them
// (their calls are answered 503 on their behalf), waits until every call
// has been answered, and closes the pool. Handlers that ignore
// cancellation are left behind: Go cannot stop them.
func (d *dispatcher) shutdown(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	d.drain(ctx)
	cancel()
	d.stopping.Store(true)
	for _, c := range d.runningCalls() {
		if c.abort() {
			go d.overran(c) // owned by the dispatcher: counted in d.calls until it has answered
		}
	}
	// The answers of cancelled handlers get answerGrace to go out; then
	// answers still waiting for a connection or an acknowledgement give up.
	gaveUp := make(chan struct{})
	giveUp := time.AfterFunc(answerGrace, func() { // runs on its own goroutine; joined below
		d.giveUpAnswers()
		close(gaveUp)
	})
	d.calls.Wait()
	if !giveUp.Stop() {
		<-gaveUp
	}
	d.giveUpAnswers()
	d.closePool()
}

// giveUpAnswers ends the delivery of every answer still under way, and of
// any answer started from now on.
func (d *dispatcher) giveUpAnswers() {
	d.answersOver.Store(true)
	for _, c := range d.runningCalls() {
		c.giveUpAnswer()
	}
}

// runningCalls returns the calls holding a slot or answering after an
// overrun.
func (d *dispatcher) runningCalls() []*call {
	d.mu.Lock()
	defer d.mu.Unlock()
	calls := make([]*call, 0, len(d.running))
	for c := range d.running {
		calls = append(calls, c)
	}
	return calls
}

// answerGrace is how long answers may still take once the shutdown grace
// period is over.
const answerGrace = time.Second
