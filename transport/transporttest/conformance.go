package transporttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/testcred"
	"github.com/directmethods/iotdevice/transport"
)

// Harness is what TestDialer needs for one subtest: the transport under
// test, and a hub it connects to with an identity that the subtest alone
// uses.
type Harness struct {
	// Dialer is the transport under test.
	Dialer transport.Dialer
	// Config reaches the identity. The suite dials it several times, one
	// connection at a time, from a copy whose Credential counts the
	// tokens obtained; it never modifies it.
	Config *transport.Config
	// QueueSize is how many received requests a Conn holds for Receive
	// before it answers new ones 503 (the adapters' Options.QueueSize). It
	// must be at least 1; a small value keeps the suite fast.
	QueueSize int
	// Invoke calls method on the identity with a JSON payload, as a cloud
	// application does through the hub, and returns the status and JSON
	// payload the device answered. Like IoT Hub with
	// connectTimeoutInSeconds 0, it fails at once when the identity is not
	// connected and subscribed; otherwise it waits for the answer until
	// ctx is done, or fails when no answer can come. The suite calls it
	// from several goroutines at once.
	Invoke func(ctx context.Context, method string, payload []byte) (status int, response []byte, err error)
	// Drop ends the identity's live connection from the hub's side, as a
	// network failure does, and reports whether there was one.
	Drop func() bool
}

// MakeHarness returns the Harness of one subtest. TestDialer calls it
// once per subtest, with the subtest's t; it releases what it starts
// with t.Cleanup.
type MakeHarness func(t *testing.T) *Harness

// waitTimeout bounds every wait of the suite: an operation still
// pending after it has hung. No result depends on it.
const waitTimeout = 30 * time.Second

// TestDialer checks that a transport.Dialer and its Conns keep the
// contract of package transport, against the hub that each Harness from
// mh provides, in these subtests of t:
//
//   - DialSubscribes: a call made as soon as Dial returns is delivered,
//     and each Dial obtains one token (none with a certificate);
//   - DialHonoursContext: a Dial whose context is done fails with an
//     error wrapping context.Canceled;
//   - ReceiveHonoursContext: Receive returns when its context ends, and
//     the Conn stays usable;
//   - CloseDrains: after Close, Receive returns the requests already
//     received, then an error wrapping net.ErrClosed;
//   - AnswersStayOnTheirConnection: Respond on a closed connection fails
//     at once, and the answer reaches no call of the next connection
//     (IoT Hub numbers request ids per connection, so the same id may
//     name another call there);
//   - DroppedByHub: a connection the hub drops ends Receive with an error
//     wrapping transport.ErrConnLost and none of ErrUnauthorized,
//     ErrIdentityNotFound, ErrThrottled or context.Canceled (so the
//     client dials again after a backoff delay), answers on it fail, and
//     a new Dial serves calls again;
//   - TokenRenewal: a transport.TokenRefresher renews in band and keeps
//     serving calls; a transport.Quiescer stops new requests while those
//     received are answered on it; a new Dial takes a fresh token and
//     serves calls;
//   - Overload: while the queue is full and nobody receives, new requests
//     are answered 503 at once, so the protocol library's receive
//     goroutine never waits for the queue, and the queued requests are
//     served in turn;
//   - Concurrency: one goroutine receives while several answer, then
//     Respond and Close race; run it with -race.
//
// Each subtest takes a few round trips to the hub, and none sleeps.
// Testing the Fake against its own hub side:
//
//	func TestFakeConforms(t *testing.T) {
//		transporttest.TestDialer(t, func(t *testing.T) *transporttest.Harness {
//			fake := transporttest.NewFake(&transporttest.FakeOptions{QueueSize: 4})
//			cred, err := sas.NewKeyCredential(base64.StdEncoding.EncodeToString([]byte("test-key")), "", time.Hour)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return &transporttest.Harness{
//				Dialer:    fake,
//				Config:    &transport.Config{HostName: "hub.example", DeviceID: "dev-1", Credential: cred},
//				QueueSize: 4,
//				Invoke: func(ctx context.Context, method string, payload []byte) (int, []byte, error) {
//					if !fake.Connected() {
//						return 0, nil, errors.New("device not online")
//					}
//					return fake.Invoke(ctx, method, payload)
//				},
//				Drop: func() bool { return fake.Drop(nil) },
//			}
//		})
//	}
//
// A transport of your own is tested the same way against a real hub: Invoke
// posts to the service API's /twins/{id}/methods, and Drop, for instance,
// closes the network connection the Dialer opened.
func TestDialer(t *testing.T, mh MakeHarness) {
	for _, tc := range []struct {
		name string
		run  func(s *suite)
	}{
		{"DialSubscribes", testDialSubscribes},
		{"DialHonoursContext", testDialHonoursContext},
		{"ReceiveHonoursContext", testReceiveHonoursContext},
		{"CloseDrains", testCloseDrains},
		{"AnswersStayOnTheirConnection", testAnswersStayOnTheirConnection},
		{"DroppedByHub", testDroppedByHub},
		{"TokenRenewal", testTokenRenewal},
		{"Overload", testOverload},
		{"Concurrency", testConcurrency},
		{"ManyReceivers", testManyReceivers},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(newSuite(t, mh)) })
	}
}

// suite is one subtest's state.
type suite struct {
	t    *testing.T
	h    *Harness
	cfg  *transport.Config // h.Config with cred
	cred *testcred.CountingCredential
	sas  bool           // the credential signs tokens: one per Dial
	wg   sync.WaitGroup // the calls' goroutines; joined at the subtest's end
}

func newSuite(t *testing.T, mh MakeHarness) *suite {
	t.Helper()
	h := mh(t)
	switch {
	case h == nil:
		t.Fatal("transporttest: MakeHarness returned nil")
	case h.Dialer == nil || h.Config == nil || h.Invoke == nil || h.Drop == nil:
		t.Fatal("transporttest: the Harness needs a Dialer, a Config, Invoke and Drop")
	case h.Config.Credential == nil:
		t.Fatal("transporttest: the Harness's Config has no Credential")
	case h.QueueSize < 1:
		t.Fatalf("transporttest: Harness.QueueSize is %d, want at least 1", h.QueueSize)
	}
	cred := &testcred.CountingCredential{Credential: h.Config.Credential}
	cfg := *h.Config
	cfg.Credential = cred
	s := &suite{t: t, h: h, cfg: &cfg, cred: cred, sas: h.Config.Credential.ClientCertificate() == nil}
	t.Cleanup(s.wg.Wait) // t.Context() is done by then, which ends the calls
	return s
}

// bounded returns a context that ends after waitTimeout, or with the
// subtest.
func (s *suite) bounded() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.t.Context(), waitTimeout)
}

// dial connects, checks that one token was obtained (none or one with a
// certificate credential), and closes the Conn when the subtest ends.
func (s *suite) dial() transport.Conn {
	s.t.Helper()
	ctx, cancel := s.bounded()
	defer cancel()
	before := s.cred.Tokens()
	conn, err := s.h.Dialer.Dial(ctx, s.cfg)
	if err != nil {
		s.t.Fatalf("Dial: %v", err)
	}
	s.t.Cleanup(func() { conn.Close() })
	switch n := s.cred.Tokens() - before; {
	case s.sas && n != 1:
		s.t.Errorf("Dial obtained %d tokens from the credential, want 1", n)
	case n > 1:
		s.t.Errorf("Dial obtained %d tokens from a certificate credential, want at most 1", n)
	}
	return conn
}

// result is the outcome of one call, numbered by its payload.
type result struct {
	n       int
	status  int
	payload []byte
	err     error
}

// payload is the JSON body of call n.
func payload(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }

// number returns the n of a payload made by payload.
func number(p []byte) (int, bool) {
	var v struct{ N *int }
	if json.Unmarshal(p, &v) != nil || v.N == nil {
		return 0, false
	}
	return *v.N, true
}

// sameJSON reports whether a and b are the same JSON value; bytes that
// are not JSON must be equal.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// invoke starts call n of method with payload(n); its result goes to
// results, which must have room for it. ctx ends the call.
func (s *suite) invoke(ctx context.Context, method string, n int, results chan<- result) {
	s.wg.Go(func() { // owned by the subtest: ends with the call or ctx, joined at its end
		status, body, err := s.h.Invoke(ctx, method, payload(n))
		results <- result{n: n, status: status, payload: body, err: err}
	})
}

// next returns the next result.
func (s *suite) next(results <-chan result, what string) result {
	s.t.Helper()
	t := time.NewTimer(waitTimeout)
	defer t.Stop()
	select {
	case r := <-results:
		return r
	case <-t.C:
		s.t.Fatalf("no result for %s within %v", what, waitTimeout)
		panic("unreachable")
	}
}

// wantAnswer checks that r is call r.n answered 200 with its own
// payload, as echo answers.
func (s *suite) wantAnswer(r result) {
	s.t.Helper()
	if r.err != nil || r.status != 200 || !sameJSON(payload(r.n), r.payload) {
		s.t.Errorf("call %d = %d %s, %v; want 200 %s", r.n, r.status, r.payload, r.err, payload(r.n))
	}
}

// wantNoAnswer checks that r is a failed call: its answer cannot have
// reached it.
func (s *suite) wantNoAnswer(r result, why string) {
	s.t.Helper()
	if r.err == nil {
		s.t.Errorf("call %d was answered %d %s, but %s", r.n, r.status, r.payload, why)
	}
}

// receive returns the next request of conn.
func (s *suite) receive(conn transport.Conn) *transport.MethodRequest {
	s.t.Helper()
	ctx, cancel := s.bounded()
	defer cancel()
	req, err := conn.Receive(ctx)
	if err != nil {
		s.t.Fatalf("Receive: %v", err)
	}
	return req
}

// receiveEnd returns the error by which Receive reports that conn ended.
func (s *suite) receiveEnd(conn transport.Conn) error {
	s.t.Helper()
	ctx, cancel := s.bounded()
	defer cancel()
	req, err := conn.Receive(ctx)
	switch {
	case err == nil:
		s.t.Fatalf("Receive returned request %s %s, want the connection's end", req.Name, req.Payload)
	case ctx.Err() != nil:
		s.t.Fatalf("Receive did not report the connection's end within %v: %v", waitTimeout, err)
	}
	return err
}

// numberOf returns the call number of req, checking its method.
func (s *suite) numberOf(req *transport.MethodRequest, method string) int {
	s.t.Helper()
	n, ok := number(req.Payload)
	if !ok || req.Name != method {
		s.t.Fatalf("request %q %s, want method %q with a payload {\"n\":…}", req.Name, req.Payload, method)
	}
	return n
}

// echo answers req 200 with its own payload.
func (s *suite) echo(conn transport.Conn, req *transport.MethodRequest) {
	s.t.Helper()
	ctx, cancel := s.bounded()
	defer cancel()
	if err := conn.Respond(ctx, req, 200, req.Payload); err != nil {
		s.t.Fatalf("Respond: %v", err)
	}
}

// respondFails checks that Respond on the ended conn fails by itself,
// without waiting for its context.
func (s *suite) respondFails(conn transport.Conn, req *transport.MethodRequest, status int, body []byte) {
	s.t.Helper()
	ctx, cancel := s.bounded()
	defer cancel()
	err := conn.Respond(ctx, req, status, body)
	switch {
	case err == nil:
		s.t.Error("Respond on an ended connection succeeded")
	case ctx.Err() != nil:
		s.t.Errorf("Respond on an ended connection waited for its context: %v", err)
	}
}

// roundTrip makes call n of method on conn and checks its answer.
func (s *suite) roundTrip(conn transport.Conn, method string, n int) {
	s.t.Helper()
	results := make(chan result, 1)
	s.invoke(s.t.Context(), method, n, results)
	req := s.receive(conn)
	if got := s.numberOf(req, method); got != n {
		s.t.Fatalf("received call %d, want %d", got, n)
	}
	s.echo(conn, req)
	s.wantAnswer(s.next(results, method))
}

// wantNotDelivered makes call n of method while conn must not be
// subscribed: the call fails at once, and conn receives nothing.
func (s *suite) wantNotDelivered(conn transport.Conn, method string, n int) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.t.Context())
	defer cancel()
	results := make(chan result, 1)
	s.invoke(ctx, method, n, results)
	delivered := make(chan *transport.MethodRequest, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // ends the Receive below before the wait above
	wg.Go(func() { // owned by this check: ends with ctx, joined above
		if req, err := conn.Receive(ctx); err == nil {
			delivered <- req
		}
	})
	t := time.NewTimer(waitTimeout)
	defer t.Stop()
	select {
	case r := <-results:
		s.wantNoAnswer(r, "the connection was not subscribed")
	case req := <-delivered:
		s.t.Errorf("request %s %s delivered on a connection that was not subscribed", req.Name, req.Payload)
	case <-t.C:
		s.t.Errorf("call %d neither failed nor was delivered within %v", n, waitTimeout)
	}
}
