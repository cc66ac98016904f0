package ws

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestIdleDeadlineKeepsConnection has a write deadline pass while the
// connection is idle, then moves it and writes, as an MQTT session does
// when its PINGREQ falls due together with the deadline of its last
// write. With websocket.NetConn's own deadlines the timer of the passed
// deadline, running late, closed about one connection in ten under load,
// a few cycles in; no cycle may fail here. Every write has ten seconds,
// so a slow machine cannot make a write overrun its deadline.
func TestIdleDeadlineKeepsConnection(t *testing.T) {
	srv := echoServer(t, "mqtt")
	const (
		conns  = 20
		cycles = 20
		gap    = time.Millisecond
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range conns {
		c, err := Dial(ctx, address(srv), Options{Subprotocol: "mqtt", TLSConfig: trusting(srv), Proxy: noProxy})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		buf := make([]byte, 1)
		for j := range cycles {
			if err := c.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte{byte(j)}); err != nil {
				t.Fatalf("connection %d, cycle %d: write: %v", i, j, err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatalf("connection %d, cycle %d: read: %v", i, j, err)
			}
			idle := time.Now().Add(gap)
			if err := c.SetWriteDeadline(idle); err != nil {
				t.Fatal(err)
			}
			<-time.After(time.Until(idle)) // the deadline passes while idle
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

// recordingConn is a net.Conn whose Read blocks until unblocked and which
// records the deadlines set on it.
type recordingConn struct {
	net.Conn
	mu        sync.Mutex
	deadlines []string
	reading   chan struct{} // a Read has started
	release   chan error    // ends the Read in progress
}

func (c *recordingConn) record(what string, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.IsZero() {
		what += " cleared"
	} else {
		what += " set"
	}
	c.deadlines = append(c.deadlines, what)
	return nil
}

func (c *recordingConn) Read([]byte) (int, error) {
	c.reading <- struct{}{}
	return 0, <-c.release
}

func (c *recordingConn) Write(b []byte) (int, error) { return len(b), nil }

func (c *recordingConn) recorded() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.deadlines...)
}

func newRecordingDeadlineConn() (*deadlineConn, *recordingConn) {
	inner := &recordingConn{reading: make(chan struct{}), release: make(chan error)}
	c := &deadlineConn{Conn: inner}
	c.read.set = func(t time.Time) error { return inner.record("read", t) }
	c.write.set = func(t time.Time) error { return inner.record("write", t) }
	return c, inner
}

func TestDeadlineConnSemantics(t *testing.T) {
	t.Run("a deadline reaches the connection only during an operation", func(t *testing.T) {
		c, inner := newRecordingDeadlineConn()
		c.SetWriteDeadline(time.Now().Add(time.Hour))
		if got := inner.recorded(); len(got) != 0 {
			t.Fatalf("deadlines set while idle: %v", got)
		}
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"write set", "write cleared"}, inner.recorded()); diff != "" {
			t.Errorf("deadlines around a write (-want +got):\n%s", diff)
		}
	})
	t.Run("no deadline, nothing set", func(t *testing.T) {
		c, inner := newRecordingDeadlineConn()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if got := inner.recorded(); len(got) != 0 {
			t.Errorf("deadlines set without one: %v", got)
		}
	})
	t.Run("a passed deadline fails the next operation at once", func(t *testing.T) {
		c, inner := newRecordingDeadlineConn()
		c.SetDeadline(time.Now().Add(-time.Second))
		if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Write after the deadline: %v, want os.ErrDeadlineExceeded", err)
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read after the deadline: %v, want os.ErrDeadlineExceeded", err)
		}
		var ne net.Error
		if _, err := c.Write(nil); !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("the error is not a net.Error timeout: %v", err)
		}
		c.SetDeadline(time.Time{})
		if _, err := c.Write([]byte("x")); err != nil {
			t.Errorf("Write once the deadline is cleared: %v", err)
		}
		if got := inner.recorded(); len(got) != 0 {
			t.Errorf("deadlines set: %v", got)
		}
	})
	t.Run("a deadline moved during a read reaches it", func(t *testing.T) {
		c, inner := newRecordingDeadlineConn()
		c.SetReadDeadline(time.Now().Add(time.Hour))
		readErr := make(chan error, 1)
		go func() { // owned by the subtest; joined through readErr
			_, err := c.Read(make([]byte, 1))
			readErr <- err
		}()
		<-inner.reading
		c.SetReadDeadline(time.Unix(1, 0)) // abort, as a handshake's cancellation does
		inner.release <- os.ErrDeadlineExceeded
		if err := <-readErr; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read: %v", err)
		}
		if diff := cmp.Diff([]string{"read set", "read set", "read cleared"}, inner.recorded()); diff != "" {
			t.Errorf("deadlines (-want +got):\n%s", diff)
		}
	})
}
