package localhub

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/coder/websocket"
	"github.com/directmethods/iotdevice/internal/amqpwire"
)

// amqpDialOptions shape a test AMQP connection.
type amqpDialOptions struct {
	webSocket bool
	cert      *tls.Certificate // presented in the TLS handshake
	sasl      goamqp.SASLType  // nil: no SASL layer
}

// amqpClient is a test device connection built on go-amqp: one
// connection and one session, on which it can put tokens and attach
// method links for one or more identities.
type amqpClient struct {
	t       testing.TB
	hub     *Hub
	conn    *goamqp.Conn
	session *goamqp.Session

	cbsOnce     sync.Once
	cbsSender   *goamqp.Sender
	cbsReceiver *goamqp.Receiver
	cbsErr      error
	nextID      uint64
}

// dialAMQP connects to the hub's AMQP port (or its WebSocket endpoint)
// and begins a session.
func dialAMQP(t testing.TB, h *Hub, o amqpDialOptions) (*amqpClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	tlsConfig := &tls.Config{RootCAs: h.CertPool(), ServerName: h.HostName(), MinVersion: tls.VersionTLS12}
	if o.cert != nil {
		tlsConfig.Certificates = []tls.Certificate{*o.cert}
	}
	opts := &goamqp.ConnOptions{HostName: h.HostName(), SASLType: o.sasl, TLSConfig: tlsConfig}
	var conn *goamqp.Conn
	var err error
	if o.webSocket {
		ws, _, werr := websocket.Dial(ctx, "wss://localhost:"+strconv.Itoa(h.HTTPSPort())+"/$iothub/websocket", &websocket.DialOptions{
			HTTPClient:   h.ServiceClient().client,
			Subprotocols: []string{"AMQPWSB10"},
		})
		if werr != nil {
			return nil, werr
		}
		if ws.Subprotocol() != "AMQPWSB10" {
			ws.CloseNow()
			return nil, errors.New("hub did not choose AMQPWSB10")
		}
		nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
		opts.TLSConfig = nil
		conn, err = goamqp.NewConn(ctx, nc, opts)
		if err != nil {
			nc.Close()
		}
	} else {
		conn, err = goamqp.Dial(ctx, "amqps://"+h.AMQPAddr(), opts)
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	session, err := conn.NewSession(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &amqpClient{t: t, hub: h, conn: conn, session: session}, nil
}

// mustDialAMQP is dialAMQP with SASL ANONYMOUS that fails the test on error.
func mustDialAMQP(t testing.TB, h *Hub, webSocket bool) *amqpClient {
	t.Helper()
	c, err := dialAMQP(t, h, amqpDialOptions{webSocket: webSocket, sasl: goamqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatalf("dial amqp: %v", err)
	}
	return c
}

// cbsLinks attaches the $cbs sender and receiver once.
func (c *amqpClient) cbsLinks(ctx context.Context) error {
	c.cbsOnce.Do(func() {
		c.cbsSender, c.cbsErr = c.session.NewSender(ctx, amqpwire.CBSAddress, &goamqp.SenderOptions{SourceAddress: amqpwire.CBSAddress})
		if c.cbsErr == nil {
			c.cbsReceiver, c.cbsErr = c.session.NewReceiver(ctx, amqpwire.CBSAddress, &goamqp.ReceiverOptions{TargetAddress: amqpwire.CBSAddress})
		}
	})
	return c.cbsErr
}

// cbsAnswer is the hub's answer to a put-token.
type cbsAnswer struct {
	CorrelationID any
	Status        any
	Description   string
}

// putTokenRaw sends one request to $cbs and returns the answer.
func (c *amqpClient) putTokenRaw(m *goamqp.Message) cbsAnswer {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), waitTimeout)
	defer cancel()
	if err := c.cbsLinks(ctx); err != nil {
		c.t.Fatalf("cbs links: %v", err)
	}
	if err := c.cbsSender.Send(ctx, m, nil); err != nil {
		c.t.Fatalf("cbs send: %v", err)
	}
	reply, err := c.cbsReceiver.Receive(ctx, nil)
	if err != nil {
		c.t.Fatalf("cbs receive: %v", err)
	}
	if err := c.cbsReceiver.AcceptMessage(ctx, reply); err != nil {
		c.t.Fatalf("cbs accept: %v", err)
	}
	var a cbsAnswer
	if reply.Properties != nil {
		a.CorrelationID = reply.Properties.CorrelationID
	}
	a.Status = reply.ApplicationProperties["status-code"]
	a.Description, _ = reply.ApplicationProperties["status-description"].(string)
	return a
}

// putTokenMessage builds a put-token request as the C SDK does.
func putTokenMessage(messageID any, audience, token string) *goamqp.Message {
	return &goamqp.Message{
		Properties: &goamqp.MessageProperties{MessageID: messageID},
		ApplicationProperties: map[string]any{
			"operation": "put-token",
			"type":      "servicebus.windows.net:sastoken",
			"name":      audience,
		},
		Value: token,
	}
}

// authenticate puts a token for identity, valid until expiry, and fails
// the test unless the hub answers 200.
func (c *amqpClient) authenticate(identity string, expiry time.Time) {
	c.t.Helper()
	cs, err := c.hub.ConnectionString(identity)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nextID++
	a := c.putTokenRaw(putTokenMessage(c.nextID, c.hub.HostName()+"/devices/"+devicePath(identity), deviceToken(c.t, cs, expiry)))
	if a.Status != int32(200) {
		c.t.Fatalf("put-token for %s: status %v (%s), want 200", identity, a.Status, a.Description)
	}
}

// devicePath turns "dev" or "dev/mod" into "dev" or "dev/modules/mod".
func devicePath(identity string) string {
	d, m, ok := strings.Cut(identity, "/")
	if !ok {
		return d
	}
	return d + "/modules/" + m
}

// methodPath is the relative method address of identity.
func methodPath(identity string) string {
	return "/devices/" + devicePath(identity) + "/methods/devicebound"
}

// amqpRequest is a method request as the test device saw it.
type amqpRequest struct {
	correlationID any
	name          any
	data          [][]byte
	value         any
}

// methodLinks is one identity's pair of method links on a client.
type methodLinks struct {
	client    *amqpClient
	identity  string
	requests  *goamqp.Receiver
	responses *goamqp.Sender
	seen      chan amqpRequest // every request received, when the responder records them
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// randomChannelID returns a channel-correlation-id as C# and Node send it.
func randomChannelID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "methods:" + hex.EncodeToString(b)
}

// attachMethods attaches the receiver then the sender on path with the
// attach properties the SDKs send (internal/amqpwire lists them).
func (c *amqpClient) attachMethods(identity, path, channelID string) (*methodLinks, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), waitTimeout)
	defer cancel()
	props := map[string]any{"com.microsoft:api-version": "2021-04-12"}
	if channelID != "" { // none: the hub pairs by identity alone
		props["com.microsoft:channel-correlation-id"] = channelID
	}
	settled := goamqp.SenderSettleModeSettled
	r, err := c.session.NewReceiver(ctx, path, &goamqp.ReceiverOptions{Properties: props, TargetAddress: "requests", Credit: 100})
	if err != nil {
		return nil, err
	}
	s, err := c.session.NewSender(ctx, path, &goamqp.SenderOptions{Properties: props, SourceAddress: "responses", SettlementMode: &settled})
	if err != nil {
		return nil, err
	}
	return &methodLinks{client: c, identity: identity, requests: r, responses: s, seen: make(chan amqpRequest, 256)}, nil
}

// mustAttach is attachMethods on the default path that fails the test on error.
func (c *amqpClient) mustAttach(identity string) *methodLinks {
	c.t.Helper()
	m, err := c.attachMethods(identity, methodPath(identity), randomChannelID())
	if err != nil {
		c.t.Fatalf("attach method links of %s: %v", identity, err)
	}
	return m
}

// serve answers requests with answer until the test ends or stopServing;
// every request is also recorded on seen.
func (m *methodLinks) serve(answer answerFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	m.wg.Go(func() { // owned by the test: stopped by m.stop (cleanup); joined in stopServing
		for {
			msg, err := m.requests.Receive(ctx, nil)
			if err != nil {
				return
			}
			_ = m.requests.AcceptMessage(ctx, msg)
			req := amqpRequest{name: msg.ApplicationProperties[amqpwire.MethodNameProperty], data: msg.Data, value: msg.Value}
			if msg.Properties != nil {
				req.correlationID = msg.Properties.CorrelationID
			}
			select {
			case m.seen <- req:
			default:
			}
			name, _ := req.name.(string)
			var payload []byte
			for _, d := range msg.Data {
				payload = append(payload, d...)
			}
			status, body, ok := answer(name, payload)
			if !ok {
				continue
			}
			if err := m.respond(ctx, req.correlationID, int32(status), body); err != nil {
				return
			}
		}
	})
	m.client.t.Cleanup(m.stopServing)
}

func (m *methodLinks) stopServing() {
	if m.stop != nil {
		m.stop()
	}
	m.wg.Wait()
}

// respond sends an answer on the response link.
func (m *methodLinks) respond(ctx context.Context, correlationID any, status int32, body []byte) error {
	resp := &goamqp.Message{
		Properties:            &goamqp.MessageProperties{CorrelationID: correlationID},
		ApplicationProperties: map[string]any{amqpwire.StatusProperty: status},
	}
	if body != nil {
		resp.Data = [][]byte{body}
	}
	return m.responses.Send(ctx, resp, nil)
}

// nextRequest waits for the next request the responder recorded.
func (m *methodLinks) nextRequest(t testing.TB) amqpRequest {
	t.Helper()
	select {
	case r := <-m.seen:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("%s: no request within %v", m.identity, waitTimeout)
		return amqpRequest{}
	}
}

// connectAMQPDevice dials, authenticates identity with CBS, attaches its
// method links, answers requests with answer and waits until the hub
// counts the identity as subscribed.
func connectAMQPDevice(t testing.TB, h *Hub, identity string, webSocket bool, answer answerFunc) (*amqpClient, *methodLinks) {
	t.Helper()
	c := mustDialAMQP(t, h, webSocket)
	c.authenticate(identity, time.Now().Add(time.Hour))
	m := c.mustAttach(identity)
	if answer == nil {
		answer = echo
	}
	m.serve(answer)
	waitSubscribed(t, h, identity)
	return c, m
}

func waitSubscribed(t testing.TB, h *Hub, identity string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := h.WaitSubscribed(ctx, identity); err != nil {
		t.Fatal(err)
	}
}

// waitUnsubscribed waits until the hub no longer routes methods to
// identity: it has noticed the device's links or connection go.
func waitUnsubscribed(t testing.TB, h *Hub, identity string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := h.WaitOffline(ctx, identity); err != nil {
		t.Fatal(err)
	}
}

// remoteCondition returns the AMQP error condition carried by a go-amqp
// link or connection error, or "" when there is none.
func remoteCondition(err error) string {
	var le *goamqp.LinkError
	if errors.As(err, &le) && le.RemoteErr != nil {
		return string(le.RemoteErr.Condition)
	}
	var ce *goamqp.ConnError
	if errors.As(err, &ce) && ce.RemoteErr != nil {
		return string(ce.RemoteErr.Condition)
	}
	var ae *goamqp.Error
	if errors.As(err, &ae) {
		return string(ae.Condition)
	}
	return ""
}

// waitConnClosed waits until the hub has closed the client's connection
// and returns the condition it gave.
func (c *amqpClient) waitConnClosed(t testing.TB) string {
	t.Helper()
	select {
	case <-c.conn.Done():
		return remoteCondition(c.conn.Err())
	case <-time.After(waitTimeout):
		t.Fatalf("connection still open after %v", waitTimeout)
		return ""
	}
}

// rawTLS opens a bare TLS connection to the AMQP port.
func rawTLS(t testing.TB, h *Hub) net.Conn {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{RootCAs: h.CertPool(), ServerName: h.HostName(), MinVersion: tls.VersionTLS12}}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", h.AMQPAddr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	return c
}
