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

// call is one request in the client's care, from receipt to answer.
type call struct {
	req      *transport.MethodRequest
	handed   MethodRequest // what the handler sees, kept here to spare an allocation
	answered atomic.Bool   // set by whoever answers first: the handler or its deadline
}

// dispatcher runs handlers on an elastic pool of at most max goroutines,
// queueing up to maxPending requests behind them. Each call is answered
// exactly once: with the handler's result, or on the handler's behalf
// when its deadline passes or the client shuts down, whichever is first. A
// handler that overruns its deadline gives its slot back at the deadline,
// so handlers that ignore their context cannot starve the others.
type dispatcher struct {
	handler    MethodHandler
	respond    func(ctx context.Context, c *call, status int, body []byte)
	timeout    time.Duration
	max        int
	maxPending int
	log        *slog.Logger

	// base is the parent of every handler context; cancelled at the end of
	// the shutdown grace period.
	base       context.Context
	cancelBase context.CancelFunc
	// answers is the parent of every answer's delivery; cancelled
	// answerGrace after base, so that an answer waiting for a connection
	// or an acknowledgement does not hold the shutdown.
	answers       context.Context
	cancelAnswers context.CancelFunc

	mu      sync.Mutex
	active  int     // slots taken
	pending []*call // waiting for a slot
	idle    chan struct{}

	// calls counts the calls in our care: added on receipt, done once
	// answered (or dropped). Close waits on it.
	calls sync.WaitGroup
}

func newDispatcher(h MethodHandler, o *ClientOptions, respond func(context.Context, *call, int, []byte)) *dispatcher {
	base, cancel := context.WithCancel(context.Background())
	answers, cancelAnswers := context.WithCancel(context.Background())
	return &dispatcher{
		handler: h, respond: respond, timeout: o.MethodTimeout,
		max: o.MaxConcurrentMethods, maxPending: o.MaxPendingMethods, log: o.Logger,
		base: base, cancelBase: cancel, answers: answers, cancelAnswers: cancelAnswers,
	}
}

// submit takes a request from the receive loop. It never blocks on a
// handler: the request starts at once, waits in the queue, or, when the
// queue is full, is answered 503 right here.
func (d *dispatcher) submit(req *transport.MethodRequest) {
	c := &call{req: req}
	d.calls.Add(1)
	d.mu.Lock()
	switch {
	case d.active < d.max:
		d.active++
		d.mu.Unlock()
		go d.work(c) // owned by the dispatcher: counted in d.calls until answered
		return
	case len(d.pending) < d.maxPending:
		d.pending = append(d.pending, c)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	d.log.Warn("request refused: too many pending requests", "method", req.Name, "request_id", req.RequestID)
	d.finish(c, statusUnavailable, errorBody("device busy: too many pending requests"))
}

// work runs c, then any queued calls, until the queue is empty or its
// handler overran its deadline (its slot was then handed on already).
func (d *dispatcher) work(c *call) {
	for c != nil {
		if !d.run(c) {
			return
		}
		c = d.next()
	}
}

// next hands the slot to the next queued call, or frees it.
func (d *dispatcher) next() *call {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) > 0 {
		c := d.pending[0]
		d.pending[0] = nil
		d.pending = d.pending[1:]
		return c
	}
	d.active--
	if d.active == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
	return nil
}

// run serves one call and reports whether this goroutine still owns its
// slot (false when the deadline answered first and passed the slot on).
func (d *dispatcher) run(c *call) bool {
	if status, body, ok := checkRequest(c.req); !ok {
		d.finish(c, status, body)
		return true
	}
	if d.base.Err() != nil { // shutting down: queued calls get no handler
		d.finish(c, statusUnavailable, errorBody("device shutting down"))
		return true
	}
	ctx, cancel := context.WithTimeout(d.base, d.timeout)
	defer cancel()
	// When the deadline passes or the client shuts down first, answer on
	// the handler's behalf and pass the slot on, so that a handler that
	// ignores its context neither leaves the caller waiting nor holds a
	// slot. The callback's goroutine is accounted for by d.calls.
	stop := context.AfterFunc(ctx, func() {
		if !c.answered.CompareAndSwap(false, true) {
			return
		}
		if next := d.next(); next != nil {
			go d.work(next) // owned by the dispatcher, like the others
		}
		status, body := d.overrun()
		d.log.Warn("method handler overran", "method", c.req.Name, "request_id", c.req.RequestID, "status", status)
		d.send(c, status, body)
	})
	resp, err := d.call(ctx, c)
	if !stop() && c.answered.Load() {
		// The deadline answered; the result is dropped and the slot
		// belongs to someone else now.
		d.log.Warn("method handler returned after its deadline; result dropped", "method", c.req.Name, "request_id", c.req.RequestID)
		return false
	}
	if !c.answered.CompareAndSwap(false, true) {
		return false
	}
	var status int
	var body []byte
	if err != nil && ctx.Err() != nil {
		// The handler gave up because its context ended: answer as the
		// deadline would have, whoever got here first.
		status, body = d.overrun()
	} else {
		status, body = d.response(c.req, resp, err)
	}
	d.send(c, status, body)
	return true
}

// overrun is the answer for a handler whose context ended: 504 past its
// deadline, 503 when the client shuts down.
func (d *dispatcher) overrun() (int, []byte) {
	if d.base.Err() != nil {
		return statusUnavailable, errorBody("device shutting down")
	}
	return statusHandlerTimeout, errorBody(fmt.Sprintf("method handler did not answer within %v", d.timeout))
}

// finish answers a call that no handler saw.
func (d *dispatcher) finish(c *call, status int, body []byte) {
	c.answered.Store(true)
	d.send(c, status, body)
}

// send delivers the answer and releases the call.
func (d *dispatcher) send(c *call, status int, body []byte) {
	defer d.calls.Done()
	d.respond(d.answers, c, status, body)
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
	case !json.Valid(body):
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
	case len(req.Payload) > 0 && !json.Valid(req.Payload):
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
// (their calls are answered 503 on their behalf) and waits until every
// call has been answered. Handlers that ignore cancellation are left
// behind: Go cannot stop them.
func (d *dispatcher) shutdown(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	d.drain(ctx)
	cancel()
	d.cancelBase()
	// The answers of cancelled handlers get answerGrace to go out; then
	// answers still waiting for a connection or an acknowledgement give up.
	giveUp := time.AfterFunc(answerGrace, d.cancelAnswers)
	d.calls.Wait()
	giveUp.Stop()
	d.cancelAnswers()
}

// answerGrace is how long answers may still take once the shutdown grace
// period is over.
const answerGrace = time.Second
