package device

import (
	"context"
	"sync"
)

// maxWaiting is how many members of a crew may wait for requests at
// once: two, so that a connection called one request at a time keeps its
// goroutines (and their grown stacks) from call to call, instead of
// starting one per call.
const maxWaiting = 2

// crew serves the requests of one connection with goroutines, its
// members, that each take a request from the connection and run its call
// to the end themselves, handler and answer: a request crosses one
// goroutine handoff, from the transport's reader to the goroutine that
// answers it: the least a client can do that keeps handlers off the
// goroutine reading the network.
//
// Each member holds one of the dispatcher's handler slots, so at most
// MaxConcurrentMethods calls run and requests beyond them wait in the
// transport's queue, the only one. A member that takes a request when no
// other member waits for the next starts one, if a slot is free; a member
// that finishes its call when maxWaiting others wait leaves. An idle
// connection so keeps one or two members, and a busy one up to a member
// per slot.
//
// The crew's members are the dispatcher's goroutines (d.goroutines). Once
// a member's Receive fails (the connection ended, was quiesced, or stop
// was called) the crew has ended: no member calls Receive again, and each
// leaves when its call is done.
type crew struct {
	d      *dispatcher
	o      *origin
	ctx    context.Context // the members' Receive; cancelled by stop
	cancel context.CancelFunc

	mu      sync.Mutex
	waiting int   // members in Receive or about to call it, each with a slot
	over    bool  // a Receive has failed, or stop was called: no member calls it again
	err     error // that Receive's error (context.Canceled after stop)
	done    chan struct{}
	closed  bool // done is closed: ended, and no member is left in Receive
}

// serve starts a crew for the connection o. Its first member waits for a
// slot (handlers of an earlier connection may hold them all).
func (d *dispatcher) serve(o *origin) *crew {
	w := &crew{d: d, o: o, waiting: 1, done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	d.mu.Lock()
	d.crew = w
	d.mu.Unlock()
	d.goroutines.Add(1)
	go w.first() // owned by the dispatcher: ends with the connection or stop; joined through d.goroutines
	return w
}

// ended returns a channel closed once the crew has ended and no member is
// in Receive any more: every request taken from the connection is then
// counted in its origin. Err says why.
func (w *crew) ended() <-chan struct{} { return w.done }

// Err returns the error of the Receive that ended the crew, once ended is
// closed.
func (w *crew) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// stop ends the crew: members in Receive return, and none calls it
// again. It returns once none is in Receive. Running calls go on, and
// requests left in the connection stay there.
func (w *crew) stop() {
	w.mu.Lock()
	if !w.over {
		w.over, w.err = true, context.Canceled
	}
	w.settle()
	w.mu.Unlock()
	w.cancel()
	<-w.done
}

// first is the crew's first member: it waits for a slot, then serves. If
// the connection ends first, it takes the requests the connection still
// holds without a slot, and drops them: they could be answered nowhere
// else.
func (w *crew) first() {
	select {
	case w.d.slots <- struct{}{}:
		w.member()
		return
	case <-w.ctx.Done():
		w.left(w.ctx.Err())
		w.d.goroutines.Done()
		return
	case <-w.o.lost:
	case <-w.o.closedCh:
	}
	for {
		req, err := w.o.conn.Receive(w.ctx)
		if err != nil {
			w.left(err)
			w.d.goroutines.Done()
			return
		}
		w.d.dropped(req)
	}
}

// member is a member's loop; it holds a slot and counts in w.waiting.
func (w *crew) member() {
	dt := newDeadlineTimer(w.d)
	for {
		req, err := w.o.conn.Receive(w.ctx)
		if err != nil {
			w.left(err)
			w.d.finish()
			return
		}
		c := w.d.take(req, w.o)
		w.took()
		if !w.d.run(c, dt) {
			return // the call overran: overrun answered and freed the slot
		}
		if !w.again() {
			w.d.finish()
			return
		}
	}
}

// took records that a member has left Receive with a request, counted in
// its origin. If no member waits for the next request any more, it starts
// one, when a slot is free.
func (w *crew) took() {
	w.mu.Lock()
	w.waiting--
	w.settle()
	w.mu.Unlock()
	w.grow()
}

// left records that a member's Receive failed with err: the crew has
// ended.
func (w *crew) left(err error) {
	w.mu.Lock()
	w.waiting--
	if !w.over {
		w.over, w.err = true, err
	}
	w.settle()
	w.mu.Unlock()
}

// settle closes done once the crew has ended and no member is in
// Receive. w.mu is held.
func (w *crew) settle() {
	if w.over && w.waiting == 0 && !w.closed {
		w.closed = true
		close(w.done)
		w.cancel()
	}
}

// again reports whether a member whose call is done goes back to Receive:
// not once the crew has ended, nor when enough members wait already.
func (w *crew) again() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.over || w.waiting >= maxWaiting {
		return false
	}
	w.waiting++
	return true
}

// grow starts a member if none waits for requests and a slot is free.
func (w *crew) grow() {
	w.mu.Lock()
	if w.over || w.waiting > 0 {
		w.mu.Unlock()
		return
	}
	select {
	case w.d.slots <- struct{}{}:
	default:
		w.mu.Unlock()
		return
	}
	w.waiting++
	w.mu.Unlock()
	w.d.goroutines.Add(1)
	go w.member() // owned by the dispatcher: ends with the crew; joined through d.goroutines
}
