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

	"github.com/directmethods/iotdevice/transport"
)

// Statuses the client answers with on a handler's behalf, named as in
// net/http (StatusNotImplemented, the mux's, is in mux.go).
const (
	// StatusBadRequest answers a request whose payload is not JSON.
	StatusBadRequest = 400
	// StatusRequestEntityTooLarge answers a request whose payload exceeds
	// MaxPayloadSize.
	StatusRequestEntityTooLarge = 413
	// StatusInternalServerError answers for a handler that failed,
	// panicked, or returned a response the hub would not carry.
	StatusInternalServerError = 500
	// StatusServiceUnavailable answers requests the client cannot take:
	// while it shuts down, or (from the transport) beyond its queue.
	StatusServiceUnavailable = 503
	// StatusGatewayTimeout answers for a handler still running at its
	// deadline (ClientOptions.MethodTimeout).
	StatusGatewayTimeout = 504
)

// respondTimeout bounds the delivery of the answers refused during the
// shutdown (see Client.refuse).
const respondTimeout = 30 * time.Second

// answerGrace is how long an answer may still take to go out once its
// handler's deadline has passed, and how long answers may still take once
// the shutdown grace period is over.
const answerGrace = time.Second

// dispatcher runs handlers for the requests that the connections' crews
// take (crew.go), at most MaxConcurrentMethods at a time, and answers each
// request exactly once, on the connection it arrived on. A crew's
// goroutine takes a request only while it holds a handler slot, so
// requests beyond the slots wait in the transport's queue, the only one,
// whose overflow the transport answers 503.
type dispatcher struct {
	handler  MethodHandler
	timeout  time.Duration
	log      *slog.Logger
	counters *counters

	slots chan struct{} // one token per handler running

	// handlers is the parent of every handler's context: the values of
	// Run's context, without its cancellation (the shutdown cancels
	// handlers one by one, after its grace period).
	handlers      context.Context
	answers       context.Context // cancelled when the shutdown gives up on answers
	giveUpAnswers context.CancelFunc

	mu       sync.Mutex
	crew     *crew         // the current connection's (crew.go)
	running  callList      // calls whose handlers run, or whose answers go out
	idle     chan struct{} // closed when running empties; made by waitIdle
	stopping bool          // shutting down: no handler starts any more

	calls      sync.WaitGroup // calls in our care, from receipt to answer
	goroutines sync.WaitGroup // the handlers' goroutines, but those left to a handler past its deadline
}

// call is one request in the client's care.
type call struct {
	req    *transport.MethodRequest
	origin *origin       // the connection req arrived on, where its answer goes
	handed MethodRequest // what the handler sees; kept here to spare an allocation

	deadline   time.Time   // the handler's, once it starts
	handlerCtx callContext // set up before the call is in running
	answerCtx  callContext
	prev, next *call // in dispatcher.running
}

// callList is the calls whose handlers run or whose answers go out,
// linked through the calls themselves: adding or removing one costs
// neither an allocation nor a hash.
type callList struct {
	head *call
	n    int
}

func (l *callList) add(c *call) {
	c.next = l.head
	if l.head != nil {
		l.head.prev = c
	}
	l.head = c
	l.n++
}

func (l *callList) remove(c *call) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	l.n--
}

// newDispatcher returns a dispatcher whose handlers' contexts carry the
// values of runCtx (but not its cancellation: the shutdown decides when
// handlers are cancelled).
func newDispatcher(runCtx context.Context, h MethodHandler, o *ClientOptions, counters *counters) *dispatcher {
	d := &dispatcher{
		handler: h, timeout: o.MethodTimeout, log: o.Logger, counters: counters,
		slots: make(chan struct{}, o.MaxConcurrentMethods),
	}
	d.handlers = context.WithoutCancel(runCtx)
	d.answers, d.giveUpAnswers = context.WithCancel(d.handlers)
	return d
}

// dropped counts and logs a request whose connection ended before its
// handler could start. The handler does not run for a caller that cannot
// hear back.
func (d *dispatcher) dropped(req *transport.MethodRequest) {
	d.counters.requestsDropped.Add(1)
	d.log.Warn("request dropped: its connection closed before its handler started", "method", req.Name, "request_id", req.RequestID)
}

// take counts req, just received on the connection o, as a call in the
// client's care.
func (d *dispatcher) take(req *transport.MethodRequest, o *origin) *call {
	o.add()
	d.calls.Add(1)
	return &call{req: req, origin: o}
}

// run serves one call on a goroutine that holds a slot, whose timer dt
// keeps the handler's deadline: it checks the request, runs the handler
// and answers. If the deadline passes (or the shutdown gives up on the
// handler) first, overrun answers on the handler's behalf and frees the
// slot, and run reports false when the handler returns: its result is
// dropped, and the goroutine, no longer the dispatcher's, must end.
func (d *dispatcher) run(c *call, dt *deadlineTimer) bool {
	if c.origin.closed() {
		d.dropped(c.req)
		c.origin.done()
		d.calls.Done()
		return true
	}
	if status, body, ok := checkRequest(c.req); !ok {
		d.answer(c, status, body)
		return true
	}
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		d.answer(c, StatusServiceUnavailable, errorBody("device shutting down"))
		return true
	}
	c.deadline = time.Now().Add(d.timeout)
	c.handlerCtx.parent, c.handlerCtx.deadline = d.handlers, c.deadline
	d.running.add(c)
	d.mu.Unlock()

	dt.arm(c)
	resp, err := d.call(&c.handlerCtx, c)
	dt.disarm()
	if !c.handlerCtx.end(context.Canceled) {
		// Its context ended first, at the deadline or the end of the
		// shutdown, and overrun answered; it took this goroutine out of
		// d.goroutines.
		d.log.Warn("method handler returned after its deadline; result dropped", "method", c.req.Name, "request_id", c.req.RequestID)
		return false
	}
	status, body := d.response(c.req, resp, err)
	d.answer(c, status, body)
	d.stopped(c)
	return true
}

// finish frees the slot of a goroutine that leaves the dispatcher: the
// current connection's crew may need a member in its place.
func (d *dispatcher) finish() {
	<-d.slots
	d.mu.Lock()
	w := d.crew
	d.mu.Unlock()
	if w != nil {
		w.grow()
	}
	d.goroutines.Done() // last: grow may count a goroutine in
}

// stopped takes c out of the running calls, once it is answered.
func (d *dispatcher) stopped(c *call) {
	d.mu.Lock()
	d.running.remove(c)
	if d.running.n == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
	d.mu.Unlock()
}

// overrun answers for a handler whose context ended before it returned:
// 504 past its deadline, 503 when the client shuts down. It frees the
// handler's slot and releases its goroutine from d.goroutines: the
// handler finishes on its own.
func (d *dispatcher) overrun(c *call) {
	status, body := d.overrunAnswer()
	d.log.Warn("method handler overran", "method", c.req.Name, "request_id", c.req.RequestID, "status", status)
	d.answer(c, status, body)
	d.stopped(c)
	d.finish()
}

// overrunAnswer is the answer for a handler whose context ended before it
// answered: 504 past its deadline, 503 when the shutdown cancelled it.
func (d *dispatcher) overrunAnswer() (int, []byte) {
	d.mu.Lock()
	stopping := d.stopping
	d.mu.Unlock()
	if stopping {
		return StatusServiceUnavailable, errorBody("device shutting down")
	}
	return StatusGatewayTimeout, errorBody(fmt.Sprintf("method handler did not answer within %v", d.timeout))
}

// answer sends c's answer on the connection its request arrived on, and
// never on another (see origin), and ends c. The answer must go out by
// its handler's deadline (or now, for a call no handler ran) plus
// answerGrace, and before the shutdown gives up on answers: one that
// cannot is stale, and the transport drops it rather than send it late.
// An answer that does not go out is counted in Stats.AnswersLost; the
// transport reports the ones the hub does not confirm (Client.answerLost).
func (d *dispatcher) answer(c *call, status int, body []byte) {
	deadline := c.deadline
	if deadline.IsZero() {
		deadline = time.Now()
	}
	c.answerCtx.parent, c.answerCtx.deadline, c.answerCtx.answer = d.answers, deadline.Add(answerGrace), true
	err := c.origin.respond(&c.answerCtx, c.req, status, body)
	c.answerCtx.release()
	if err != nil {
		d.counters.answersLost.Add(1)
		d.log.Warn("method answer not sent; the caller gets a timeout from the hub",
			"method", c.req.Name, "request_id", c.req.RequestID, "status", status, "err", err)
	} else if d.log.Enabled(context.Background(), slog.LevelDebug) { // spare the arguments' allocations otherwise
		d.log.Debug("method answered", "method", c.req.Name, "request_id", c.req.RequestID, "status", status)
	}
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
			resp, err = nil, &MethodError{Status: StatusInternalServerError, Message: "method handler panicked"}
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
		return StatusInternalServerError, errorBody("method handler failed")
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
		return StatusInternalServerError, errorBody(fmt.Sprintf("invalid response: payload of %d bytes exceeds the limit of %d", len(body), MaxPayloadSize))
	case !json.Valid(body):
		d.log.Error("method response is not valid JSON; answering 500", "method", req.Name, "request_id", req.RequestID)
		return StatusInternalServerError, errorBody("invalid response: payload is not valid JSON")
	}
	return status, body
}

var nullBody = []byte("null")

// checkRequest refuses requests no handler should see.
func checkRequest(req *transport.MethodRequest) (int, []byte, bool) {
	switch {
	case len(req.Payload) > MaxPayloadSize:
		return StatusRequestEntityTooLarge, errorBody(fmt.Sprintf("request payload of %d bytes exceeds the limit of %d", len(req.Payload), MaxPayloadSize)), false
	case len(req.Payload) > 0 && !json.Valid(req.Payload):
		return StatusBadRequest, errorBody("request payload is not valid JSON"), false
	}
	return 0, nil, true
}

// waitIdle waits until no handler runs and no answer is going out, or ctx
// is done.
func (d *dispatcher) waitIdle(ctx context.Context) {
	d.mu.Lock()
	if d.running.n == 0 {
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

// shutdown lets running handlers finish and their answers go out for up to
// grace, then cancels them (their calls are answered 503 on their
// behalf), gives their answers answerGrace, and waits until every call has
// been answered and every goroutine has ended. Handlers that ignore
// cancellation are left behind: Go cannot stop them. The crews have
// stopped taking requests before shutdown starts.
func (d *dispatcher) shutdown(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	d.shutdownUntil(ctx)
}

// shutdownUntil is shutdown with a grace period that lasts until ctx ends.
func (d *dispatcher) shutdownUntil(graceCtx context.Context) {
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	d.waitIdle(graceCtx)
	d.mu.Lock()
	running := make([]*call, 0, d.running.n)
	for c := d.running.head; c != nil; c = c.next {
		running = append(running, c)
	}
	d.mu.Unlock()
	for _, c := range running {
		if c.handlerCtx.end(context.Canceled) {
			go d.overrun(c) // answers 503 for it; joined through d.goroutines, which overrun leaves last
		}
	}
	giveUp := time.AfterFunc(answerGrace, d.giveUpAnswers) // runs on its own goroutine; ends at once
	d.calls.Wait()
	giveUp.Stop()
	d.giveUpAnswers()
	d.goroutines.Wait()
}
