package device

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/transport"
)

// Run connects to the hub and serves method requests with h until ctx is
// done, Close is called, or an error that retrying cannot fix occurs. It
// reconnects after failures with backoff and renews tokens before they
// expire. Wrap h in a MethodMux to route by name.
//
// Run returns ErrClientClosed after Close, context.Cause(ctx) when ctx
// ends, or an *Error. Before returning it lets running handlers finish (up
// to ShutdownTimeout) and waits for its goroutines. A client runs once: a
// second call returns ErrAlreadyRunning.
func (c *Client) Run(ctx context.Context, h MethodHandler) error {
	if h == nil {
		return fmt.Errorf("%w: nil MethodHandler", ErrInvalidConfig)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.mu.Lock()
	switch {
	case c.started:
		c.mu.Unlock()
		return ErrAlreadyRunning
	case c.closed:
		c.mu.Unlock()
		return ErrClientClosed
	}
	c.started, c.cancelRun = true, cancel
	c.mu.Unlock()
	defer close(c.done)

	notify := startStateNotifier(c.opts.OnStateChange)
	d := newDispatcher(ctx, h, &c.opts, &c.counters)
	err := c.connectLoop(ctx, d, notify)

	// Stopped taking requests; the live connection, if any, stays open
	// while running handlers finish, so that their answers get out, and
	// requests that still arrive are refused at once.
	live := c.liveOrigin()
	var refuser sync.WaitGroup
	if live != nil {
		refuser.Go(func() { c.refuse(live.conn) }) // owned by Run: ends when the connection is closed below
	}
	grace, endGrace := c.graceContext()
	d.shutdownUntil(grace)
	endGrace()
	c.setLive(nil)
	if live != nil {
		live.close()
	}
	refuser.Wait()
	c.log.Info("client stopped", "err", err)
	notify.emit(StateClosed, err)
	notify.stop()
	return err
}

// connectLoop dials, serves and redials until ctx ends or a fatal error.
// On return, the last connection may still be live (see Run).
func (c *Client) connectLoop(ctx context.Context, d *dispatcher, notify *stateNotifier) error {
	attempt := 0
	var renewed *issuedToken // a fresh token for the next dial, after a renewal
	for {
		notify.emit(StateConnecting, nil)
		cred := &recordingCredential{Credential: c.cfg.Credential, preload: renewed}
		renewed = nil
		cfg := c.cfg
		cfg.Credential = cred
		dialCtx, cancelDial := context.WithTimeout(ctx, c.opts.DialTimeout)
		conn, err := c.opts.Transport.Dial(dialCtx, &cfg)
		cancelDial()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			notify.emit(StateDisconnected, err)
			class := classify(err)
			if class == fatal {
				c.log.Error("connection refused for good", "err", err)
				return fatalError(err)
			}
			attempt++
			delay := c.opts.Backoff(attempt)
			if class == throttled {
				delay = max(delay, throttledFloor)
			}
			c.log.Warn("connection attempt failed", "attempt", attempt, "delay", delay, "err", err)
			if !sleep(ctx, delay) {
				return context.Cause(ctx)
			}
			continue
		}

		connectedAt := time.Now()
		live := newOrigin(conn)
		c.setLive(live)
		c.log.Info("connected")
		notify.emit(StateConnected, nil)
		end := c.serveConn(ctx, live, cred, d)
		if end.stopped {
			return context.Cause(ctx) // the connection stays live for Run's shutdown
		}
		c.setLive(nil)
		live.close()
		switch {
		case end.redial:
			c.log.Info("reconnecting for a new token", "reason", end.err)
			renewed, attempt = end.renewed, 0
			continue
		case end.fatal:
			notify.emit(StateDisconnected, end.err)
			c.log.Error("connection ended for good", "err", end.err)
			return fatalError(end.err)
		}
		notify.emit(StateDisconnected, end.err)
		if time.Since(connectedAt) >= stableConnection {
			attempt = 0
		}
		attempt++
		delay := c.opts.Backoff(attempt)
		c.log.Warn("connection lost", "attempt", attempt, "delay", delay, "err", end.err)
		if !sleep(ctx, delay) {
			return context.Cause(ctx)
		}
	}
}

// serveEnd says why serveConn returned.
type serveEnd struct {
	stopped bool         // ctx ended; the connection is still open
	redial  bool         // redial at once: the token was due or expired
	renewed *issuedToken // with redial: present this token on the next dial
	fatal   bool         // err cannot be fixed by retrying
	err     error        // why the connection ended
}

// serveConn serves the connection o with a crew of the dispatcher (see
// crew.go) until the connection fails, ctx ends, or its token is due for
// renewal. Tokens are renewed at 80 % of their lifetime: in band when the
// connection can (transport.TokenRefresher), otherwise by handing a new
// token to the next dial once the connection's calls are answered (see
// retire). When ctx ends, the crew stops taking requests and the
// connection stays open for Run's shutdown; otherwise the crew ends with
// the connection, and its calls finish on their own.
func (c *Client) serveConn(ctx context.Context, o *origin, cred *recordingCredential, d *dispatcher) serveEnd {
	w := d.serve(o)
	renew := newRenewTimer(cred.lifetime())
	defer renew.stop()
	for {
		select {
		case <-w.ended():
			if ctx.Err() != nil {
				w.stop()
				return serveEnd{stopped: true}
			}
			return serveEnd{err: w.Err()}
		case <-o.lost:
			// Every member may be busy with a call, none in Receive to
			// hear of the end: notice it here.
			return serveEnd{err: lostError(w)}
		case <-ctx.Done():
			w.stop()
			return serveEnd{stopped: true}
		case <-renew.expired():
			// The token could not be renewed and has expired: the next dial
			// gets a fresh one or fails for good.
			o.close()
			return serveEnd{redial: true, err: fmt.Errorf("token expired at %v", cred.expiryTime())}
		case <-renew.due():
			if r, ok := o.conn.(transport.TokenRefresher); ok {
				expiry, err := r.RefreshToken(ctx)
				if err == nil {
					c.log.Info("token renewed in band", "expiry", expiry)
					renew.reset(cred.lifetime())
					continue
				}
				if ctx.Err() != nil {
					w.stop()
					return serveEnd{stopped: true}
				}
				// A refused renewal is not the end: the old token may have
				// expired under load. The next dial presents a fresh token,
				// and only its refusal is final.
				c.log.Warn("in-band token renewal failed; reconnecting with a fresh token", "err", err)
				return c.retire(ctx, o, w, false, cred.expiryTime(), serveEnd{redial: true, err: fmt.Errorf("renew token: %w", err)})
			}
			tok, err := cred.fresh(ctx, c.cfg.Resource())
			if err != nil {
				o.close()
				return serveEnd{err: fmt.Errorf("renew token: %w", err), fatal: classify(err) == fatal}
			}
			if tok == nil { // the credential cannot renew: run until expiry
				renew.untilExpiry(cred.expiryTime())
				continue
			}
			quiesced := c.quiesce(ctx, o.conn)
			return c.retire(ctx, o, w, quiesced, cred.expiryTime(), serveEnd{redial: true, renewed: tok})
		}
	}
}

// retire ends a connection the client leaves on purpose (to renew its
// token) without losing answers: calls that arrived on it are answered on
// it, so it stays open until none is left, the token expires (the hub
// closes the connection then), or the connection fails. When the
// connection was quiesced, the calls include every request it received:
// the crew w ends with transport.ErrQuiesced once it has taken them all,
// and only then can the connection be settled. It returns end, or a
// stopped end when ctx ends first: the connection then stays live for
// Run's shutdown.
func (c *Client) retire(ctx context.Context, o *origin, w *crew, quiesced bool, expiry time.Time, end serveEnd) serveEnd {
	var expired <-chan time.Time
	if !expiry.IsZero() {
		t := time.NewTimer(time.Until(expiry))
		defer t.Stop()
		expired = t.C
	}
	received := false // the crew has ended with ErrQuiesced
	crewEnded := w.ended()
wait:
	for {
		var settled <-chan struct{} // nil, never ready, until every request is taken
		if received || !quiesced {
			settled = o.settled()
		}
		select {
		case <-settled:
			break wait
		case <-expired:
			c.log.Warn("token expired before the connection's calls were answered; closing it")
			break wait
		case <-crewEnded:
			crewEnded = nil
			if err := w.Err(); quiesced && errors.Is(err, transport.ErrQuiesced) {
				received = true
				continue
			}
			o.close() // failed: nothing more comes from it
			if end.err == nil {
				end.err = w.Err()
			}
			return end
		case <-o.lost:
			o.close()
			if end.err == nil {
				end.err = lostError(w)
			}
			return end
		case <-ctx.Done():
			w.stop()
			return serveEnd{stopped: true}
		}
	}
	o.close()
	return end
}

// lostError is why the connection of the crew w ended: the error its
// Receive returned, or ErrConnLost before any member has heard of it.
func lostError(w *crew) error {
	select {
	case <-w.ended():
		return w.Err()
	default:
		return fmt.Errorf("connection ended while every handler was busy: %w", transport.ErrConnLost)
	}
}

// quiesceTimeout bounds Quiesce; the connection is closed anyway after it.
const quiesceTimeout = 5 * time.Second

// quiesce quiesces conn if it can, and reports whether it did; a failure
// only means requests in flight may be lost, as without it.
func (c *Client) quiesce(ctx context.Context, conn transport.Conn) bool {
	q, ok := conn.(transport.Quiescer)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, quiesceTimeout)
	defer cancel()
	if err := q.Quiesce(ctx); err != nil {
		c.log.Warn("could not stop requests before reconnecting", "err", err)
		return false
	}
	return true
}

// refuse answers 503 to every request conn delivers until it is closed.
func (c *Client) refuse(conn transport.Conn) {
	body := errorBody("device shutting down")
	for {
		req, err := conn.Receive(context.Background())
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), respondTimeout)
		if err := conn.Respond(ctx, req, StatusServiceUnavailable, body); err != nil {
			c.log.Warn("method answer not delivered", "method", req.Name, "request_id", req.RequestID, "status", StatusServiceUnavailable, "err", err)
		}
		cancel()
	}
}

// sleep waits for d or ctx; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
