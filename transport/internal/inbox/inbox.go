// Package inbox is the queue of method requests that every adapter keeps
// between its protocol library and transport.Conn.Receive: filled without
// blocking (a full queue means answering 503), drained after the
// connection is closed or lost, so that a client replacing a connection
// loses nothing the hub delivered.
package inbox

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/directmethods/iotdevice/transport"
)

// Inbox holds one connection's received requests until Receive takes
// them, and the connection's end: lost (Fail) or closed by its owner
// (Close). Its methods are safe for concurrent use; one goroutine, the
// protocol library's receive goroutine, calls Put.
type Inbox struct {
	name     string                        // the adapter, prefixing errors: "mqtt"
	requests chan *transport.MethodRequest // never closed: Put may run while Close does

	done     chan struct{} // closed by the first of Fail and Close
	doneOnce sync.Once

	lost     chan struct{} // closed by Fail
	lostOnce sync.Once
	lostErr  error // set before lost is closed

	closed    chan struct{} // closed by Close
	closeOnce sync.Once

	stopped  chan struct{} // closed by Stop: nothing is Put after it
	stopOnce sync.Once

	quiesced    chan struct{} // closed by Quiesce: nothing is Put after it
	quiesceOnce sync.Once
}

// New returns an empty Inbox that holds up to size requests. name
// prefixes the errors of Receive.
func New(name string, size int) *Inbox {
	return &Inbox{
		name:     name,
		requests: make(chan *transport.MethodRequest, size),
		done:     make(chan struct{}),
		lost:     make(chan struct{}),
		closed:   make(chan struct{}),
		stopped:  make(chan struct{}),
		quiesced: make(chan struct{}),
	}
}

// Put queues req without blocking. It reports false when the queue is
// full, or the Inbox quiesced: the caller answers busy.Status with
// busy.Body then.
func (b *Inbox) Put(req *transport.MethodRequest) bool {
	select {
	case <-b.quiesced:
		return false
	default:
	}
	select {
	case b.requests <- req:
		return true
	default:
		return false
	}
}

// Fail ends the connection with err, which Receive returns once the
// queue is drained. Only the first failure counts; Fail reports whether
// it was this one.
func (b *Inbox) Fail(err error) (first bool) {
	b.lostOnce.Do(func() {
		b.lostErr = err
		close(b.lost)
		first = true
	})
	b.end()
	return first
}

// Quiesce ends the stream of requests while the connection stays usable:
// Receive returns what is queued, then an error wrapping
// transport.ErrQuiesced, and Put refuses from now on. The goroutine that
// calls Put calls it, so that no Put races it. It is idempotent.
func (b *Inbox) Quiesce() {
	b.quiesceOnce.Do(func() { close(b.quiesced) })
}

// Close marks the connection closed by its owner: Err reports
// net.ErrClosed from now on, and Receive, once Stop has been called,
// returns what is left in the queue and then net.ErrClosed. It is
// idempotent.
func (b *Inbox) Close() {
	b.closeOnce.Do(func() { close(b.closed) })
	b.end()
}

// Stop records that the protocol library has stopped: Put is not called
// any more. A closed Inbox waits for it before it reports the end, so
// that no request is left behind in the queue. It is idempotent.
func (b *Inbox) Stop() {
	b.stopOnce.Do(func() { close(b.stopped) })
}

func (b *Inbox) end() {
	b.doneOnce.Do(func() { close(b.done) })
}

// Done returns a channel closed once the connection is lost or closed.
func (b *Inbox) Done() <-chan struct{} { return b.done }

// Err returns net.ErrClosed once the Inbox is closed, the failure once
// it failed, and nil while the connection is usable. Close wins over an
// earlier failure: the owner ended the connection.
func (b *Inbox) Err() error {
	select {
	case <-b.closed:
		return net.ErrClosed
	default:
	}
	select {
	case <-b.lost:
		return b.lostErr
	default:
		return nil
	}
}

// Receive returns the next request. It blocks until one is queued, ctx
// is done (returning ctx's error), or the connection has ended or
// quiesced: then it returns the requests still queued, one per call, and
// after them an error wrapping Err, or transport.ErrQuiesced.
func (b *Inbox) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	select {
	case req := <-b.requests:
		return req, nil
	default:
	}
	select {
	case req := <-b.requests:
		return req, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.done:
	case <-b.quiesced:
	}
	var end error
	select {
	case <-b.done: // the connection's end wins over its quiescence
		select {
		case <-b.closed:
			// The protocol library may still hand over requests while the
			// owner closes the connection: wait until it has stopped.
			select {
			case <-b.stopped:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		default:
		}
		end = b.Err()
	default:
		// Quiesced: nothing is Put any more.
		end = transport.ErrQuiesced
	}
	select {
	case req := <-b.requests:
		return req, nil
	default:
	}
	return nil, fmt.Errorf("%s: receive: %w", b.name, end)
}
