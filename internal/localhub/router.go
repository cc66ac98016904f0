package localhub

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Routing errors, testable with errors.Is.
var (
	// ErrDeviceNotOnline reports an identity that was not connected and
	// subscribed to methods within the connect timeout.
	ErrDeviceNotOnline = errors.New("localhub: device not online")
	// ErrResponseTimeout reports a device that did not answer within the
	// response timeout.
	ErrResponseTimeout = errors.New("localhub: timed out waiting for the device's response")
	// ErrInvalidResponse reports a device answer the hub cannot accept: a
	// payload over 128 KB, a status that is not an integer, an AMQP answer
	// without IoThub-status. Its call ends at once with this error instead
	// of running out its response timeout.
	ErrInvalidResponse = errors.New("localhub: the device's response is invalid")
)

// deviceSession is the router's view of one authenticated protocol session
// that carries method requests: an MQTT connection, or an AMQP pair of
// method links.
type deviceSession interface {
	// deliver takes a method request for the device as a new call of
	// this session, numbered by the session, and returns the call; the
	// device's answer arrives on the call's answer channel, and only
	// from this session. deliver fails once the session has ended
	// (net.ErrClosed), when it is no longer subscribed to methods
	// (errNotSubscribed), or when ctx ends first; it never waits for the
	// device to read. ctx is also the call's context (pendingCall.ctx).
	deliver(ctx context.Context, req methodRequest) (*pendingCall, error)
	// forget ends a call its caller no longer waits for.
	forget(c *pendingCall)
	// drop closes the session's connection; reason is for the logs.
	drop(reason string)
}

// methodRequest is one invocation on its way to a device.
type methodRequest struct {
	name    string
	payload []byte
	qos     byte // the QoS the identity was granted for method requests (MQTT)
}

// methodResponse is a device's answer, or why the hub refused it.
type methodResponse struct {
	status  int
	payload []byte
	// err, when set, is why the hub could not accept the device's answer
	// (ErrInvalidResponse); status and payload are then unset.
	err error
}

// savedSubscription is the method subscription of an MQTT session with
// CleanSession=0, kept across connections of the identity.
type savedSubscription struct {
	subscribed bool
	qos        byte
}

// endpoint is the router's state for one identity.
type endpoint struct {
	live       deviceSession // the connected session, or nil
	clean      bool          // live session asked for a clean session
	subscribed bool          // live session is subscribed to methods
	qos        byte          // granted QoS of that subscription
	saved      *savedSubscription
	waiting    int // calls waiting for the identity to connect and subscribe
	// changed is closed and replaced whenever live, subscribed or waiting
	// change, so waiters wake up without polling.
	changed chan struct{}
}

func (e *endpoint) notify() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// router connects REST invocations with device sessions: which session is
// live for an identity, whether it is subscribed, and which calls await an
// answer. It never calls a session while holding its lock.
type router struct {
	mu        sync.Mutex
	endpoints map[string]*endpoint
}

func newRouter() *router {
	return &router{endpoints: map[string]*endpoint{}}
}

// endpointLocked returns the identity's endpoint, creating it; r.mu held.
func (r *router) endpointLocked(identity string) *endpoint {
	e, ok := r.endpoints[identity]
	if !ok {
		e = &endpoint{changed: make(chan struct{})}
		r.endpoints[identity] = e
	}
	return e
}

// attach makes s the live session of identity and returns the session it
// replaces (the caller drops it) and, for clean=false, the subscription
// kept from earlier sessions (nil when there was none: no session present).
func (r *router) attach(identity string, s deviceSession, clean bool) (previous deviceSession, restored *savedSubscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.endpointLocked(identity)
	previous = e.live
	if previous != nil && !e.clean {
		e.saved = &savedSubscription{subscribed: e.subscribed, qos: e.qos}
	}
	if clean {
		e.saved = nil
	}
	e.live, e.clean, e.subscribed, e.qos = s, clean, false, 0
	if e.saved != nil {
		restored = &savedSubscription{subscribed: e.saved.subscribed, qos: e.saved.qos}
		e.subscribed, e.qos = e.saved.subscribed, e.saved.qos
	}
	e.notify()
	return previous, restored
}

// detach removes s if it is still the live session of identity, keeping
// its subscription when it asked for a persistent session.
func (r *router) detach(identity string, s deviceSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.endpointLocked(identity)
	if e.live != s {
		return
	}
	if !e.clean {
		e.saved = &savedSubscription{subscribed: e.subscribed, qos: e.qos}
	}
	e.live, e.subscribed, e.qos = nil, false, 0
	e.notify()
}

// setSubscribed records that s subscribed to (or unsubscribed from) method
// requests at qos, if s is still the live session.
func (r *router) setSubscribed(identity string, s deviceSession, subscribed bool, qos byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.endpointLocked(identity)
	if e.live != s {
		return
	}
	e.subscribed, e.qos = subscribed, qos
	e.notify()
}

// ready returns the live session of identity if it is subscribed, its
// granted QoS, and a channel closed at the next change.
func (r *router) ready(identity string) (deviceSession, byte, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.endpointLocked(identity)
	if e.live != nil && e.subscribed {
		return e.live, e.qos, e.changed
	}
	return nil, 0, e.changed
}

// waitReady waits until identity is connected and subscribed, until
// deadline (zero: no deadline) or until ctx is done. A call that waits is
// counted for waitCallsWaiting.
func (r *router) waitReady(ctx context.Context, identity string, deadline time.Time, call bool) (deviceSession, byte, error) {
	if s, qos, _ := r.ready(identity); s != nil {
		return s, qos, nil
	}
	if call {
		r.countWaiting(identity, 1)
		defer r.countWaiting(identity, -1)
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	for {
		s, qos, changed := r.ready(identity)
		if s != nil {
			return s, qos, nil
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return nil, 0, ErrDeviceNotOnline
		}
		select {
		case <-changed:
		case <-timeout:
			return nil, 0, ErrDeviceNotOnline
		case <-ctx.Done():
			return nil, 0, context.Cause(ctx)
		}
	}
}

// waitOffline waits until identity has no live session subscribed to
// methods, or ctx ends.
func (r *router) waitOffline(ctx context.Context, identity string) error {
	for {
		s, _, changed := r.ready(identity)
		if s == nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// countWaiting adds delta to the calls waiting for identity.
func (r *router) countWaiting(identity string, delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.endpointLocked(identity)
	e.waiting += delta
	e.notify()
}

// waitCallsWaiting waits until at least n calls wait for identity to
// connect and subscribe, or ctx ends.
func (r *router) waitCallsWaiting(ctx context.Context, identity string, n int) error {
	for {
		r.mu.Lock()
		e := r.endpointLocked(identity)
		waiting, changed := e.waiting, e.changed
		r.mu.Unlock()
		if waiting >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// errNotSubscribed is what a session's deliver returns once it has
// unsubscribed from methods, though still connected.
var errNotSubscribed = errors.New("localhub: session is not subscribed to methods")

// invoke sends a method request to identity and waits for its answer. It
// waits up to connectTimeout for the identity to be connected and
// subscribed, then up to responseTimeout for the answer, counted from the
// moment the request is handed to the device's session: handing it over
// never holds the caller past that deadline either.
//
// The answer must come from the session the request went out on. If that
// session ends first, the call runs out its response timeout, as on IoT
// Hub: the request is never sent again (a handler runs at most once), and
// an answer arriving on a later connection names a request of that
// connection, not this one.
func (r *router) invoke(ctx context.Context, identity, method string, payload []byte, connectTimeout, responseTimeout time.Duration) (methodResponse, error) {
	return r.call(ctx, ctx, identity, method, payload, time.Now().Add(connectTimeout), responseTimeout, nil)
}

// call is invoke with the wait for the device and the call itself under
// contexts of their own, and an absolute connect deadline: waitCtx ends
// only the wait for the identity to connect and subscribe (a job's
// cancellation stops devices not yet called), ctx ends both. delivered,
// when set, runs once the request has been handed to the device's
// session, the moment the call can no longer be taken back.
func (r *router) call(waitCtx, ctx context.Context, identity, method string, payload []byte, connectDeadline time.Time, responseTimeout time.Duration, delivered func()) (methodResponse, error) {
	if waitCtx != ctx {
		var stop context.CancelCauseFunc
		waitCtx, stop = context.WithCancelCause(waitCtx)
		defer stop(nil)
		unlink := context.AfterFunc(ctx, func() { stop(context.Cause(ctx)) })
		defer unlink()
	}
	for {
		s, qos, err := r.waitReady(waitCtx, identity, connectDeadline, true)
		if err != nil {
			return methodResponse{}, err
		}
		callCtx, cancel := context.WithTimeoutCause(ctx, responseTimeout, ErrResponseTimeout)
		c, err := s.deliver(callCtx, methodRequest{name: method, payload: payload, qos: qos})
		if err != nil {
			ended := context.Cause(callCtx) // nil while the call goes on
			cancel()
			if ended != nil {
				return methodResponse{}, ended
			}
			if !errors.Is(err, errNotSubscribed) {
				// The session ended between the check and the delivery; it
				// detaches itself, so the next wait sees the change.
				r.detach(identity, s)
			}
			continue // wait for the identity as for any device
		}
		if delivered != nil {
			delivered()
		}
		resp, err := awaitAnswer(callCtx, c)
		s.forget(c)
		cancel()
		return resp, err
	}
}

// awaitAnswer waits for c's answer until ctx ends; an answer that is
// already there wins over the end of ctx.
func awaitAnswer(ctx context.Context, c *pendingCall) (methodResponse, error) {
	select {
	case resp := <-c.answer:
		return resp, resp.err
	case <-ctx.Done():
	}
	select {
	case resp := <-c.answer:
		return resp, resp.err
	default:
		return methodResponse{}, context.Cause(ctx)
	}
}

// live returns identity's live session, or nil.
func (r *router) live(identity string) deviceSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endpointLocked(identity).live
}

// disconnect drops the live session of identity, reporting how many were
// dropped (0 or 1).
func (r *router) disconnect(identity string) int {
	r.mu.Lock()
	e := r.endpointLocked(identity)
	s := e.live
	r.mu.Unlock()
	if s == nil {
		return 0
	}
	s.drop("disconnected by the hub")
	r.detach(identity, s)
	return 1
}
