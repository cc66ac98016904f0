package amqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	iamqp "github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/testcert"
	"github.com/directmethods/iotdevice/internal/testwait"
)

// waitTimeout bounds every wait of the tests.
const waitTimeout = 10 * time.Second

// hubScript says how the fake hub answers.
type hubScript struct {
	// putTokenStatus answers the n-th put-token of a connection (from 1);
	// nil answers 200.
	putTokenStatus func(n int) int
	// refuseMethods refuses both method links with this error.
	refuseMethods *iamqp.Error
	// senderAttachGate, when set, holds the attach of the method link the
	// client sends on until it is closed.
	senderAttachGate <-chan struct{}
	// requestCerts asks the client for a TLS certificate.
	requestCerts bool
	// holdDispositions leaves the client's answers unsettled for the test
	// to settle; by default the hub accepts each one as it arrives.
	holdDispositions bool
	// responseCredit, when set, is all the credit the hub ever grants the
	// link the client answers on, unless the test grants more with
	// Link.Grant; by default the hub replenishes credit as answers arrive.
	responseCredit *uint32
	// silentPutToken leaves every put-token unanswered.
	silentPutToken bool
}

// fakeHub is a scripted IoT Hub AMQP endpoint built on the in-repo server
// engine. Every connection becomes a hubConn the test receives from conns.
type fakeHub struct {
	script hubScript
	conns  chan *hubConn
	ln     net.Listener // TLS listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	byID map[*iamqp.Conn]*hubConn
}

// hubConn is one client connection as the fake hub sees it.
type hubConn struct {
	conn      *iamqp.Conn
	wire      *injectConn // the connection's bytes, for hostile frames
	peerCerts []*x509.Certificate

	attaches     chan *iamqp.Attach   // every attach the client sent, in order
	putTokens    chan *iamqp.Message  // put-token requests
	putTokenN    atomic.Int32         // put-tokens received
	cbsReplies   chan *iamqp.Message  // answers for the $cbs link the client receives on
	requestLink  chan *iamqp.Link     // the method link the hub sends requests on
	responseLink chan *iamqp.Link     // the method link the client responds on
	responses    chan *iamqp.Delivery // responses from the client
	served       chan error           // Serve's result
}

// testPKI is a throwaway CA with a server certificate for 127.0.0.1.
type testPKI struct {
	roots      *x509.CertPool
	serverCert tls.Certificate
}

var pki = sync.OnceValue(func() *testPKI {
	cert, roots, err := testcert.Server()
	if err != nil {
		panic(err)
	}
	return &testPKI{roots: roots, serverCert: cert}
})

// selfSignedClientCert returns a client certificate as an X.509 device has.
func selfSignedClientCert(t *testing.T) tls.Certificate {
	t.Helper()
	cert, err := testcert.Client("device-1")
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (h *fakeHub) serverTLS() *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{pki().serverCert}, MinVersion: tls.VersionTLS12}
	if h.script.requestCerts {
		// The test only records the certificate; the hub's registry would
		// check its thumbprint.
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	return cfg
}

func newFakeHub(t *testing.T, script hubScript) *fakeHub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &fakeHub{script: script, conns: make(chan *hubConn, 16), ctx: ctx, cancel: cancel, byID: map[*iamqp.Conn]*hubConn{}}
	t.Cleanup(h.Close)
	return h
}

// startHub listens for AMQP over TLS on 127.0.0.1.
func startHub(t *testing.T, script hubScript) *fakeHub {
	t.Helper()
	h := newFakeHub(t, script)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", h.serverTLS())
	if err != nil {
		t.Fatal(err)
	}
	h.ln = ln
	h.wg.Go(func() { // owned by the hub; ends when Close closes the listener, joined in Close
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.wg.Go(func() { // owned by the hub; ends with the connection or Close's cancel, joined in Close
				tc := c.(*tls.Conn)
				if err := tc.HandshakeContext(h.ctx); err != nil {
					c.Close()
					return
				}
				h.serve(c, tc.ConnectionState().PeerCertificates)
			})
		}
	})
	return h
}

// Close stops every connection and waits for the hub's goroutines.
func (h *fakeHub) Close() {
	if h.ln != nil {
		h.ln.Close()
	}
	h.cancel()
	h.wg.Wait()
}

func (h *fakeHub) port() int { return h.ln.Addr().(*net.TCPAddr).Port }

// serve runs one connection with the engine until it ends.
func (h *fakeHub) serve(nc net.Conn, peerCerts []*x509.Certificate) {
	hc := &hubConn{
		peerCerts:    peerCerts,
		attaches:     make(chan *iamqp.Attach, 16),
		putTokens:    make(chan *iamqp.Message, 16),
		cbsReplies:   make(chan *iamqp.Message, 16),
		requestLink:  make(chan *iamqp.Link, 1),
		responseLink: make(chan *iamqp.Link, 1),
		responses:    make(chan *iamqp.Delivery, 64),
		served:       make(chan error, 1),
	}
	hc.wire = &injectConn{Conn: nc}
	hc.conn = iamqp.NewConn(hc.wire, iamqp.LinkHandlerFunc(h.serveLink), &iamqp.ConnOptions{IdleTimeout: -1})
	h.mu.Lock()
	h.byID[hc.conn] = hc
	h.mu.Unlock()
	h.conns <- hc
	hc.served <- hc.conn.Serve(h.ctx)
}

func (h *fakeHub) connOf(l *iamqp.Link) *hubConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byID[l.Conn()]
}

// serveLink plays IoT Hub's side of each link: the $cbs node and the
// method links.
func (h *fakeHub) serveLink(ctx context.Context, l *iamqp.Link) {
	hc := h.connOf(l)
	hc.attaches <- l.RemoteAttach()
	address := l.Address()
	switch {
	case address == "$cbs" && l.Role() == iamqp.RoleReceiver:
		h.servePutTokens(ctx, hc, l)
	case address == "$cbs":
		serveSends(ctx, l, hc.cbsReplies)
	case strings.HasSuffix(address, "/methods/devicebound"):
		if h.script.refuseMethods != nil {
			_ = l.Refuse(ctx, h.script.refuseMethods)
			return
		}
		if l.Role() == iamqp.RoleSender {
			if l.Accept(ctx) != nil {
				return
			}
			hc.requestLink <- l
			<-ctx.Done()
			return
		}
		if gate := h.script.senderAttachGate; gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return
			}
		}
		accept := l.Accept
		if n := h.script.responseCredit; n != nil {
			accept = func(ctx context.Context) error { return l.AcceptWithCredit(ctx, *n) }
		}
		if accept(ctx) != nil {
			return
		}
		hc.responseLink <- l
		for {
			d, err := l.Receive(ctx)
			if err != nil {
				return
			}
			hc.responses <- d
			if !h.script.holdDispositions {
				_ = d.Accept(ctx)
			}
		}
	default:
		_ = l.Refuse(ctx, &iamqp.Error{Condition: iamqp.ErrCondNotFound})
	}
}

// servePutTokens records each put-token and queues its answer.
func (h *fakeHub) servePutTokens(ctx context.Context, hc *hubConn, l *iamqp.Link) {
	if l.Accept(ctx) != nil {
		return
	}
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		if !d.Settled {
			_ = d.Accept(ctx)
		}
		n := int(hc.putTokenN.Add(1))
		hc.putTokens <- d.Message
		if h.script.silentPutToken {
			continue
		}
		status := 200
		if h.script.putTokenStatus != nil {
			status = h.script.putTokenStatus(n)
		}
		var id any
		if d.Message.Properties != nil {
			id = d.Message.Properties.MessageID
		}
		hc.cbsReplies <- &iamqp.Message{
			Properties:            &iamqp.Properties{CorrelationID: id},
			ApplicationProperties: map[string]any{"status-code": int32(status), "status-description": http.StatusText(status)},
		}
	}
}

// serveSends accepts l and sends every message of msgs on it.
func serveSends(ctx context.Context, l *iamqp.Link, msgs <-chan *iamqp.Message) {
	if l.Accept(ctx) != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			if _, err := l.Send(ctx, m); err != nil {
				return
			}
		}
	}
}

// sendRequest sends a method request on the hub's request link and
// returns the client's outcome.
func (hc *hubConn) sendRequest(t *testing.T, link *iamqp.Link, m *iamqp.Message) iamqp.DeliveryState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	state, err := link.Send(ctx, m)
	if err != nil {
		t.Fatalf("fake hub: send request: %v", err)
	}
	return state
}

// injectConn is the hub's side of a connection. The engine writes each
// frame with one Write, and a tls.Conn never interleaves two Writes, so
// bytes injected with inject land between two frames.
type injectConn struct {
	net.Conn
	silent atomic.Bool
}

// Write sends b, or drops it once the connection has been silenced.
func (c *injectConn) Write(b []byte) (int, error) {
	if c.silent.Load() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// inject writes raw bytes to the client between two of the engine's
// frames.
func (c *injectConn) inject(b []byte) error {
	_, err := c.Conn.Write(b)
	return err
}

// silence drops everything the engine writes from now on, heartbeats
// included: the hub goes quiet without closing the connection.
func (c *injectConn) silence() { c.silent.Store(true) }

// startRawHub listens for TLS on 127.0.0.1 and hands each connection to
// play, which speaks raw bytes; the connection is closed when play returns
// or the test ends.
func startRawHub(t *testing.T, play func(ctx context.Context, nc net.Conn)) int {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", (&fakeHub{}).serverTLS())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { // owned by the test; ends when the cleanup closes ln, joined there
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			stop := context.AfterFunc(ctx, func() { nc.Close() })
			wg.Go(func() { // owned by the test; ends when play returns (ctx closes nc), joined in the cleanup
				defer stop()
				defer nc.Close()
				play(ctx, nc)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// x509EmptyPool trusts nothing.
func x509EmptyPool() *x509.CertPool { return x509.NewCertPool() }

// receive waits for a value from ch (see testwait.Receive).
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return testwait.Receive(t, ch, what)
}
