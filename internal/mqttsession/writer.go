package mqttsession

import (
	"bufio"
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// writeChunk is the most a single write to the network carries, so that
// each chunk gets the whole write timeout: a large answer on a slow link
// goes out as long as the link keeps moving.
const writeChunk = 16 << 10

// writer writes packets to the network for any goroutine, without a
// goroutine of its own. A caller that finds no write in progress writes its
// packet, and with it every packet queued meanwhile, in one flush. Callers
// that find a write in progress queue their packet and wait; the writer,
// once its own packet is out, hands the rest of the queue to one of them.
// So an answer written on an idle connection costs no goroutine handoff
// (paho.golang's callers write too), a burst of answers shares flushes,
// and no caller writes for others for long.
//
// Every chunk written to the network must be taken within the timeout (at
// least three quarters of it: see chunkWriter): a
// write that makes no progress for that long fails, and with it the
// connection. Once a write has failed, every write fails with that error.
type writer struct {
	nc       net.Conn
	timeout  time.Duration
	failed   func(error)   // told of the failed write that broke the writer
	bw       *bufio.Writer // used only by the goroutine that writes, as is
	deadline time.Time     // the network connection's write deadline

	mu      sync.Mutex
	queue   []*queued // waiting to be written, in order
	spare   []*queued // an empty array for the next writer's batch
	writing bool      // a goroutine is writing
	err     error     // the first failure; every write fails from then on

	queuedHook func() // a test hook: told that a write waits its turn
}

// queued is a packet waiting to be written. done, when not nil, is told
// whether it was written, or that its waiter is to write now (cap 1).
type queued struct {
	packet packets.ControlPacket
	done   chan error
	turn   bool // told to write: it holds the writing role; guarded by writer.mu
}

// errYourTurn tells a waiting caller that the writing role is its own now.
var errYourTurn = errors.New("mqtt: the writing role is handed over")

func newWriter(nc net.Conn, timeout time.Duration, failed func(error)) *writer {
	w := &writer{nc: nc, timeout: timeout, failed: failed}
	w.bw = bufio.NewWriterSize(chunkWriter{w}, 4096)
	return w
}

// write writes p and returns once it is written, or failed. If ctx ends
// while p still waits its turn, p is not written and write returns ctx's
// error; once its write has begun, the write's own timeout bounds it.
func (w *writer) write(ctx context.Context, p packets.ControlPacket) error {
	q := &queued{packet: p}
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	if !w.writing {
		w.writing = true
		w.queue = append(w.queue, q)
		w.mu.Unlock()
		return w.flush(q)
	}
	q.done = make(chan error, 1)
	w.queue = append(w.queue, q)
	w.mu.Unlock()
	if w.queuedHook != nil {
		w.queuedHook()
	}
	select {
	case err := <-q.done:
		return w.outcome(q, err)
	case <-ctx.Done():
	}
	w.mu.Lock()
	if !q.turn {
		if i := slices.Index(w.queue, q); i >= 0 { // still waiting: it never goes out
			w.queue = slices.Delete(w.queue, i, i+1)
			w.mu.Unlock()
			return ctx.Err()
		}
	}
	w.mu.Unlock()
	return w.outcome(q, <-q.done) // being written, or handed the role
}

// outcome is what write returns for q, told err: q's own result, or, when
// the writing role was handed to it, the result of writing the queue.
func (w *writer) outcome(q *queued, err error) error {
	if err == errYourTurn {
		return w.flush(q)
	}
	return err
}

// post queues p without waiting, for a goroutine that must never block on
// the network. It reports whether the caller must run flush(nil) (on
// another goroutine) because no write was in progress to take p.
func (w *writer) post(p packets.ControlPacket) (mustFlush bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return false, w.err
	}
	w.queue = append(w.queue, &queued{packet: p})
	if w.writing {
		return false, nil
	}
	w.writing = true
	return true, nil
}

// flush writes the queue, which holds mine unless mine is nil, by the
// writing role the caller holds. Once mine is written it hands the role
// to a waiting caller, if any, or writes on until the queue is empty. It
// returns mine's outcome.
func (w *writer) flush(mine *queued) error {
	var mineErr error
	mineDone := mine == nil
	var batch []*queued
	for {
		w.mu.Lock()
		if batch == nil {
			batch, w.spare = w.spare, nil
		}
		if w.err != nil { // the connection ended under the writer
			err := w.err
			w.mu.Unlock()
			if !mineDone {
				return err
			}
			return mineErr
		}
		if len(w.queue) == 0 {
			w.writing = false
			w.spare = batch[:0]
			w.mu.Unlock()
			return mineErr
		}
		if mineDone {
			for _, q := range w.queue {
				if q.done != nil {
					q.turn = true
					w.spare = batch[:0]
					w.mu.Unlock()
					q.done <- errYourTurn
					return mineErr
				}
			}
		}
		batch, w.queue = w.queue, batch[:0] // the two arrays take turns
		w.mu.Unlock()

		err := w.writeBatch(batch)
		for _, q := range batch {
			switch {
			case q == mine:
				mineErr, mineDone = err, true
			case q.done != nil:
				q.done <- err
			}
		}
		clear(batch) // let the payloads go
		if err != nil {
			w.fail(err)
			w.failed(err)
			return mineErr
		}
	}
}

// writeBatch writes packets and flushes them to the network. A PUBLISH,
// the answers' packet, is encoded straight into the buffer.
func (w *writer) writeBatch(batch []*queued) error {
	for _, q := range batch {
		var err error
		if p, ok := q.packet.(*packets.PublishPacket); ok {
			err = mqttwire.WritePublish(w.bw, p)
		} else {
			err = q.packet.Write(w.bw)
		}
		if err != nil {
			return err
		}
	}
	return w.bw.Flush()
}

// fail records err as the writer's end, unless it has one already, and
// fails the packets still queued. No goroutine takes the writing role
// after it; a write in progress when the connection is closed under it
// fails by itself.
func (w *writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	err = w.err
	queue := w.queue
	w.queue = nil
	w.mu.Unlock()
	for _, q := range queue {
		if q.done != nil && !q.turn { // one handed the role finds err itself
			q.done <- err
		}
	}
}

// chunkWriter writes to the network in chunks of at most writeChunk
// bytes, each with at least three quarters of the timeout before its
// deadline: the deadline is moved only once a quarter of the timeout has
// passed, since moving it costs a timer update per write.
type chunkWriter struct{ w *writer }

func (c chunkWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(len(b), writeChunk)
		if now := time.Now(); c.w.deadline.Sub(now) < c.w.timeout*3/4 {
			c.w.deadline = now.Add(c.w.timeout)
			_ = c.w.nc.SetWriteDeadline(c.w.deadline)
		}
		m, err := c.w.nc.Write(b[:n])
		written += m
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}
