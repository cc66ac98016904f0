package transporttest

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/transport"
	"github.com/google/go-cmp/cmp"
)

// testDialSubscribes: Dial returns only once requests can flow, so a call
// made at once is delivered (Harness.Invoke fails for an identity that is
// not subscribed). Close is idempotent.
func testDialSubscribes(s *suite) {
	for n := range 3 {
		conn := s.dial()
		s.roundTrip(conn, "subscribed", n)
		for range 2 {
			if err := conn.Close(); err != nil {
				s.t.Errorf("Close: %v", err)
			}
		}
	}
}

// testDialHonoursContext: a Dial whose context is done fails with an
// error wrapping context.Canceled, so that the client recognises its own
// cancellation.
func testDialHonoursContext(s *suite) {
	ctx, cancel := context.WithCancel(s.t.Context())
	cancel()
	conn, err := s.h.Dialer.Dial(ctx, s.cfg)
	if err == nil {
		conn.Close()
		s.t.Fatal("Dial with a cancelled context succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		s.t.Errorf("Dial with a cancelled context = %v, want context.Canceled", err)
	}
}

// testReceiveHonoursContext: Receive returns ctx's error when ctx is done,
// on entry or from another goroutine, and the Conn stays usable.
func testReceiveHonoursContext(s *suite) {
	conn := s.dial()
	ctx, cancel := context.WithCancel(s.t.Context())
	cancel()
	if _, err := conn.Receive(ctx); !errors.Is(err, context.Canceled) {
		s.t.Errorf("Receive with a cancelled context = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithCancel(s.t.Context())
	defer cancel()
	done := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { // owned by the subtest: ends when ctx is cancelled below, joined at once
		_, err := conn.Receive(ctx)
		done <- err
	})
	cancel()
	wg.Wait()
	if err := <-done; !errors.Is(err, context.Canceled) {
		s.t.Errorf("Receive whose context another goroutine cancelled = %v, want context.Canceled", err)
	}
	s.roundTrip(conn, "after-cancel", 1)
}

// testCloseDrains: requests received before Close come out of Receive
// after it, then Receive reports net.ErrClosed, and answers fail. The
// queue is filled first: the 503 answer to one more call proves that the
// others have all reached the Conn.
func testCloseDrains(s *suite) {
	conn := s.dial()
	ctx, cancel := context.WithCancel(s.t.Context())
	defer cancel()
	size := s.h.QueueSize
	results := make(chan result, size+1)
	for n := range size + 1 {
		s.invoke(ctx, "queued", n, results)
	}
	busy := s.next(results, "the call that finds the queue full")
	if busy.err != nil || busy.status != 503 {
		s.t.Fatalf("with %d calls queued and nobody receiving, one more got %d %s, %v; want 503", size, busy.status, busy.payload, busy.err)
	}
	if err := conn.Close(); err != nil {
		s.t.Errorf("Close: %v", err)
	}

	var got, want []int
	var last *transport.MethodRequest
	for range size {
		last = s.receive(conn)
		got = append(got, s.numberOf(last, "queued"))
	}
	for n := range size + 1 {
		if n != busy.n {
			want = append(want, n)
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		s.t.Errorf("calls drained after Close (-want +got):\n%s", diff)
	}
	for range 2 {
		if err := s.receiveEnd(conn); !errors.Is(err, net.ErrClosed) {
			s.t.Errorf("Receive once drained = %v, want net.ErrClosed", err)
		}
	}
	s.respondFails(conn, last, 200, last.Payload)
	cancel()
	for range size {
		s.wantNoAnswer(s.next(results, "a call whose connection closed"), "its connection closed before the answer")
	}
}

// testAnswersStayOnTheirConnection: an answer for a closed connection
// fails at once and reaches no call of the next connection, whose
// request may carry the same id (MQTT $rid 1 on both).
func testAnswersStayOnTheirConnection(s *suite) {
	ctx, cancel := context.WithCancel(s.t.Context())
	defer cancel()
	first := s.dial()
	orphan := make(chan result, 1)
	s.invoke(ctx, "first", 1, orphan)
	reqA := s.receive(first)
	s.numberOf(reqA, "first")
	if err := first.Close(); err != nil {
		s.t.Errorf("Close: %v", err)
	}

	second := s.dial()
	answered := make(chan result, 1)
	s.invoke(ctx, "second", 2, answered)
	reqB := s.receive(second)
	s.numberOf(reqB, "second")
	s.t.Logf("request ids: %q on the closed connection, %q on the next", reqA.RequestID, reqB.RequestID)

	s.respondFails(first, reqA, 201, []byte(`{"from":"the closed connection"}`))
	s.echo(second, reqB)
	s.wantAnswer(s.next(answered, "the call on the second connection"))
	cancel()
	s.wantNoAnswer(s.next(orphan, "the call on the closed connection"), "its connection closed before the answer")
}

// testDroppedByHub: a connection the hub drops ends with an error the
// client retries (it wraps transport.ErrConnLost, and no sentinel on
// which the client stops or waits longer), answers on it fail, and a new
// Dial serves calls.
func testDroppedByHub(s *suite) {
	ctx, cancel := context.WithCancel(s.t.Context())
	defer cancel()
	conn := s.dial()
	orphan := make(chan result, 1)
	s.invoke(ctx, "dropped", 1, orphan)
	req := s.receive(conn)
	s.numberOf(req, "dropped")
	if !s.h.Drop() {
		s.t.Fatal("Drop found no connection to drop")
	}
	err := s.receiveEnd(conn)
	if !errors.Is(err, transport.ErrConnLost) {
		s.t.Errorf("Receive on a dropped connection = %v, want transport.ErrConnLost", err)
	}
	for _, target := range []error{transport.ErrUnauthorized, transport.ErrIdentityNotFound, transport.ErrThrottled, context.Canceled} {
		if errors.Is(err, target) {
			s.t.Errorf("Receive on a dropped connection = %v, wraps %v unexpectedly", err, target)
		}
	}
	s.respondFails(conn, req, 200, req.Payload)
	if err := conn.Close(); err != nil {
		s.t.Errorf("Close after the drop: %v", err)
	}
	cancel()
	s.wantNoAnswer(s.next(orphan, "the call on the dropped connection"), "its connection was dropped")

	s.roundTrip(s.dial(), "after-drop", 2)
}

// testTokenRenewal: a Conn that renews its token in band keeps serving
// calls on the same connection; every transport renews by a new Dial, as
// the client does without TokenRefresher: it quiesces the connection when
// it can (the calls it received are answered on it, and no request
// arrives afterwards), closes it and dials with a fresh token.
func testTokenRenewal(s *suite) {
	conn := s.dial()
	if r, ok := conn.(transport.TokenRefresher); ok {
		ctx, cancel := s.bounded()
		before := s.cred.Tokens()
		expiry, err := r.RefreshToken(ctx)
		cancel()
		if err != nil {
			s.t.Fatalf("RefreshToken: %v", err)
		}
		if n := s.cred.Tokens() - before; s.sas && n != 1 {
			s.t.Errorf("RefreshToken obtained %d tokens, want 1", n)
		}
		if s.sas && !expiry.After(time.Now()) {
			s.t.Errorf("RefreshToken = %v, want the new token's expiry, in the future", expiry)
		}
		s.roundTrip(conn, "after-refresh", 1)
	}
	if q, ok := conn.(transport.Quiescer); ok {
		// Calls that reached the Conn before Quiesce are still received and
		// answered on it, as the client answers them before it closes the
		// connection. The queue is filled first, so that they have.
		size := s.h.QueueSize
		results := make(chan result, size+1)
		for n := range size + 1 {
			s.invoke(s.t.Context(), "in-flight", 10+n, results)
		}
		if busy := s.next(results, "the call that finds the queue full"); busy.err != nil || busy.status != 503 {
			s.t.Fatalf("with %d calls queued and nobody receiving, one more got %d %s, %v; want 503", size, busy.status, busy.payload, busy.err)
		}
		ctx, cancel := s.bounded()
		err := q.Quiesce(ctx)
		cancel()
		if err != nil {
			s.t.Fatalf("Quiesce: %v", err)
		}
		for range size {
			req := s.receive(conn)
			s.numberOf(req, "in-flight")
			s.echo(conn, req)
		}
		for range size {
			s.wantAnswer(s.next(results, "a call answered after Quiesce"))
		}
		// The stream ends after them, so the client knows it has them all.
		ctx, cancel = s.bounded()
		_, err = conn.Receive(ctx)
		cancel()
		if !errors.Is(err, transport.ErrQuiesced) {
			s.t.Errorf("Receive once the quiesced requests are taken = %v, want transport.ErrQuiesced", err)
		}
		s.wantNotDelivered(conn, "after-quiesce", 2)
	}
	if err := conn.Close(); err != nil {
		s.t.Errorf("Close: %v", err)
	}
	if err := s.receiveEnd(conn); !errors.Is(err, net.ErrClosed) {
		s.t.Errorf("Receive after Close = %v, want net.ErrClosed", err)
	}
	if r, ok := conn.(transport.TokenRefresher); ok {
		ctx, cancel := s.bounded()
		_, err := r.RefreshToken(ctx)
		if err == nil || ctx.Err() != nil {
			s.t.Errorf("RefreshToken after Close = %v, want it to fail at once", err)
		}
		cancel()
	}
	s.roundTrip(s.dial(), "after-redial", 3)
}

// overloadExtra is how many calls beyond the queue's size Overload makes.
const overloadExtra = 3

// testOverload: while the queue is full and nobody receives, calls are
// answered 503 at once: the protocol library's receive goroutine hands
// requests over without waiting. The queued calls are then served in
// turn, and the Conn keeps serving.
func testOverload(s *suite) {
	conn := s.dial()
	size := s.h.QueueSize
	results := make(chan result, size+overloadExtra)
	for n := range size + overloadExtra {
		s.invoke(s.t.Context(), "burst", n, results)
	}
	refused := map[int]bool{}
	for range overloadExtra {
		r := s.next(results, "a call beyond the queue's size")
		if r.err != nil || r.status != 503 {
			s.t.Fatalf("with the queue full and nobody receiving, call %d got %d %s, %v; want 503", r.n, r.status, r.payload, r.err)
		}
		refused[r.n] = true
	}
	for range size {
		req := s.receive(conn)
		if n := s.numberOf(req, "burst"); refused[n] {
			s.t.Errorf("call %d was answered 503 and delivered too", n)
		}
		s.echo(conn, req)
	}
	for range size {
		s.wantAnswer(s.next(results, "a queued call"))
	}
	s.roundTrip(conn, "after-burst", size+overloadExtra)
}

// concurrencyRounds is how many calls each of Concurrency's callers
// makes in turn.
const concurrencyRounds = 8

// testConcurrency: one goroutine receives while several answer, with as
// many calls in flight as the queue holds (so none is refused); request
// ids are distinct on the connection. Then answers race Close: none
// blocks, a call answered gets its own answer, and the receiver sees
// net.ErrClosed.
func testConcurrency(s *suite) {
	t := s.t
	conn := s.dial()
	size := s.h.QueueSize

	var wg sync.WaitGroup
	quit := make(chan struct{})
	defer func() {
		conn.Close()
		close(quit)
		wg.Wait()
	}()
	requests := make(chan *transport.MethodRequest)
	received := make(chan error, 1)
	wg.Go(func() { // owned by the subtest: the one receiver; ends when Receive fails after Close, joined above
		for {
			req, err := conn.Receive(t.Context())
			if err != nil {
				received <- err
				return
			}
			select {
			case requests <- req:
			case <-quit:
				return
			}
		}
	})

	// Phase 1: answers from several goroutines, calls from several more.
	var mu sync.Mutex
	ids := map[string]bool{}
	stopAnswering := make(chan struct{})
	var answerers sync.WaitGroup
	for range size {
		answerers.Go(func() { // owned by the subtest: ends at stopAnswering, joined below
			for {
				select {
				case <-stopAnswering:
					return
				case req := <-requests:
					mu.Lock()
					if ids[req.RequestID] {
						t.Errorf("request id %q delivered twice on one connection", req.RequestID)
					}
					ids[req.RequestID] = true
					mu.Unlock()
					ctx, cancel := s.bounded()
					if err := conn.Respond(ctx, req, 200, req.Payload); err != nil {
						t.Errorf("Respond: %v", err)
					}
					cancel()
				}
			}
		})
	}
	s.callConcurrently("concurrent", size)
	close(stopAnswering)
	answerers.Wait()
	if t.Failed() {
		return
	}

	// Phase 2: answers race Close.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	results := make([]chan result, size)
	for n := range results {
		results[n] = make(chan result, 1)
		s.invoke(ctx, "racing", n, results[n])
	}
	held := make([]*transport.MethodRequest, 0, size)
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for range size {
		select {
		case req := <-requests:
			held = append(held, req)
		case <-timeout.C:
			t.Fatalf("%d of %d racing calls received within %v", len(held), size, waitTimeout)
		}
	}
	start := make(chan struct{})
	var racers sync.WaitGroup
	for _, req := range held {
		racers.Go(func() { // owned by the subtest: ends when Respond returns, joined below
			<-start
			ctx, cancel := s.bounded()
			defer cancel()
			if err := conn.Respond(ctx, req, 200, req.Payload); err != nil && ctx.Err() != nil {
				t.Errorf("Respond racing Close waited for its context: %v", err)
			}
		})
	}
	racers.Go(func() { // owned by the subtest: ends when Close returns, joined below
		<-start
		if err := conn.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	close(start)
	racers.Wait()

	// Whether an answer written just before Close reaches the hub is the
	// transport's affair (answers at most once may be lost); a call that
	// gets one gets its own.
	cancel()
	for n := range results {
		if r := s.next(results[n], "a call whose answer raced Close"); r.err == nil {
			s.wantAnswer(r)
		}
	}
	select {
	case err := <-received:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Receive once closed = %v, want net.ErrClosed", err)
		}
	case <-timeout.C:
		t.Errorf("Receive did not return within %v of Close", waitTimeout)
	}
}

// callConcurrently makes concurrencyRounds calls of method from each of
// size goroutines, each expecting its payload echoed with 200, and
// returns once all are answered.
func (s *suite) callConcurrently(method string, size int) {
	var callers sync.WaitGroup
	for c := range size {
		callers.Go(func() { // owned by callConcurrently: ends after its calls, joined below
			for round := range concurrencyRounds {
				n := round*size + c
				ctx, cancel := s.bounded()
				status, body, err := s.h.Invoke(ctx, method, payload(n))
				cancel()
				if err != nil || status != 200 || !sameJSON(payload(n), body) {
					s.t.Errorf("call %d = %d %s, %v; want 200 %s", n, status, body, err, payload(n))
				}
			}
		})
	}
	callers.Wait()
}

// manyReceivers is how many goroutines wait in Receive at once in
// testManyReceivers.
const manyReceivers = 4

// testManyReceivers: several goroutines wait in Receive at once, as a
// client's handler goroutines do; each request goes to exactly one of
// them, none waits while a request is queued, and once the hub drops the
// connection every one of them returns.
func testManyReceivers(s *suite) {
	t := s.t
	conn := s.dial()
	var mu sync.Mutex
	seen := map[string]int{}
	var receivers sync.WaitGroup
	ends := make(chan error, manyReceivers)
	for range manyReceivers {
		receivers.Go(func() { // owned by the subtest: ends when Receive fails after the drop, joined below
			for {
				req, err := conn.Receive(t.Context())
				if err != nil {
					ends <- err
					return
				}
				mu.Lock()
				seen[req.RequestID]++
				mu.Unlock()
				ctx, cancel := s.bounded()
				if err := conn.Respond(ctx, req, 200, req.Payload); err != nil {
					t.Errorf("Respond: %v", err)
				}
				cancel()
			}
		})
	}
	size := s.h.QueueSize
	s.callConcurrently("many-receivers", size)
	if !s.h.Drop() {
		t.Fatal("Drop found no connection to drop")
	}
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for range manyReceivers {
		select {
		case err := <-ends:
			if !errors.Is(err, transport.ErrConnLost) {
				t.Errorf("Receive after the drop = %v, want transport.ErrConnLost", err)
			}
		case <-timeout.C:
			conn.Close() // let the rest return, so that the subtest can end
			t.Fatalf("goroutines still in Receive %v after the connection was dropped", waitTimeout)
		}
	}
	receivers.Wait()
	mu.Lock()
	defer mu.Unlock()
	if got, want := len(seen), size*concurrencyRounds; got != want {
		t.Errorf("%d distinct requests received, want %d", got, want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("request %s received %d times", id, n)
		}
	}
}
