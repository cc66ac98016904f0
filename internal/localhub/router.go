package localhub

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
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
)

// deviceSession is the router's view of one authenticated protocol session
// (MQTT today; AMQP plugs in through the same seam).
type deviceSession interface {
	// deliver queues a method request for the device. It fails once the
	// session has ended or ctx is done; it never waits for the device.
	deliver(ctx context.Context, req methodRequest) error
	// drop closes the session's connection; reason is for the logs.
	drop(reason string)
}

// endingSession is implemented by sessions that lose the calls delivered
// through them when they end (AMQP method links): a call whose session
// ends before the answer waits again for the identity, within what is
// left of its connect timeout, and is delivered anew.
type endingSession interface {
	// ended is closed when the session can no longer carry answers.
	ended() <-chan struct{}
}

// methodRequest is one invocation on its way to a device.
type methodRequest struct {
	name    string
	rid     string
	payload []byte
	qos     byte // the QoS the identity was granted for method requests (MQTT)
}

// methodResponse is a device's answer.
type methodResponse struct {
	status  int
	payload []byte
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
	// changed is closed and replaced whenever live or subscribed change,
	// so waiters wake up without polling.
	changed chan struct{}
}

func (e *endpoint) notify() {
	close(e.changed)
	e.changed = make(chan struct{})
}

type pendingKey struct{ identity, rid string }

// router connects REST invocations with device sessions: which session is
// live for an identity, whether it is subscribed, and which calls await an
// answer. It never calls a session while holding its lock.
type router struct {
	nextRID atomic.Uint64
	// testHookWaiting, when set, runs each time a call starts waiting for
	// an identity to connect and subscribe.
	testHookWaiting func(identity string)

	mu        sync.Mutex
	endpoints map[string]*endpoint
	pending   map[pendingKey]chan methodResponse
}

func newRouter() *router {
	return &router{endpoints: map[string]*endpoint{}, pending: map[pendingKey]chan methodResponse{}}
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
// deadline (zero: no deadline) or until ctx is done.
func (r *router) waitReady(ctx context.Context, identity string, deadline time.Time) (deviceSession, byte, error) {
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
		if r.testHookWaiting != nil {
			r.testHookWaiting(identity)
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

// errNotSubscribed is what a session's deliver returns once it has
// unsubscribed from methods, though still connected.
var errNotSubscribed = errors.New("localhub: session is not subscribed to methods")

// invoke sends a method request to identity and waits for its answer. It
// waits up to connectTimeout for the identity to be connected and
// subscribed, then up to responseTimeout for the answer.
func (r *router) invoke(ctx context.Context, identity, method string, payload []byte, connectTimeout, responseTimeout time.Duration) (methodResponse, error) {
	rid := strconv.FormatUint(r.nextRID.Add(1), 16)
	answer := make(chan methodResponse, 1)
	key := pendingKey{identity, rid}
	r.mu.Lock()
	r.pending[key] = answer
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, key)
		r.mu.Unlock()
	}()

	connectDeadline := time.Now().Add(connectTimeout)
	var responseDeadline <-chan time.Time // set at the first delivery
	for {
		s, qos, err := r.waitReady(ctx, identity, connectDeadline)
		if err != nil {
			return methodResponse{}, err
		}
		err = s.deliver(ctx, methodRequest{name: method, rid: rid, payload: payload, qos: qos})
		if err != nil {
			if ctx.Err() != nil {
				return methodResponse{}, context.Cause(ctx)
			}
			if errors.Is(err, errNotSubscribed) {
				continue // it unsubscribed since: wait for it as for any device
			}
			// The session ended between the check and the delivery; it
			// detaches itself, so the next wait sees the change.
			r.detach(identity, s)
			continue
		}
		if responseDeadline == nil {
			t := time.NewTimer(responseTimeout)
			defer t.Stop()
			responseDeadline = t.C
		}
		var lost <-chan struct{} // nil: the session keeps its calls
		if es, ok := s.(endingSession); ok {
			lost = es.ended()
		}
		select {
		case resp := <-answer:
			return resp, nil
		case <-responseDeadline:
			return methodResponse{}, ErrResponseTimeout
		case <-ctx.Done():
			return methodResponse{}, context.Cause(ctx)
		case <-lost:
			// The request was delivered; it is never sent again, so a
			// handler runs at most once. With connect time left, the answer
			// may still come from the device's next connection; without,
			// the call fails as the real hub's does while links are gone.
			r.detach(identity, s)
			if !time.Now().Before(connectDeadline) {
				select {
				case resp := <-answer: // answered just before the end
					return resp, nil
				default:
					return methodResponse{}, ErrDeviceNotOnline
				}
			}
			select {
			case resp := <-answer:
				return resp, nil
			case <-responseDeadline:
				return methodResponse{}, ErrResponseTimeout
			case <-ctx.Done():
				return methodResponse{}, context.Cause(ctx)
			}
		}
	}
}

// respond hands a device's answer to the pending call of the same
// identity. It reports false for an unknown or late request id.
func (r *router) respond(identity, rid string, resp methodResponse) bool {
	key := pendingKey{identity, rid}
	r.mu.Lock()
	answer, ok := r.pending[key]
	delete(r.pending, key)
	r.mu.Unlock()
	if ok {
		answer <- resp // buffered, and the only sender: the entry is gone
	}
	return ok
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
