// Package inbox is the queue of method requests that every adapter keeps
// between its protocol reader and transport.Conn.Receive: filled without
// blocking (a full queue means answering 503), bounded both by count and
// by payload bytes, and drained after the connection is closed or lost, so
// that a client replacing a connection loses nothing the hub delivered.
package inbox

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/directmethods/iotdevice/transport"
)

// DefaultMaxBytes bounds the payload bytes an Inbox holds when New is given
// no bound: 32 requests of IoT Hub's largest payload (128 KB).
const DefaultMaxBytes = 4 << 20

// state is where an Inbox stands. It only moves forward: open, then
// quiesced, lost or closed; a lost Inbox may still be closed.
type state int

const (
	open     state = iota
	quiesced       // no request is taken any more; the connection still answers
	lost           // the connection failed
	closed         // the owner closed the connection
)

// Inbox holds one connection's received requests until Receive takes
// them, and the connection's end: lost (Fail) or closed by its owner
// (Close). Its methods are safe for concurrent use. One goroutine, the
// adapter's reader, calls Put; any number may wait in Receive, and each
// request goes to one of them.
type Inbox struct {
	name     string // the adapter, prefixing errors: "mqtt"
	maxCount int
	maxBytes int

	mu      sync.Mutex
	queue   []*transport.MethodRequest // queue[head:] wait for Receive
	head    int
	bytes   int // payload bytes in the queue
	state   state
	err     error // why the connection was lost
	stopped bool  // the reader has stopped: nothing is Put any more

	wake chan struct{} // (cap 1) something changed for Receive
	done chan struct{} // closed once the connection is lost or closed
}

// New returns an empty Inbox that holds up to maxCount requests and up to
// maxBytes of payload (DefaultMaxBytes when maxBytes is not positive). name
// prefixes the errors of Receive.
func New(name string, maxCount, maxBytes int) *Inbox {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Inbox{
		name:     name,
		maxCount: maxCount,
		maxBytes: maxBytes,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

// Put queues req without blocking. It reports false when the queue is full
// (by count, or by bytes unless it is empty) or quiesced: the caller
// answers busy.Status with busy.Body then. Requests the reader still hands
// over while the owner closes the connection are queued, so that Receive
// returns them.
func (b *Inbox) Put(req *transport.MethodRequest) bool {
	b.mu.Lock()
	n := len(b.queue) - b.head
	if b.state == quiesced || n >= b.maxCount || (n > 0 && b.bytes+len(req.Payload) > b.maxBytes) {
		b.mu.Unlock()
		return false
	}
	if b.head > 0 && len(b.queue) == cap(b.queue) {
		// Reuse the room Receive left at the front.
		b.queue = append(b.queue[:0], b.queue[b.head:]...)
		clear(b.queue[n:cap(b.queue)])
		b.head = 0
	}
	b.queue = append(b.queue, req)
	b.bytes += len(req.Payload)
	b.mu.Unlock()
	b.signal()
	return true
}

// Fail ends the connection with err, which Receive returns once the queue
// is drained. Only the first end counts; Fail reports whether it was this
// one.
func (b *Inbox) Fail(err error) (first bool) {
	b.mu.Lock()
	if first = b.state < lost; first {
		b.state, b.err = lost, err
		close(b.done)
	}
	b.mu.Unlock()
	b.signal()
	return first
}

// Quiesce ends the stream of requests while the connection stays usable:
// Receive returns what is queued, then an error wrapping
// transport.ErrQuiesced, and Put refuses from now on. The goroutine that
// calls Put calls it, so that no Put races it. It is idempotent, and does
// nothing once the connection has ended.
func (b *Inbox) Quiesce() {
	b.mu.Lock()
	if b.state == open {
		b.state = quiesced
	}
	b.mu.Unlock()
	b.signal()
}

// Close marks the connection closed by its owner: Err reports
// net.ErrClosed from now on, and Receive, once Stop has been called,
// returns what is left in the queue and then net.ErrClosed. It is
// idempotent.
func (b *Inbox) Close() {
	b.mu.Lock()
	if b.state != closed {
		if b.state < lost {
			close(b.done)
		}
		b.state = closed
	}
	b.mu.Unlock()
	b.signal()
}

// Stop records that the reader has stopped: Put is not called any more. A
// closed Inbox waits for it before it reports the end, so that no request
// is left behind in the queue. It is idempotent.
func (b *Inbox) Stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.signal()
}

// signal wakes a goroutine waiting in Receive, if any. A waiter that
// wakes passes the signal on while there is more for the others (see
// Receive), so one pending signal is enough.
func (b *Inbox) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Done returns a channel closed once the connection is lost or closed.
func (b *Inbox) Done() <-chan struct{} { return b.done }

// Err returns net.ErrClosed once the Inbox is closed, the failure once it
// failed, and nil while the connection is usable. Close wins over an
// earlier failure: the owner ended the connection.
func (b *Inbox) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errLocked()
}

func (b *Inbox) errLocked() error {
	switch b.state {
	case closed:
		return net.ErrClosed
	case lost:
		return b.err
	}
	return nil
}

// Receive returns the next request. It blocks until one is queued, ctx is
// done (returning ctx's error), or the connection has ended or quiesced:
// then it returns the requests still queued, one per call, and after them
// an error wrapping Err, or transport.ErrQuiesced.
func (b *Inbox) Receive(ctx context.Context) (*transport.MethodRequest, error) {
	for {
		b.mu.Lock()
		if b.head < len(b.queue) {
			req := b.queue[b.head]
			b.queue[b.head] = nil
			b.head++
			b.bytes -= len(req.Payload)
			more := b.head < len(b.queue)
			if !more {
				b.queue, b.head = b.queue[:0], 0
			}
			b.mu.Unlock()
			if more {
				b.signal() // for another waiter
			}
			return req, nil
		}
		var end error
		switch b.state {
		case quiesced:
			end = transport.ErrQuiesced
		case lost:
			end = b.err
		case closed:
			// The reader may still hand over requests while the owner
			// closes the connection: wait until it has stopped.
			if b.stopped {
				end = net.ErrClosed
			}
		}
		b.mu.Unlock()
		if end != nil {
			b.signal() // every waiter learns of the end
			return nil, fmt.Errorf("%s: receive: %w", b.name, end)
		}
		select {
		case <-b.wake:
		case <-ctx.Done():
			b.signal() // the signal this waiter may have taken is another's
			return nil, ctx.Err()
		}
	}
}
