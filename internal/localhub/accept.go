package localhub

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// Bounds of the wait between failed Accepts: net/http's Server.Serve
// waits 5 ms after the first failure, doubling up to 1 s.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// acceptBackoff is the wait before the next Accept after failures
// consecutive failed ones (failures ≥ 1).
func acceptBackoff(failures int) time.Duration {
	d := minAcceptBackoff
	for i := 1; i < failures && d < maxAcceptBackoff; i++ {
		d *= 2
	}
	return min(d, maxAcceptBackoff)
}

// acceptLoop accepts connections from l and hands each to start until l is
// closed, the hub closes or start reports false (the hub is closing). A
// failed Accept, such as EMFILE when the process is out of file
// descriptors, is logged and retried after acceptBackoff, as net/http's
// Server.Serve does, so the listener outlives it. Unlike Serve it retries
// every error but a closed listener's, not only those that call themselves
// temporary: net.Error's Temporary is deprecated as ill-defined, and a
// listener that is still open may yet recover.
func (h *Hub) acceptLoop(protocol string, l net.Listener, start func(net.Conn) bool) {
	failures := 0
	for {
		conn, err := l.Accept()
		if err == nil {
			failures = 0
			if !start(conn) {
				return
			}
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		failures++
		delay := acceptBackoff(failures)
		h.log.Warn("localhub: accept failed; retrying", "listener", protocol, "err", err, "attempt", failures, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-h.ctx.Done():
			t.Stop()
			return
		}
	}
}

// handshake completes the TLS handshake of an accepted connection by
// deadline, and returns the client's certificate chain (nil when it sent
// none). ok is false when the handshake failed; the caller closes the
// connection.
func (h *Hub) handshake(conn *tls.Conn, deadline time.Time) (peerChain certChain, ok bool) {
	ctx, cancel := context.WithDeadline(h.ctx, deadline)
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		h.log.Debug("localhub: tls handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
		return nil, false
	}
	return chainOf(conn.ConnectionState().PeerCertificates), true
}
