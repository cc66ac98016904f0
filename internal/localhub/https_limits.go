package localhub

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// Default bounds of the HTTPS port's connections.
const (
	// defaultUnauthenticatedLimit: a peer that has not authenticated cannot
	// hold a connection longer than this, handshake and request included.
	defaultUnauthenticatedLimit = 30 * time.Second
	// defaultBodyLimit bounds reading a request body once the connection
	// has authenticated.
	defaultBodyLimit = 30 * time.Second
	// defaultIdleLimit closes a kept-alive connection that has been idle
	// this long, within the two minutes the hub promises.
	defaultIdleLimit = 90 * time.Second
	// readHeaderTimeout bounds reading a request's headers.
	readHeaderTimeout = 30 * time.Second
)

// httpLimits bound how long a peer may hold a connection to the HTTPS port.
// The zero value of a field takes its default; tests shorten them.
type httpLimits struct {
	// unauthenticated bounds a connection from its accept until a request
	// on it passes authentication or it upgrades to a WebSocket: the TLS
	// handshake, the headers and the body together.
	unauthenticated time.Duration
	// body bounds reading a request's body once the connection has
	// authenticated.
	body time.Duration
	// idle bounds how long a kept-alive connection waits for its next
	// request.
	idle time.Duration
}

// withDefaults fills the zero fields.
func (l httpLimits) withDefaults() httpLimits {
	if l.unauthenticated <= 0 {
		l.unauthenticated = defaultUnauthenticatedLimit
	}
	if l.body <= 0 {
		l.body = defaultBodyLimit
	}
	if l.idle <= 0 {
		l.idle = defaultIdleLimit
	}
	return l
}

// guardedListener gives every accepted connection a hard deadline, limit
// after the accept, that holds until the connection is lifted. It sits
// under the TLS listener, so the deadline covers the handshake too.
type guardedListener struct {
	net.Listener
	limit time.Duration
}

func (l *guardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := &guardedConn{Conn: c, until: time.Now().Add(l.limit)}
	_ = c.SetDeadline(g.until) // on a failure the connection's first I/O fails too
	return g, nil
}

// guardedConn is a connection whose deadlines cannot be later than until,
// and cannot be cleared, until lift is called. net/http sets and clears
// deadlines as it reads requests; this keeps them under the bound.
type guardedConn struct {
	net.Conn
	mu    sync.Mutex // orders lift against concurrent deadline changes
	until time.Time  // zero once lifted
}

// clamp returns t, or until when t is later or zero (no deadline) and the
// connection is still guarded. Called with mu held.
func (c *guardedConn) clamp(t time.Time) time.Time {
	if c.until.IsZero() || (!t.IsZero() && t.Before(c.until)) {
		return t
	}
	return c.until
}

func (c *guardedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetDeadline(c.clamp(t))
}

func (c *guardedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetReadDeadline(c.clamp(t))
}

func (c *guardedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

// lift removes the bound and clears both deadlines, once a request on the
// connection has authenticated or the connection has become a WebSocket.
// It is safe on a nil guard and idempotent.
func (c *guardedConn) lift() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.until.IsZero() {
		return
	}
	c.until = time.Time{}
	_ = c.Conn.SetDeadline(time.Time{})
}

// guardKey is the context key of a request's guardedConn.
type guardKey struct{}

// withGuard is the http.Server's ConnContext: it makes the connection's
// guard reachable from its requests.
func withGuard(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if g, ok := c.(*guardedConn); ok {
		return context.WithValue(ctx, guardKey{}, g)
	}
	return ctx
}

// requestGuard returns the guard of r's connection, or nil.
func requestGuard(r *http.Request) *guardedConn {
	g, _ := r.Context().Value(guardKey{}).(*guardedConn)
	return g
}
