package ws

import (
	"context"
	"net"
	"os"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// NetConn returns c's binary messages as a net.Conn, as websocket.NetConn
// does, but with deadlines that act as a TCP connection's: a deadline
// bounds the reads or writes in progress and those that start after it,
// and one that passes while no read or write is in progress does nothing
// to the connection.
//
// websocket.NetConn arms a timer for each deadline. When it fires while an
// operation holds the connection, it cancels that direction's context for
// good, which closes the WebSocket. A timer that fired while the
// connection was idle but whose function runs late, after the deadline
// was moved and the next Write began, so closes a healthy connection: an
// idle device whose keep-alive equals its write timeout (an MQTT session
// sends PINGREQ exactly then) lost about one connection in ten under load
// this way. Here the library's deadline is set only for the time of each
// read or write and cleared after it, so its timer fires only on an
// operation that has overrun.
//
// ctx bounds the connection's life, as websocket.NetConn's ctx does.
func NetConn(ctx context.Context, c *websocket.Conn) net.Conn {
	nc := websocket.NetConn(ctx, c, websocket.MessageBinary)
	w := &deadlineConn{Conn: nc}
	w.read.set, w.write.set = nc.SetReadDeadline, nc.SetWriteDeadline
	return w
}

// deadlineConn is a net.Conn whose deadlines reach the connection it wraps
// only while a read or write is in progress.
type deadlineConn struct {
	net.Conn
	read, write deadline
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if err := c.read.begin(); err != nil {
		return 0, err
	}
	defer c.read.end()
	return c.Conn.Read(b)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if err := c.write.begin(); err != nil {
		return 0, err
	}
	defer c.write.end()
	return c.Conn.Write(b)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.read.store(t)
	c.write.store(t)
	return nil
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.read.store(t)
	return nil
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.write.store(t)
	return nil
}

// deadline is one direction's deadline, handed to the wrapped connection
// (set) while operations are in progress.
type deadline struct {
	set func(time.Time) error

	mu   sync.Mutex
	at   time.Time // zero: none
	busy int       // operations in progress
}

// begin starts an operation: it fails at once if the deadline has passed,
// and otherwise arms the wrapped connection's deadline.
func (d *deadline) begin() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.at.IsZero() {
		if !time.Now().Before(d.at) {
			return os.ErrDeadlineExceeded
		}
		if d.busy == 0 {
			_ = d.set(d.at)
		}
	}
	d.busy++
	return nil
}

// end ends an operation, and disarms the wrapped connection's deadline
// once none is left in progress.
func (d *deadline) end() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.busy--
	if d.busy == 0 && !d.at.IsZero() {
		_ = d.set(time.Time{})
	}
}

// store sets the deadline; operations in progress are bound by it at once.
func (d *deadline) store(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at = t
	if d.busy > 0 {
		_ = d.set(t)
	}
}
