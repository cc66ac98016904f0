package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/internal/testcert"
)

// testCerts returns a server TLS config with a throwaway certificate for
// 127.0.0.1 and a client config trusting its CA.
func testCerts(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	cert, roots, err := testcert.Server()
	if err != nil {
		t.Fatal(err)
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return server, client
}

// testServer accepts TLS connections on 127.0.0.1 and serves each with a
// Conn. Serve results arrive on served.
type testServer struct {
	addr      string
	clientTLS *tls.Config
	served    chan error
	conns     chan *Conn
}

func startServer(t *testing.T, h LinkHandler, opts *ConnOptions) *testServer {
	t.Helper()
	serverTLS, clientTLS := testCerts(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	if opts == nil {
		opts = &ConnOptions{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ts := &testServer{addr: ln.Addr().String(), clientTLS: clientTLS, served: make(chan error, 16), conns: make(chan *Conn, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { // owned by the test; stopped by closing ln; joined in Cleanup
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := NewConn(nc, h, opts)
			select {
			case ts.conns <- c:
			default:
			}
			wg.Go(func() { // owned by the test; stopped by cancel; joined in Cleanup
				err := c.Serve(ctx)
				select {
				case ts.served <- err:
				default:
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
	})
	return ts
}

// dial connects go-amqp to the test server.
func (ts *testServer) dial(t *testing.T, opts *goamqp.ConnOptions) *goamqp.Conn {
	t.Helper()
	if opts == nil {
		opts = &goamqp.ConnOptions{}
	}
	opts.TLSConfig = ts.clientTLS
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := goamqp.Dial(ctx, "amqps://"+ts.addr, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newSession(t *testing.T, c *goamqp.Conn) *goamqp.Session {
	t.Helper()
	s, err := c.NewSession(t.Context(), nil)
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	return s
}

// timeout returns a context for one step of a test.
func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// receivingHandler accepts every link; messages the peer sends are
// delivered on msgs and settled with outcome.
func receivingHandler(msgs chan<- *Delivery, outcome func(ctx context.Context, d *Delivery) error) LinkHandler {
	return LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if err := l.Accept(ctx); err != nil {
			return
		}
		for {
			d, err := l.Receive(ctx)
			if err != nil {
				return
			}
			if err := outcome(ctx, d); err != nil {
				return
			}
			select {
			case msgs <- d:
			case <-ctx.Done():
				return
			}
		}
	})
}

func TestGoAMQPClientSends(t *testing.T) {
	var gotUser, gotPass string
	var mu sync.Mutex
	opts := &ConnOptions{SASLPlain: func(ctx context.Context, u, p string) error {
		mu.Lock()
		defer mu.Unlock()
		gotUser, gotPass = u, p
		if p != "secret" {
			return errors.New("bad password")
		}
		return nil
	}}
	msgs := make(chan *Delivery, 4)
	ts := startServer(t, receivingHandler(msgs, func(ctx context.Context, d *Delivery) error { return d.Accept(ctx) }), opts)
	tests := []struct {
		name string
		sasl goamqp.SASLType
	}{
		{"sasl anonymous", goamqp.SASLTypeAnonymous()},
		{"no sasl", nil},
		{"sasl plain", goamqp.SASLTypePlain("dev@sas.hub", "secret")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t, &goamqp.ConnOptions{SASLType: tt.sasl})
			snd, err := newSession(t, c).NewSender(timeout(t), "/devices/d1/messages/events", nil)
			if err != nil {
				t.Fatalf("new sender: %v", err)
			}
			id := goamqp.UUID{1, 2, 3}
			msg := &goamqp.Message{
				Properties:            &goamqp.MessageProperties{CorrelationID: id, MessageID: uint64(7)},
				ApplicationProperties: map[string]any{"k": "v", "n": int32(3)},
				Data:                  [][]byte{[]byte("hello")},
			}
			if err := snd.Send(timeout(t), msg, nil); err != nil {
				t.Fatalf("send: %v", err)
			}
			var d *Delivery
			select {
			case d = <-msgs:
			case <-timeout(t).Done():
				t.Fatal("no message received")
			}
			want := &Message{
				Properties:            &Properties{MessageID: uint64(7), CorrelationID: UUID{1, 2, 3}},
				ApplicationProperties: map[string]any{"k": "v", "n": int32(3)},
				Data:                  [][]byte{[]byte("hello")},
			}
			if diff := cmpMessage(want, d.Message); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if gotUser != "dev@sas.hub" || gotPass != "secret" {
		t.Errorf("PLAIN credentials = %q, %q", gotUser, gotPass)
	}
}

func TestGoAMQPPlainRefused(t *testing.T) {
	opts := &ConnOptions{SASLPlain: func(ctx context.Context, u, p string) error { return errors.New("no") }}
	ts := startServer(t, LinkHandlerFunc(func(ctx context.Context, l *Link) {}), opts)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := goamqp.Dial(ctx, "amqps://"+ts.addr, &goamqp.ConnOptions{TLSConfig: ts.clientTLS, SASLType: goamqp.SASLTypePlain("u", "wrong")})
	if err == nil {
		c.Close()
		t.Fatal("dial with a wrong password succeeded")
	}
	select {
	case err := <-ts.served:
		if !errors.Is(err, ErrAuth) {
			t.Errorf("Serve = %v, want ErrAuth", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return")
	}
}

func TestGoAMQPLargeMessageSpansFrames(t *testing.T) {
	msgs := make(chan *Delivery, 1)
	ts := startServer(t, receivingHandler(msgs, func(ctx context.Context, d *Delivery) error { return d.Accept(ctx) }),
		&ConnOptions{MaxFrameSize: 1024})
	c := ts.dial(t, nil)
	snd, err := newSession(t, c).NewSender(timeout(t), "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 20000)
	for i := range payload {
		payload[i] = byte(i)
	}
	if err := snd.Send(timeout(t), goamqp.NewMessage(payload), nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	select {
	case d := <-msgs:
		if diff := cmpMessage(&Message{Data: [][]byte{payload}}, d.Message); diff != "" {
			t.Errorf("message (-want +got):\n%s", diff)
		}
	case <-timeout(t).Done():
		t.Fatal("no message")
	}
}

func TestGoAMQPMessageTooLarge(t *testing.T) {
	msgs := make(chan *Delivery, 1)
	ts := startServer(t, receivingHandler(msgs, func(ctx context.Context, d *Delivery) error { return d.Accept(ctx) }),
		&ConnOptions{MaxMessageSize: 1000})
	c := ts.dial(t, nil)
	snd, err := newSession(t, c).NewSender(timeout(t), "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := snd.MaxMessageSize(); got != 1000 {
		t.Errorf("client sees max message size %d, want 1000", got)
	}
	err = snd.Send(timeout(t), goamqp.NewMessage(make([]byte, 2000)), nil)
	if err == nil {
		t.Fatal("oversized send succeeded")
	}
}

func TestGoAMQPRejectedOutcome(t *testing.T) {
	msgs := make(chan *Delivery, 1)
	ts := startServer(t, receivingHandler(msgs, func(ctx context.Context, d *Delivery) error {
		return d.Reject(ctx, &Error{Condition: ErrCondDecodeError, Description: "no method name"})
	}), nil)
	c := ts.dial(t, nil)
	snd, err := newSession(t, c).NewSender(timeout(t), "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = snd.Send(timeout(t), goamqp.NewMessage([]byte("x")), nil)
	var ae *goamqp.Error
	if !errors.As(err, &ae) || ae.Condition != goamqp.ErrCondDecodeError {
		t.Fatalf("send = %v, want *amqp.Error with decode-error", err)
	}
}

func TestGoAMQPSettledSender(t *testing.T) {
	msgs := make(chan *Delivery, 1)
	ts := startServer(t, receivingHandler(msgs, func(ctx context.Context, d *Delivery) error { return d.Accept(ctx) }), nil)
	c := ts.dial(t, nil)
	mode := goamqp.SenderSettleModeSettled
	snd, err := newSession(t, c).NewSender(timeout(t), "x", &goamqp.SenderOptions{SettlementMode: &mode})
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(timeout(t), goamqp.NewMessage([]byte("pre-settled")), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-msgs:
		if !d.Settled {
			t.Error("delivery not marked settled")
		}
	case <-timeout(t).Done():
		t.Fatal("no message")
	}
}

// sendingHandler accepts links and sends each message from msgs on them,
// reporting outcomes.
func sendingHandler(msgs <-chan *Message, outcomes chan<- DeliveryState) LinkHandler {
	return LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if err := l.Accept(ctx); err != nil {
			return
		}
		for {
			select {
			case m := <-msgs:
				state, err := l.Send(ctx, m)
				if err != nil {
					return
				}
				outcomes <- state
			case <-ctx.Done():
				return
			}
		}
	})
}

func TestGoAMQPClientReceives(t *testing.T) {
	msgs := make(chan *Message, 4)
	outcomes := make(chan DeliveryState, 4)
	ts := startServer(t, sendingHandler(msgs, outcomes), &ConnOptions{MaxFrameSize: 512})
	c := ts.dial(t, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
	rcv, err := newSession(t, c).NewReceiver(timeout(t), "/devices/d1/methods/devicebound", &goamqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	id := UUID{0xde, 0xad, 0xbe, 0xef, 15: 1}
	body := make([]byte, 3000) // several 512-byte frames
	copy(body, `{"x":1}`)
	msgs <- &Message{
		Properties:            &Properties{CorrelationID: id},
		ApplicationProperties: map[string]any{"IoThub-methodname": "reboot"},
		Data:                  [][]byte{body},
	}
	got, err := rcv.Receive(timeout(t), nil)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if got.Properties == nil || got.Properties.CorrelationID != goamqp.UUID(id) {
		t.Errorf("correlation id = %#v, want uuid %v", got.Properties, id)
	}
	if diff := cmpAny(map[string]any{"IoThub-methodname": "reboot"}, got.ApplicationProperties); diff != "" {
		t.Errorf("application properties (-want +got):\n%s", diff)
	}
	if diff := cmpAny([][]byte{body}, got.Data); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	if err := rcv.AcceptMessage(timeout(t), got); err != nil {
		t.Fatal(err)
	}
	select {
	case state := <-outcomes:
		if diff := cmpAny(DeliveryState(&Accepted{}), state); diff != "" {
			t.Errorf("outcome (-want +got):\n%s", diff)
		}
	case <-timeout(t).Done():
		t.Fatal("no outcome")
	}
}

func TestGoAMQPClientReceivesSettled(t *testing.T) {
	msgs := make(chan *Message, 4)
	outcomes := make(chan DeliveryState, 4)
	ts := startServer(t, sendingHandler(msgs, outcomes), nil)
	c := ts.dial(t, nil)
	mode := goamqp.SenderSettleModeSettled
	rcv, err := newSession(t, c).NewReceiver(timeout(t), "src", &goamqp.ReceiverOptions{Credit: 1, RequestedSenderSettleMode: &mode})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // more messages than credit: the client renews it
		msgs <- &Message{Value: "m"}
		got, err := rcv.Receive(timeout(t), nil)
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if got.Value != "m" {
			t.Errorf("value = %v", got.Value)
		}
		if err := rcv.AcceptMessage(timeout(t), got); err != nil {
			t.Fatal(err)
		}
		select {
		case state := <-outcomes:
			if state != nil {
				t.Errorf("pre-settled send outcome = %v, want nil", state)
			}
		case <-timeout(t).Done():
			t.Fatal("no outcome")
		}
	}
}

func TestGoAMQPAttachRefused(t *testing.T) {
	type attach struct {
		Name, Address string
		Role          Role
		Props         Map
	}
	attaches := make(chan attach, 2)
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		attaches <- attach{l.Name(), l.Address(), l.Role(), l.Properties()}
		_ = l.Refuse(ctx, &Error{Condition: ErrCondUnauthorizedAccess, Description: "put-token first"})
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, nil)
	s := newSession(t, c)
	_, err := s.NewSender(timeout(t), "/devices/d1/methods/devicebound", &goamqp.SenderOptions{
		Name:       "methods-sender",
		Properties: map[string]any{"com.microsoft:api-version": "2020-09-30"},
	})
	var ae *goamqp.Error
	if !errors.As(err, &ae) || ae.Condition != goamqp.ErrCondUnauthorizedAccess {
		t.Fatalf("new sender = %v, want unauthorized-access", err)
	}
	want := attach{"methods-sender", "/devices/d1/methods/devicebound", RoleReceiver,
		Map{{Key: Symbol("com.microsoft:api-version"), Value: "2020-09-30"}}}
	if diff := cmpAny(want, <-attaches); diff != "" {
		t.Errorf("attach (-want +got):\n%s", diff)
	}
	// The session survives a refused link.
	_, err = s.NewReceiver(timeout(t), "/x", nil)
	if !errors.As(err, &ae) || ae.Condition != goamqp.ErrCondUnauthorizedAccess {
		t.Fatalf("new receiver = %v, want unauthorized-access", err)
	}
}

func TestGoAMQPServerDetaches(t *testing.T) {
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if err := l.Accept(ctx); err != nil {
			return
		}
		_ = l.Detach(ctx, &Error{Condition: ErrCondDetachForced, Description: "token expired"})
		<-l.Done()
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, nil)
	rcv, err := newSession(t, c).NewReceiver(timeout(t), "/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rcv.Receive(timeout(t), nil)
	var le *goamqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != goamqp.ErrCondDetachForced {
		t.Fatalf("receive = %v, want *amqp.LinkError with detach-forced", err)
	}
}

func TestGoAMQPServerClosesConnection(t *testing.T) {
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if err := l.Accept(ctx); err != nil {
			return
		}
		l.Conn().CloseWithError(&Error{Condition: ErrCondConnectionForced, Description: "bye"})
		<-ctx.Done()
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, nil)
	// The server closes right after its attach, so go-amqp may report the
	// close from NewReceiver itself or from the first Receive; both are
	// the same outcome.
	rcv, err := newSession(t, c).NewReceiver(timeout(t), "/x", nil)
	if err == nil {
		_, err = rcv.Receive(timeout(t), nil)
	}
	var ce *goamqp.ConnError
	if !errors.As(err, &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != goamqp.ErrCondConnectionForced {
		t.Fatalf("attach or receive = %v, want *amqp.ConnError with connection:forced", err)
	}
	select {
	case err := <-ts.served:
		if !errors.Is(err, &Error{Condition: ErrCondConnectionForced}) {
			t.Errorf("Serve = %v, want connection:forced", err)
		}
	case <-timeout(t).Done():
		t.Fatal("Serve did not return")
	}
}

func TestGoAMQPClientClosesLinkAndSession(t *testing.T) {
	ended := make(chan error, 1)
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if err := l.Accept(ctx); err != nil {
			return
		}
		_, err := l.Receive(ctx)
		ended <- err
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, nil)
	s := newSession(t, c)
	snd, err := s.NewSender(timeout(t), "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Close(timeout(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		var le *LinkError
		if !errors.As(err, &le) || !le.Remote {
			t.Errorf("Receive after client detach = %v, want remote *LinkError", err)
		}
	case <-timeout(t).Done():
		t.Fatal("link did not end")
	}
	if err := s.Close(timeout(t)); err != nil {
		t.Fatalf("session close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("conn close: %v", err)
	}
	select {
	case err := <-ts.served:
		if err != nil {
			t.Errorf("Serve after a clean close = %v, want nil", err)
		}
	case <-timeout(t).Done():
		t.Fatal("Serve did not return")
	}
}

func TestGoAMQPSendWaitsForCredit(t *testing.T) {
	type sendResult struct {
		state DeliveryState
		err   error
	}
	results := make(chan sendResult, 2)
	queuedAfterGiveUp := make(chan int, 1)
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if err := l.Accept(ctx); err != nil {
			return
		}
		// No credit yet: this Send gives up when its context ends.
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		state, err := l.Send(short, &Message{Value: "dropped"})
		cancel()
		// The message given up on no longer waits in the link's queue.
		var queued int
		_ = l.s.c.do(ctx, func() error { queued = len(l.queue); return nil })
		queuedAfterGiveUp <- queued
		results <- sendResult{state, err}
		state, err = l.Send(ctx, &Message{Value: "delivered"})
		results <- sendResult{state, err}
		<-ctx.Done()
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, nil)
	rcv, err := newSession(t, c).NewReceiver(timeout(t), "/x", &goamqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	first := <-results
	if !errors.Is(first.err, context.DeadlineExceeded) {
		t.Fatalf("send without credit = %v, want deadline exceeded", first.err)
	}
	if n := <-queuedAfterGiveUp; n != 0 {
		t.Errorf("%d messages still queued after their Send gave up, want 0", n)
	}
	if err := rcv.IssueCredit(1); err != nil {
		t.Fatal(err)
	}
	msg, err := rcv.Receive(timeout(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Value != "delivered" {
		t.Errorf("received %v, want the second message only", msg.Value)
	}
	if err := rcv.AcceptMessage(timeout(t), msg); err != nil {
		t.Fatal(err)
	}
	second := <-results
	if second.err != nil {
		t.Fatal(second.err)
	}
	if _, ok := second.state.(*Accepted); !ok {
		t.Errorf("outcome %#v, want accepted", second.state)
	}
}

func TestGoAMQPDrain(t *testing.T) {
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if l.Accept(ctx) == nil {
			<-ctx.Done()
		}
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, nil)
	rcv, err := newSession(t, c).NewReceiver(timeout(t), "/x", &goamqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.IssueCredit(5); err != nil {
		t.Fatal(err)
	}
	// DrainCredit returns once the server answers the drain.
	if err := rcv.DrainCredit(timeout(t), nil); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func TestGoAMQPClientReleasesAndRejects(t *testing.T) {
	msgs := make(chan *Message, 4)
	outcomes := make(chan DeliveryState, 4)
	ts := startServer(t, sendingHandler(msgs, outcomes), nil)
	c := ts.dial(t, nil)
	rcv, err := newSession(t, c).NewReceiver(timeout(t), "/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs <- &Message{Value: "a"}
	msgs <- &Message{Value: "b"}
	m, err := rcv.Receive(timeout(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.ReleaseMessage(timeout(t), m); err != nil {
		t.Fatal(err)
	}
	if diff := cmpAny(DeliveryState(&Released{}), <-outcomes); diff != "" {
		t.Errorf("release outcome (-want +got):\n%s", diff)
	}
	m, err = rcv.Receive(timeout(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.RejectMessage(timeout(t), m, &goamqp.Error{Condition: goamqp.ErrCondDecodeError, Description: "no data"}); err != nil {
		t.Fatal(err)
	}
	want := &Rejected{Error: &Error{Condition: ErrCondDecodeError, Description: "no data"}}
	if diff := cmpAny(DeliveryState(want), <-outcomes); diff != "" {
		t.Errorf("reject outcome (-want +got):\n%s", diff)
	}
}

func TestGoAMQPHandlerWithoutDecision(t *testing.T) {
	calls := make(chan string, 2)
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		calls <- l.Name()
		if l.Address() == "panic" {
			panic("handler bug")
		}
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, nil)
	s := newSession(t, c)
	for _, tc := range []struct{ addr, cond string }{{"nothing", string(ErrCondNotFound)}, {"panic", string(ErrCondNotFound)}} {
		_, err := s.NewSender(timeout(t), tc.addr, nil)
		var ae *goamqp.Error
		if !errors.As(err, &ae) || string(ae.Condition) != tc.cond {
			t.Errorf("attach %s = %v, want %s", tc.addr, err, tc.cond)
		}
	}
	if len(calls) != 2 {
		t.Errorf("%d handler calls, want 2", len(calls))
	}
}

func TestConnIdentity(t *testing.T) {
	type identity struct {
		Mechanism Symbol
		Username  string
		Container string
	}
	ids := make(chan identity, 1)
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		mech, user := l.Conn().SASL()
		ids <- identity{mech, user, l.Conn().RemoteOpen().ContainerID}
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("d1@sas.hub", "token"), ContainerID: "client-1"})
	_, _ = newSession(t, c).NewSender(timeout(t), "x", nil)
	if diff := cmpAny(identity{SASLPlain, "d1@sas.hub", "client-1"}, <-ids); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestServerCloseWaitsForHandlers(t *testing.T) {
	started := make(chan *Conn, 1)
	returned := make(chan struct{})
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if l.Accept(ctx) != nil {
			return
		}
		started <- l.Conn()
		<-ctx.Done()
		close(returned)
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, nil)
	if _, err := newSession(t, c).NewReceiver(timeout(t), "/x", nil); err != nil {
		t.Fatal(err)
	}
	conn := <-started
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-returned:
	default:
		t.Fatal("Close returned before the link handler")
	}
	select {
	case <-c.Done():
	case <-timeout(t).Done():
		t.Fatal("client did not see the close")
	}
}

func TestGoAMQPReceiverSettleSecond(t *testing.T) {
	msgs := make(chan *Message, 1)
	outcomes := make(chan DeliveryState, 1)
	ts := startServer(t, sendingHandler(msgs, outcomes), nil)
	c := ts.dial(t, nil)
	second := goamqp.ReceiverSettleModeSecond
	rcv, err := newSession(t, c).NewReceiver(timeout(t), "/x", &goamqp.ReceiverOptions{SettlementMode: &second})
	if err != nil {
		t.Fatal(err)
	}
	msgs <- &Message{Value: "v"}
	m, err := rcv.Receive(timeout(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	// In mode second the client waits for our settlement.
	if err := rcv.AcceptMessage(timeout(t), m); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if _, ok := (<-outcomes).(*Accepted); !ok {
		t.Error("outcome is not accepted")
	}
}

func TestGoAMQPAcceptWithCreditAndGrant(t *testing.T) {
	links := make(chan *Link, 1)
	received := make(chan *Delivery, 4)
	h := LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if err := l.AcceptWithCredit(ctx, 0); err != nil {
			return
		}
		links <- l
		for {
			d, err := l.Receive(ctx)
			if err != nil {
				return
			}
			received <- d
			_ = d.Accept(ctx)
		}
	})
	ts := startServer(t, h, nil)
	c := ts.dial(t, nil)
	snd, err := newSession(t, c).NewSender(timeout(t), "/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := <-links

	// No credit: the send gives up when its context ends.
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	err = snd.Send(short, &goamqp.Message{Value: "starved"}, nil)
	cancel()
	var amqpErr *goamqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Condition != goamqp.ErrCondTransferLimitExceeded {
		t.Fatalf("send without credit = %v, want transfer-limit-exceeded", err)
	}

	// One credit: one message, and no more credit after it.
	if err := l.Grant(timeout(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(timeout(t), &goamqp.Message{Value: "granted"}, nil); err != nil {
		t.Fatalf("send with credit: %v", err)
	}
	if d := <-received; d.Message.Value != "granted" {
		t.Errorf("received %v, want granted", d.Message.Value)
	}
	short, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	err = snd.Send(short, &goamqp.Message{Value: "starved again"}, nil)
	cancel()
	if !errors.As(err, &amqpErr) || amqpErr.Condition != goamqp.ErrCondTransferLimitExceeded {
		t.Fatalf("send after the granted credit was used = %v, want transfer-limit-exceeded", err)
	}
}
