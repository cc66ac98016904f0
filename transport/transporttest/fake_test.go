package transporttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func testConfig(t *testing.T) *transport.Config {
	cred, err := sas.NewKeyCredential("MDEyMzQ1Njc4OWFiY2RlZg==", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &transport.Config{HostName: "h.example", DeviceID: "d", Credential: cred}
}

func TestFakeDialRules(t *testing.T) {
	ctx := t.Context()
	f := NewFake(&FakeOptions{Key: []byte("0123456789abcdef")})
	f.FailDials(2, nil)
	for i := range 2 {
		if _, err := f.Dial(ctx, testConfig(t)); !errors.Is(err, ErrRefused) || !errors.Is(err, transport.ErrConnLost) {
			t.Fatalf("dial %d: %v, want ErrRefused, which wraps transport.ErrConnLost", i, err)
		}
	}
	c1, err := f.Dial(ctx, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	// A second connection evicts the first.
	c2, err := f.Dial(ctx, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Receive(ctx); !errors.Is(err, transport.ErrConnLost) {
		t.Errorf("evicted Receive = %v, want ErrConnLost", err)
	}
	// Close keeps buffered requests readable, then reports net.ErrClosed.
	c2.(*fakeConn).deliver(&transport.MethodRequest{Name: "m", RequestID: "1"})
	c2.Close()
	if req, err := c2.Receive(ctx); err != nil || req.Name != "m" {
		t.Errorf("Receive after Close = %v, %v; want the buffered request", req, err)
	}
	if _, err := c2.Receive(ctx); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Receive after drain = %v, want net.ErrClosed", err)
	}
	if f.Connected() {
		t.Error("connected after Close")
	}

	bad := NewFake(&FakeOptions{Key: []byte("another key")})
	if _, err := bad.Dial(ctx, testConfig(t)); !errors.Is(err, transport.ErrUnauthorized) || !errors.Is(err, sastoken.ErrBadSignature) {
		t.Errorf("dial with a wrong key = %v", err)
	}
	if n := f.Dials(); n != 4 {
		t.Errorf("Dials = %d, want 4", n)
	}
}

func TestInvokeWaitsForConnection(t *testing.T) {
	f := NewFake(nil)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := f.Invoke(ctx, "m", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Invoke with nobody connected = %v, want the context's deadline", err)
	}
}

func TestDuplicateAnswersUseBoundedMemory(t *testing.T) {
	f := NewFake(nil)
	req := func(i int) *transport.MethodRequest {
		return &transport.MethodRequest{RequestID: fmt.Sprintf("%x", i+1)}
	}
	c := &fakeConn{fake: f, wake: make(chan struct{}, 1), dead: make(chan struct{}), lastID: 3 * rememberAnswers}
	for i := range 3 * rememberAnswers {
		if err := c.Respond(t.Context(), req(i), 200, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Respond(t.Context(), req(3*rememberAnswers-1), 200, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.DuplicateAnswers(); got != 1 {
		t.Errorf("DuplicateAnswers = %d, want 1", got)
	}
	if n := len(f.answeredIDs); n > rememberAnswers {
		t.Errorf("the fake remembers %d answered ids, want at most %d", n, rememberAnswers)
	}
}

func TestDuplicateAnswersForgetOldestFirst(t *testing.T) {
	f := NewFake(nil)
	c := &fakeConn{fake: f, wake: make(chan struct{}, 1), dead: make(chan struct{}), lastID: 2 * rememberAnswers}
	respond := func(i int) {
		t.Helper()
		if err := c.Respond(t.Context(), &transport.MethodRequest{RequestID: fmt.Sprintf("%x", i+1)}, 200, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range rememberAnswers + 1 { // the first id falls out of the window
		respond(i)
	}
	respond(0) // forgotten: not a duplicate, and now remembered again, pushing out id 1
	respond(2) // still remembered
	respond(rememberAnswers)
	if got := f.DuplicateAnswers(); got != 2 {
		t.Errorf("DuplicateAnswers = %d, want 2 (ids 2 and %d)", got, rememberAnswers)
	}
	respond(1)
	if got := f.DuplicateAnswers(); got != 2 {
		t.Errorf("DuplicateAnswers = %d after answering the pushed-out id 1, want still 2", got)
	}
}

// TestAnswersMatchedPerConnection checks that request ids are numbered
// per connection and that an answer counts only on its own connection.
func TestAnswersMatchedPerConnection(t *testing.T) {
	f := NewFake(nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	first, err := f.Dial(ctx, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	go func() { // owned by the test: ends when the connection drops
		_, _, err := f.Invoke(ctx, "a", nil)
		lost <- err
	}()
	reqA, err := first.Receive(ctx)
	if err != nil || reqA.RequestID != "1" {
		t.Fatalf("first request = %+v, %v; want id 1", reqA, err)
	}
	f.Drop(nil)
	if err := <-lost; !errors.Is(err, ErrAnswerLost) {
		t.Fatalf("Invoke whose connection dropped = %v, want ErrAnswerLost", err)
	}
	if err := first.Respond(ctx, reqA, 200, nil); err == nil {
		t.Error("Respond on the dropped connection succeeded")
	}

	second, err := f.Dial(ctx, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	// A's answer sent again on the new connection names none of its
	// requests.
	if err := second.Respond(ctx, reqA, 200, []byte(`"stale"`)); err != nil {
		t.Fatal(err)
	}
	if n := f.StrayAnswers(); n != 1 {
		t.Errorf("StrayAnswers = %d, want 1", n)
	}
	answered := make(chan string, 1)
	go func() { // owned by the test: ends with the invocation
		_, body, _ := f.Invoke(ctx, "b", nil)
		answered <- string(body)
	}()
	reqB, err := second.Receive(ctx)
	if err != nil || reqB.RequestID != "1" {
		t.Fatalf("first request on the new connection = %+v, %v; want id 1 again", reqB, err)
	}
	if err := second.Respond(ctx, reqB, 200, []byte(`"b"`)); err != nil {
		t.Fatal(err)
	}
	if got := <-answered; got != `"b"` {
		t.Errorf("B answered %s", got)
	}
}

func TestInvokeReusesAnswerChannels(t *testing.T) {
	f := NewFake(nil)
	conn, err := f.Dial(t.Context(), testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	echoed := make(chan error, 1)
	go func() { // owned by the test: ends when conn is closed
		for {
			req, err := conn.Receive(ctx)
			if err != nil {
				echoed <- err
				return
			}
			conn.Respond(ctx, req, 200, req.Payload)
		}
	}()
	for i := range 50 {
		want := fmt.Sprintf(`{"i":%d}`, i)
		status, body, err := f.Invoke(ctx, "m", []byte(want))
		if err != nil || status != 200 || string(body) != want {
			t.Fatalf("call %d: %d %s %v", i, status, body, err)
		}
	}
	if n := len(f.spare); n != 1 {
		t.Errorf("%d spare answer channels after 50 sequential calls, want 1 reused", n)
	}
	conn.Close()
	if err := <-echoed; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Receive after Close = %v", err)
	}
}

// TestQueueFullAnswers503: with QueueSize, a request that finds the
// connection's queue full is answered 503 at once, as the adapters do,
// and the queued one still reaches Receive.
func TestQueueFullAnswers503(t *testing.T) {
	f := NewFake(&FakeOptions{QueueSize: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := f.Dial(ctx, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type result struct {
		status int
		body   string
	}
	results := make(chan result, 2)
	for range 2 {
		go func() { // owned by the test: ends when its call is answered, collected below
			status, body, err := f.Invoke(ctx, "m", nil)
			if err != nil {
				t.Errorf("Invoke: %v", err)
			}
			results <- result{status, string(body)}
		}()
	}
	// Nobody receives yet: one call is queued, the other refused.
	busy := <-results
	if want := (result{503, `{"error":"device busy: too many pending requests"}`}); busy != want {
		t.Errorf("first answer = %+v, want %+v", busy, want)
	}
	req, err := conn.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if err := conn.Respond(ctx, req, 200, []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if got, want := <-results, (result{200, `1`}); got != want {
		t.Errorf("queued call answered %+v, want %+v", got, want)
	}
}
