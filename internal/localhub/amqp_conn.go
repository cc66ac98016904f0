package localhub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/amqpwire"
)

// amqpConn is one AMQP connection, over TLS or a WebSocket. The engine
// in internal/amqp runs the protocol; amqpConn decides what each link
// is (the CBS node or a method link) and which identities the
// connection may act for.
type amqpConn struct {
	hub       *Hub
	engine    *amqp.Conn
	transport string    // "amqp" or "amqp-ws", for logs
	peerChain certChain // the TLS client certificate chain, if any
	log       *slog.Logger

	// cbsReplies carries put-token answers to the client's $cbs
	// receiver link.
	cbsReplies chan *amqp.Message

	mu       sync.Mutex
	ended    bool
	auth     map[string]*amqpAuthorization // by identity
	channels map[methodChannelKey]*methodChannel
}

// amqpAuthorization is an identity's right to use this connection.
type amqpAuthorization struct {
	expiry time.Time   // zero: never (X.509)
	timer  *time.Timer // closes the connection at expiry; nil without expiry
}

func newAMQPConn(h *Hub, nc net.Conn, transport string, peerChain certChain) *amqpConn {
	c := &amqpConn{
		hub:        h,
		transport:  transport,
		peerChain:  peerChain,
		log:        h.log.With("transport", transport, "remote", nc.RemoteAddr().String()),
		cbsReplies: make(chan *amqp.Message, 16),
		auth:       map[string]*amqpAuthorization{},
		channels:   map[methodChannelKey]*methodChannel{},
	}
	c.engine = amqp.NewConn(nc, c, &amqp.ConnOptions{
		ContainerID:    h.hostName,
		MaxMessageSize: 2 * maxMethodPayload,
		SASLPlain:      c.checkPlain,
		Logger:         h.log.With("transport", transport), // the engine adds "remote"
	})
	return c
}

// serve runs the connection until it ends, then withdraws every
// authorization and method channel it held.
func (c *amqpConn) serve() {
	err := c.engine.Serve(c.hub.ctx)
	c.mu.Lock()
	c.ended = true
	for _, a := range c.auth {
		if a.timer != nil {
			a.timer.Stop()
		}
	}
	c.mu.Unlock()
	var ce *amqp.ConnError
	switch {
	case err == nil:
		c.log.Info("amqp: connection closed")
	case errors.Is(err, amqp.ErrAuth):
		c.log.Warn("amqp: connection refused", "reason", err.Error())
	case errors.As(err, &ce) && ce.Err != nil && !ce.Remote:
		c.log.Info("amqp: connection closed by the hub", "condition", string(ce.Err.Condition), "description", ce.Err.Description)
	default:
		c.log.Info("amqp: connection closed", "err", err)
	}
}

// Close implements io.Closer so the hub can end the connection on
// shutdown; it does not wait.
func (c *amqpConn) Close() error {
	c.engine.CloseWithError(&amqp.Error{Condition: amqp.ErrCondConnectionForced, Description: "hub shutting down"})
	return nil
}

// closeWith closes the connection with an AMQP error; it does not wait.
func (c *amqpConn) closeWith(cond amqp.Symbol, description string) {
	c.engine.CloseWithError(&amqp.Error{Condition: cond, Description: description})
}

// checkPlain authenticates SASL PLAIN: "{id}@sas.{hub}" with a SAS token
// for that identity as the password.
func (c *amqpConn) checkPlain(_ context.Context, username, password string) error {
	identity, hubName, err := parsePlainUsername(username)
	if err != nil {
		c.log.Warn("amqp: sasl plain refused", "reason", err.Error())
		return err
	}
	if !strings.EqualFold(hubName, c.hub.hostName) {
		c.log.Warn("amqp: sasl plain refused", "reason", "username names another hub", "identity", identity)
		return fmt.Errorf("%w: username names another hub", ErrUnauthorized)
	}
	id, ok := c.hub.reg.lookup(identity)
	if !ok {
		c.log.Warn("amqp: sasl plain refused", "reason", "identity not registered", "identity", identity)
		return fmt.Errorf("%w: %q", ErrUnknownIdentity, identity)
	}
	expiry, err := c.hub.reg.authenticateToken(id, password, time.Now())
	if err != nil {
		c.log.Warn("amqp: sasl plain refused", "reason", err.Error(), "identity", identity)
		return err
	}
	c.authorize(identity, expiry)
	c.log.Info("amqp: sasl plain authenticated", "identity", identity, "expires", expiry)
	return nil
}

// authorize lets identity use this connection until expiry (zero: for
// as long as the connection lasts), replacing an earlier authorization.
// When expiry passes without renewal, the connection is closed.
func (c *amqpConn) authorize(identity string, expiry time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	if old := c.auth[identity]; old != nil && old.timer != nil {
		old.timer.Stop()
	}
	a := &amqpAuthorization{expiry: expiry}
	if !expiry.IsZero() {
		// The timer's goroutine only starts the close; it does not wait.
		a.timer = time.AfterFunc(time.Until(expiry), func() { c.expire(identity, a) })
	}
	c.auth[identity] = a
}

// expire closes the connection when a's authorization of identity has
// run out and was not replaced meanwhile.
func (c *amqpConn) expire(identity string, a *amqpAuthorization) {
	c.mu.Lock()
	current := c.auth[identity] == a && !c.ended
	c.mu.Unlock()
	if !current {
		return
	}
	c.log.Info("amqp: token expired without renewal; closing the connection", "identity", identity)
	c.closeWith(amqp.ErrCondUnauthorizedAccess, "the token for "+identity+" expired")
}

// authorized reports whether identity may attach method links: a live
// token put on this connection (CBS or SASL PLAIN), or the registered
// client certificate of an X.509 device.
func (c *amqpConn) authorized(id *identity) bool {
	name := id.name()
	c.mu.Lock()
	a := c.auth[name]
	c.mu.Unlock()
	if a != nil {
		return a.expiry.IsZero() || time.Now().Before(a.expiry)
	}
	if id.usesCertificate() && c.hub.reg.authenticateCertificate(id, c.peerChain, time.Now()) == nil {
		c.authorize(name, time.Time{})
		c.log.Info("amqp: authenticated by client certificate", "identity", name)
		return true
	}
	return false
}

// ServeLink implements amqp.LinkHandler: the CBS node on $cbs, method
// links on the devicebound paths, and nothing else.
func (c *amqpConn) ServeLink(ctx context.Context, l *amqp.Link) {
	addr := l.Address()
	if strings.EqualFold(addr, amqpwire.CBSAddress) {
		c.serveCBS(ctx, l)
		return
	}
	identity, err := parseMethodAddress(addr)
	if err != nil {
		c.log.Info("amqp: link refused: no node at this address", "link", l.Name(), "address", clip(addr))
		_ = l.Refuse(ctx, &amqp.Error{Condition: amqp.ErrCondNotFound, Description: "no node at this address"})
		return
	}
	c.serveMethodLink(ctx, l, identity)
}

// startAMQP runs an accepted AMQP connection on its own goroutine; it
// reports false once the hub is closing.
func (h *Hub) startAMQP(conn net.Conn) bool {
	tlsConn, ok := conn.(*tls.Conn)
	if !ok { // tls.NewListener always returns *tls.Conn
		conn.Close()
		return true
	}
	c := newAMQPConn(h, tlsConn, "amqp", nil)
	if !h.track(c) {
		conn.Close()
		return false
	}
	go func() { // owned by the hub: ends when the connection closes (Close closes it); joined in Close
		defer h.untrack(c)
		peerChain, ok := h.handshake(tlsConn, time.Now().Add(h.connectTimeout))
		if !ok {
			_ = c.engine.Close()
			return
		}
		c.peerChain = peerChain
		c.serve()
	}()
	return true
}
