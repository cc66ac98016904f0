package device

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/directmethods/iotdevice/transport"
)

// origin is one connection as seen by the calls it delivered. A call is
// answered on its origin and nowhere else: IoT Hub numbers MQTT requests
// per connection ($rid 1, 2, … starting again on every connection), so
// the id of a request from an earlier connection may name a different
// call on the next one, and its answer would reach the wrong caller. The
// same rule holds for AMQP links, whose answers are matched on the link
// pair the request went out on. An answer whose connection has ended is
// dropped; its caller gets 504101 from the hub, as with every other SDK.
type origin struct {
	conn     transport.Conn
	lost     <-chan struct{} // closed when conn ends, if it can tell (transport.EndNotifier); else nil
	isClosed atomic.Bool     // conn has been closed: nothing more can be answered on it
	closedCh chan struct{}   // closed with isClosed

	mu   sync.Mutex
	open int           // calls delivered on conn and not yet answered or dropped
	idle chan struct{} // closed when open drops to 0; made by settled
}

func newOrigin(conn transport.Conn) *origin {
	o := &origin{conn: conn, closedCh: make(chan struct{})}
	if n, ok := conn.(transport.EndNotifier); ok {
		o.lost = n.Done()
	}
	return o
}

// closedChan is what settled returns when nothing is open.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// add counts a call delivered on the connection.
func (o *origin) add() {
	o.mu.Lock()
	o.open++
	o.mu.Unlock()
}

// done counts a call answered or dropped.
func (o *origin) done() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.open--
	if o.open == 0 && o.idle != nil {
		close(o.idle)
		o.idle = nil
	}
}

// settled returns a channel closed once no call of the connection awaits
// its answer.
func (o *origin) settled() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.open == 0 {
		return closedChan
	}
	if o.idle == nil {
		o.idle = make(chan struct{})
	}
	return o.idle
}

// close closes the connection; calls still open are dropped from now on.
// It is idempotent.
func (o *origin) close() {
	if o.isClosed.CompareAndSwap(false, true) {
		close(o.closedCh)
	}
	o.conn.Close()
}

// closed reports whether the connection has been closed, or has failed:
// either way nothing more can be answered on it.
func (o *origin) closed() bool {
	if o.isClosed.Load() {
		return true
	}
	select { // one case: read without a lock
	case <-o.lost:
		return true
	default:
		return false
	}
}

// respond sends an answer on the connection, unless it has been closed.
func (o *origin) respond(ctx context.Context, req *transport.MethodRequest, status int, body []byte) error {
	if o.closed() {
		return errOriginClosed
	}
	return o.conn.Respond(ctx, req, status, body)
}
