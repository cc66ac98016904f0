package amqp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// LinkHandler serves the links a peer attaches.
type LinkHandler interface {
	// ServeLink is called on its own goroutine for each link the peer
	// attaches. It must first call l.Accept or l.Refuse; then it may
	// Receive (the peer sends) or Send (the peer receives) until it
	// returns. Returning detaches the link; returning without deciding
	// refuses it with amqp:not-found. ctx ends when the link ends or the
	// connection stops; the connection waits for ServeLink to return.
	ServeLink(ctx context.Context, l *Link)
}

// LinkHandlerFunc adapts a function to LinkHandler.
type LinkHandlerFunc func(ctx context.Context, l *Link)

// ServeLink calls f(ctx, l).
func (f LinkHandlerFunc) ServeLink(ctx context.Context, l *Link) { f(ctx, l) }

// Conn is the server side of one AMQP connection. Create it with NewConn
// and run it with Serve. Its methods are safe for concurrent use.
type Conn struct {
	nc      net.Conn
	handler LinkHandler
	opts    ConnOptions
	log     *slog.Logger

	ops      chan func()   // work run on the mux goroutine
	closeReq chan *Error   // buffered 1: the first Close request
	muxDone  chan struct{} // closed when the mux stops; ops are refused after
	done     chan struct{} // closed when Serve has returned
	started  atomic.Bool
	once     sync.Once
	handlers sync.WaitGroup // ServeLink calls

	// Set by the handshake, read-only afterwards.
	saslMechanism Symbol
	saslUsername  string
	remoteOpen    *Open

	// Owned by the mux goroutine.
	sessions     map[uint16]*session // by the peer's channel
	linkCount    int                 // links across sessions
	peerMaxFrame uint32
	peerIdle     time.Duration
	lastWrite    time.Time
	writeBuf     []byte
	closeSent    bool
	stopping     bool
	exitErr      error
	linkCtx      context.Context
}

// NewConn returns a connection that will serve nc, which it owns from now
// on: Serve and Close close it. nc is a byte stream that is already
// secured (TLS or a WebSocket over TLS). Links are handed to h; opts may
// be nil.
func NewConn(nc net.Conn, h LinkHandler, opts *ConnOptions) *Conn {
	o := opts.withDefaults()
	return &Conn{
		nc:       nc,
		handler:  h,
		opts:     o,
		log:      o.Logger.With("remote", nc.RemoteAddr().String()),
		ops:      make(chan func()),
		closeReq: make(chan *Error, 1),
		muxDone:  make(chan struct{}),
		done:     make(chan struct{}),
		sessions: make(map[uint16]*session),
	}
}

// Serve runs the connection until it closes: it reads the protocol
// header, runs SASL when the peer asks for it, exchanges open frames and
// then serves sessions and links. It returns nil when the connection
// closed cleanly (either side, without an error), an error wrapping
// ErrFraming, ErrDecode or ErrAuth when the handshake failed, or a
// *ConnError saying why it ended. Cancelling ctx closes the connection
// with amqp:connection:forced, waiting briefly for the peer's close.
// Serve returns only after every goroutine it started, ServeLink calls
// included, has returned. It may be called once.
func (c *Conn) Serve(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return ErrConnClosed // closed before Serve, or Serve called twice
	}
	defer close(c.done)
	defer c.nc.Close()

	// The handshake's deadline is set before the watch on ctx, so that a
	// ctx that is already done always has the last word: its past deadline
	// fails the handshake's next read or write.
	_ = c.nc.SetDeadline(time.Now().Add(c.opts.HandshakeTimeout))
	hsCtx, cancelHS := context.WithCancel(ctx)
	expired := make(chan struct{})
	stopWatch := context.AfterFunc(hsCtx, func() {
		_ = c.nc.SetDeadline(time.Unix(1, 0))
		close(expired)
	})
	closeWatch := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() { // owned by Serve; stopped by closeWatch; joined below
		select {
		case e := <-c.closeReq:
			c.closeReq <- e // leave it for the mux
			cancelHS()
		case <-closeWatch:
		}
	})
	fr, err := c.handshake(hsCtx)
	close(closeWatch)
	watcher.Wait()
	if !stopWatch() {
		<-expired // its past deadline must not land after the reset below
	}
	cancelHS()
	if err != nil {
		close(c.muxDone)
		c.log.Debug("amqp handshake failed", "err", err)
		return err
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.log.Info("amqp connection open", "container_id", c.remoteOpen.ContainerID, "sasl", string(c.saslMechanism))

	linkCtx, cancelLinks := context.WithCancel(context.WithoutCancel(ctx))
	c.linkCtx = linkCtx
	frames := make(chan readResult)
	var reader sync.WaitGroup
	reader.Go(func() { c.readLoop(fr, frames) }) // owned by Serve; stopped by closing nc; joined below
	err = c.mux(ctx, frames)
	close(c.muxDone)
	cancelLinks()
	c.nc.Close()
	reader.Wait()
	c.handlers.Wait()
	c.log.Info("amqp connection closed", "err", err)
	return err
}

// Close closes the connection without an error and waits for Serve to
// return. It is idempotent. It must not be called from ServeLink, which
// Serve waits for; use CloseWithError there.
func (c *Conn) Close() error {
	c.CloseWithError(nil)
	<-c.done
	return nil
}

// CloseWithError starts closing the connection, sending e in the close
// frame, and returns without waiting; it is safe to call from ServeLink.
// Only the first Close or CloseWithError call chooses the error.
func (c *Conn) CloseWithError(e *Error) {
	c.once.Do(func() { c.closeReq <- e })
	if c.started.CompareAndSwap(false, true) { // Serve never ran
		close(c.muxDone)
		close(c.done)
		_ = c.nc.Close()
	}
}

// Done is closed once Serve has returned (or Close ran before Serve).
func (c *Conn) Done() <-chan struct{} { return c.done }

// SASL returns the SASL mechanism the peer used ("" without SASL) and,
// for PLAIN, the username. It is valid once links are being served.
func (c *Conn) SASL() (mechanism Symbol, username string) {
	return c.saslMechanism, c.saslUsername
}

// RemoteOpen returns the peer's open frame. It is valid once links are
// being served.
func (c *Conn) RemoteOpen() *Open { return c.remoteOpen }

// do runs f on the mux goroutine and returns its result.
func (c *Conn) do(ctx context.Context, f func() error) error {
	res := make(chan error, 1)
	select {
	case c.ops <- func() { res <- f() }:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.muxDone:
		return ErrConnClosed
	}
	return <-res
}

type readResult struct {
	frame Frame
	err   error
}

// readLoop reads frames for the mux until a read fails.
func (c *Conn) readLoop(fr *FrameReader, out chan<- readResult) {
	for {
		if idle := c.opts.IdleTimeout; idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(2 * idle))
		}
		f, err := fr.ReadFrame()
		select {
		case out <- readResult{f, err}:
		case <-c.muxDone:
			return
		}
		if err != nil {
			return
		}
	}
}

// closeWait is how long we wait for the peer's close after sending ours.
const closeWait = 2 * time.Second

// mux owns the connection state: it handles frames, API requests,
// heartbeats and closing, and returns why the connection ended.
func (c *Conn) mux(ctx context.Context, frames <-chan readResult) error {
	var heartbeat <-chan time.Time
	if c.peerIdle > 0 {
		t := time.NewTicker(max(c.peerIdle/2, 50*time.Millisecond))
		defer t.Stop()
		heartbeat = t.C
	}
	var closeTimer <-chan time.Time
	ctxDone := ctx.Done()
	for !c.stopping {
		select {
		case r := <-frames:
			if r.err != nil {
				c.readFailed(r.err)
				continue
			}
			c.handleFrame(r.frame)
		case op := <-c.ops:
			op()
		case e := <-c.closeReq:
			c.closeWith(e)
		case <-ctxDone:
			ctxDone = nil
			c.closeWith(&Error{Condition: ErrCondConnectionForced, Description: "server shutting down"})
		case <-heartbeat:
			if time.Since(c.lastWrite) >= c.peerIdle/2 {
				c.write(Frame{Type: FrameTypeAMQP})
			}
		case <-closeTimer:
			c.stop(nil)
		}
		if c.closeSent && closeTimer == nil && !c.stopping {
			t := time.NewTimer(closeWait)
			defer t.Stop()
			closeTimer = t.C
		}
	}
	c.endAll(ErrConnClosed)
	return c.exitErr
}

// stop ends the mux loop with err, keeping the first reason.
func (c *Conn) stop(err error) {
	if !c.stopping {
		c.stopping = true
		c.exitErr = err
	}
}

// closeWith sends a close frame carrying e (once) and waits for the
// peer's close.
func (c *Conn) closeWith(e *Error) {
	if c.closeSent {
		return
	}
	c.closeSent = true
	if e != nil {
		c.exitErr = &ConnError{Err: e}
		c.log.Info("amqp closing connection", "condition", string(e.Condition))
	}
	c.write(Frame{Type: FrameTypeAMQP, Body: &Close{Error: e}})
}

// fail closes the connection with e and stops without waiting for the
// peer: used when the peer broke the protocol.
func (c *Conn) fail(e *Error) {
	c.closeWith(e)
	c.stop(&ConnError{Err: e})
}

// readFailed handles the reader's final error.
func (c *Conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		c.fail(&Error{Condition: ErrCondResourceLimitExceeded, Description: "idle timeout"})
	case errors.Is(err, ErrFraming):
		c.fail(&Error{Condition: ErrCondFramingError, Description: err.Error()})
	case errors.Is(err, ErrDecode):
		c.fail(&Error{Condition: ErrCondDecodeError, Description: err.Error()})
	case c.closeSent:
		c.stop(c.exitErr)
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		c.stop(&ConnError{IOErr: err})
	default:
		c.stop(&ConnError{IOErr: err})
	}
}

// write sends one frame; a failed write stops the connection.
func (c *Conn) write(f Frame) {
	if c.stopping {
		return
	}
	buf, err := AppendFrame(c.writeBuf[:0], f)
	if err != nil {
		c.log.Error("amqp cannot encode frame", "err", err)
		c.stop(&ConnError{Err: &Error{Condition: ErrCondInternalError, Description: err.Error()}})
		return
	}
	c.writeBuf = buf
	if cap(buf) > 1<<20 {
		c.writeBuf = nil // don't keep a huge buffer around
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	if _, err := c.nc.Write(buf); err != nil {
		c.stop(&ConnError{IOErr: err})
		return
	}
	c.lastWrite = time.Now()
}

// handleFrame dispatches one frame received after the open exchange.
func (c *Conn) handleFrame(f Frame) {
	if f.Body == nil {
		return // heartbeat
	}
	if f.Type != FrameTypeAMQP {
		c.fail(&Error{Condition: ErrCondFramingError, Description: "SASL frame after open"})
		return
	}
	if c.closeSent {
		if _, ok := f.Body.(*Close); ok {
			c.stop(c.exitErr)
		}
		return // after our close, only the peer's close matters
	}
	switch b := f.Body.(type) {
	case *Close:
		c.write(Frame{Type: FrameTypeAMQP, Body: &Close{}})
		c.closeSent = true
		if b.Error != nil {
			c.stop(&ConnError{Remote: true, Err: b.Error})
		} else {
			c.stop(nil)
		}
	case *Open:
		c.fail(&Error{Condition: ErrCondIllegalState, Description: "second open frame"})
	case *Begin:
		c.handleBegin(f.Channel, b)
	default:
		s, ok := c.sessions[f.Channel]
		if !ok {
			c.fail(&Error{Condition: ErrCondFramingError, Description: fmt.Sprintf("frame on channel %d without a session", f.Channel)})
			return
		}
		s.handle(b)
	}
}

// endAll ends every session and link when the connection stops.
func (c *Conn) endAll(err error) {
	for ch, s := range c.sessions {
		s.finishLinks(err)
		delete(c.sessions, ch)
	}
}

// runHandler starts ServeLink for l.
func (c *Conn) runHandler(l *Link) {
	c.handlers.Go(func() { // owned by the Conn; stopped by l.ctx; joined in Serve
		defer func() {
			if p := recover(); p != nil {
				c.log.Error("amqp link handler panicked", "link", l.Name(), "panic", p, "stack", string(debug.Stack()))
			}
			l.handlerReturned()
		}()
		c.handler.ServeLink(l.ctx, l)
	})
}
