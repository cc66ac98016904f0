package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttsession"
	"github.com/directmethods/iotdevice/transport"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"
)

// The scenarios of a hub that breaks the rules: acknowledgements that are
// stray, mistyped, late or missing, redeliveries, messages nobody asked
// for, slow and stalled readers. Each runs against the scripted hub of
// hub_test.go.

// lostAnswers records what Config.AnswerLost is told.
type lostAnswers struct {
	mu   sync.Mutex
	ids  []string
	errs []error
}

func (l *lostAnswers) record(req *transport.MethodRequest, _ int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = append(l.ids, req.RequestID)
	l.errs = append(l.errs, err)
}

func (l *lostAnswers) get() ([]string, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids...), append([]error(nil), l.errs...)
}

// dialScripted connects a device to a hub playing script, recording lost
// answers, and returns both ends.
func dialScripted(t *testing.T, script hubScript, opts *Options, tweak ...func(*transport.Config)) (*conn, *session, *lostAnswers) {
	t.Helper()
	h := startHub(t, script)
	lost := &lostAnswers{}
	cfg := testConfig(t, h.port(), newCountingCredential(t))
	cfg.AnswerLost = lost.record
	for _, f := range tweak {
		f(cfg)
	}
	c, err := NewDialer(opts).Dial(dialCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*conn), receive(t, h.sessions, "session"), lost
}

// wantRequests receives len(want) requests and compares their ids.
func wantRequests(t *testing.T, c transport.Conn, want ...string) {
	t.Helper()
	var got []string
	for range want {
		req, err := c.Receive(dialCtx(t))
		if err != nil {
			t.Fatalf("Receive after %v: %v", got, err)
		}
		got = append(got, req.RequestID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// answer responds to request id rid and returns the PUBLISH the hub got.
func answer(t *testing.T, c transport.Conn, s *session, rid string) *packets.PublishPacket {
	t.Helper()
	if err := c.Respond(dialCtx(t), &transport.MethodRequest{Name: "m", RequestID: rid}, 200, []byte(`{}`)); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	p := receive(t, s.publishes, "the answer")
	if !strings.HasSuffix(p.TopicName, "$rid="+rid) {
		t.Fatalf("the hub got %q, want the answer to %s", p.TopicName, rid)
	}
	return p
}

// TestStrayAcknowledgementsAreIgnored: acknowledgements for identifiers
// the device never used, and a second PUBACK for an answer, change
// nothing: requests keep flowing, none is answered 503, no answer is
// counted lost, and Quiesce still works afterwards.
func TestStrayAcknowledgementsAreIgnored(t *testing.T) {
	c, s, lost := dialScripted(t, hubScript{}, nil)
	p := answer(t, c, s, "first")         // the hub acknowledges it
	s.ack(t, packets.Puback, p.MessageID) // a duplicate
	s.ack(t, packets.Puback, 777)
	s.ack(t, packets.Suback, 778)
	s.ack(t, packets.Unsuback, 779)
	s.request(t, "$iothub/methods/POST/m/?$rid=1", nil)
	s.request(t, "$iothub/methods/POST/m/?$rid=2", nil)
	wantRequests(t, c, "1", "2")
	answer(t, c, s, "1")
	if err := c.Quiesce(dialCtx(t)); err != nil {
		t.Fatalf("Quiesce after stray acknowledgements: %v", err)
	}
	c.Close()
	if ids, _ := lost.get(); len(ids) != 0 {
		t.Errorf("answers counted lost: %v", ids)
	}
}

// TestLateUnsubackChangesNothing: an UNSUBACK that comes after Quiesce
// gave up does not end the stream of requests.
func TestLateUnsubackChangesNothing(t *testing.T) {
	unsubscribed := make(chan uint16, 1)
	c, s, _ := dialScripted(t, hubScript{onPacket: func(_ *session, p packets.ControlPacket) bool {
		if u, ok := p.(*packets.UnsubscribePacket); ok {
			unsubscribed <- u.MessageID // and no UNSUBACK, for now
			return true
		}
		return false
	}}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := c.Quiesce(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Quiesce without UNSUBACK = %v, want context.DeadlineExceeded", err)
	}
	s.ack(t, packets.Unsuback, receive(t, unsubscribed, "UNSUBSCRIBE"))
	s.request(t, "$iothub/methods/POST/m/?$rid=after", nil)
	wantRequests(t, c, "after")
	answer(t, c, s, "after")
}

// TestAcknowledgementsAreCheckedByType: a SUBACK or UNSUBACK carrying an
// answer's packet identifier is not its PUBACK: the answer still awaits
// its acknowledgement, and is counted lost when the connection closes
// without it.
func TestAcknowledgementsAreCheckedByType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind     byte
		wantLost []string
	}{
		{packets.Puback, nil},
		{packets.Suback, []string{"a"}},
		{packets.Unsuback, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(packets.PacketNames[tt.kind], func(t *testing.T) {
			c, s, lost := dialScripted(t, hubScript{noPuback: true}, nil)
			p := answer(t, c, s, "a")
			s.ack(t, tt.kind, p.MessageID)
			// The next request is read after the acknowledgement.
			s.request(t, "$iothub/methods/POST/m/?$rid=next", nil)
			wantRequests(t, c, "next")
			c.Close()
			ids, errs := lost.get()
			if diff := cmp.Diff(tt.wantLost, ids); diff != "" {
				t.Errorf("answers counted lost (-want +got):\n%s", diff)
			}
			for _, err := range errs {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("lost because %v, want net.ErrClosed: the device closed the connection", err)
				}
			}
		})
	}
}

// TestMissingPubacksDoNotHoldAnswers: against a hub that never
// acknowledges, every Respond returns once its answer is written, the
// connection stays up while its pings are answered, and the answers
// awaiting a PUBACK are bounded: beyond mqttsession.MaxUnacknowledged the oldest are
// given up, the rest when the connection closes, each reported once.
func TestMissingPubacksDoNotHoldAnswers(t *testing.T) {
	t.Parallel()
	const answers = mqttsession.MaxUnacknowledged + 200
	c, s, lost := dialScripted(t, hubScript{noPuback: true}, nil, func(cfg *transport.Config) { cfg.KeepAlive = time.Second })
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { // owned by the test: drains the hub's copies of the answers, joined above
		for range answers {
			<-s.publishes
		}
	})
	for i := range answers {
		if err := c.Respond(dialCtx(t), &transport.MethodRequest{Name: "m", RequestID: fmt.Sprint(i)}, 200, []byte(`{}`)); err != nil {
			t.Fatalf("Respond %d: %v", i, err)
		}
	}
	ids, errs := lost.get()
	if len(ids) != answers-mqttsession.MaxUnacknowledged {
		t.Fatalf("%d answers given up while the connection lives, want %d", len(ids), answers-mqttsession.MaxUnacknowledged)
	}
	for i, id := range ids {
		if id != fmt.Sprint(i) {
			t.Fatalf("answer %s given up as the %dth, want the oldest first", id, i)
		}
		if !errors.Is(errs[i], mqttsession.ErrTooManyUnacknowledged) {
			t.Fatalf("given up because %v", errs[i])
		}
	}
	// Pings keep the connection alive meanwhile.
	receive(t, s.pings, "PINGREQ")
	s.request(t, "$iothub/methods/POST/m/?$rid=still-up", nil)
	wantRequests(t, c, "still-up")
	c.Close()
	if ids, _ := lost.get(); len(ids) != answers {
		t.Errorf("%d answers counted lost in all, want each of the %d once", len(ids), answers)
	}
}

// TestRedeliveredRequestRunsOnce: a QoS 1 request delivered again with the
// DUP flag is acknowledged each time and received once.
func TestRedeliveredRequestRunsOnce(t *testing.T) {
	c, s, _ := dialScripted(t, hubScript{}, nil)
	for i := range 3 {
		s.publish(t, "$iothub/methods/POST/m/?$rid=r1", 1, 5, i > 0, []byte(`{}`))
	}
	var acked []uint16
	for range 3 {
		acked = append(acked, receive(t, s.pubacks, "PUBACK"))
	}
	if diff := cmp.Diff([]uint16{5, 5, 5}, acked); diff != "" {
		t.Errorf("PUBACKs (-want +got):\n%s", diff)
	}
	barrier(t, s)
	wantRequests(t, c, "r1", "barrier")
}

// TestUnrequestedMessagesAreNotAcknowledged: a QoS 1 message on a topic
// the device did not subscribe to (a cloud-to-device message that an
// earlier client's session asked for) is neither delivered nor
// acknowledged, so the hub keeps it; the connection goes on.
func TestUnrequestedMessagesAreNotAcknowledged(t *testing.T) {
	c, s, _ := dialScripted(t, hubScript{}, nil)
	s.publish(t, "devices/device-1/messages/devicebound/%24.mid=1", 1, 11, false, []byte("hello"))
	s.publish(t, "$iothub/methods/POST/m/?$rid=r2", 1, 12, false, nil)
	wantRequests(t, c, "r2")
	if id := receive(t, s.pubacks, "PUBACK"); id != 12 {
		t.Errorf("first PUBACK is for packet %d, want 12: the unrequested message was acknowledged", id)
	}
}

// TestQueueBoundedByBytes: requests beyond QueueBytes of payload are
// answered 503 at once, however few they are.
func TestQueueBoundedByBytes(t *testing.T) {
	c, s, _ := dialScripted(t, hubScript{}, &Options{QueueBytes: 100 << 10})
	payload := []byte(`"` + strings.Repeat("x", 40<<10) + `"`)
	for i := range 3 {
		s.request(t, fmt.Sprintf("$iothub/methods/POST/m/?$rid=%d", i), payload)
	}
	busy := receive(t, s.publishes, "the 503 answer")
	if busy.TopicName != "$iothub/methods/res/503/?$rid=2" {
		t.Errorf("the hub got %q, want a 503 for request 2", busy.TopicName)
	}
	wantRequests(t, c, "0", "1")
}

// TestDialWithoutDeadlineIsBounded: a Dial whose context has no deadline
// still gives up on a SUBACK that never comes.
func TestDialWithoutDeadlineIsBounded(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	h := startHub(t, hubScript{subackGate: gate})
	d := NewDialer(nil)
	d.connectTimeout = 200 * time.Millisecond
	start := time.Now()
	c, err := d.Dial(context.Background(), testConfig(t, h.port(), newCountingCredential(t)))
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded without a SUBACK")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > waitTimeout {
		t.Errorf("Dial took %v", took)
	}
}

// smallSendBuffer is MQTT over TLS from a socket with a 16 KB send buffer,
// as a small device on a slow path has, so that on loopback too writes
// wait for a slow reader instead of filling megabytes of kernel buffers.
var smallSendBuffer = &transport.Network{Name: "tls-small", Dial: func(ctx context.Context, address string, tlsConfig *tls.Config, _ *transport.Config) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	if err := nc.(*net.TCPConn).SetWriteBuffer(16 << 10); err != nil {
		nc.Close()
		return nil, err
	}
	tc := tls.Client(nc, tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}}

// TestSlowLinkCarriesLargeAnswers: every chunk of a write gets the ping
// timeout, not the whole queue: six 48 KB answers sent together over a
// 64 KB/s link with small buffers, with a 2 s ping timeout, all arrive,
// though the last waits for the link longer than that, and the connection
// stays up.
func TestSlowLinkCarriesLargeAnswers(t *testing.T) {
	t.Parallel()
	const answers, rate = 6, 64 << 10
	c, s, lost := dialScripted(t, hubScript{readRate: rate}, &Options{PingTimeout: 2 * time.Second, Network: smallSendBuffer})
	payload := []byte(`"` + strings.Repeat("x", 48<<10-2) + `"`)
	type result struct {
		err  error
		took time.Duration
	}
	results := make(chan result, answers)
	start := time.Now()
	for i := range answers {
		go func() { // owned by the test: ends when Respond returns; collected below
			err := c.Respond(t.Context(), &transport.MethodRequest{Name: "m", RequestID: fmt.Sprint(i)}, 200, payload)
			results <- result{err, time.Since(start)}
		}()
	}
	var slowest time.Duration
	for range answers {
		r := receive(t, results, "Respond")
		if r.err != nil {
			t.Errorf("Respond over a slow link: %v", r.err)
		}
		slowest = max(slowest, r.took)
	}
	// The buffers hold about 100 KB of the 288 KB: the last answer cannot
	// be written before the link has carried most of the rest.
	if slowest < 2*time.Second {
		t.Errorf("the last answer was written after %v: the writes never waited for the link", slowest)
	}
	got := map[string]bool{}
	for range answers {
		p := receive(t, s.publishes, "an answer")
		got[p.TopicName[strings.LastIndex(p.TopicName, "=")+1:]] = len(p.Payload) == len(payload)
	}
	want := map[string]bool{"0": true, "1": true, "2": true, "3": true, "4": true, "5": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers the hub got whole (-want +got):\n%s", diff)
	}
	if err := c.inbox.Err(); err != nil {
		t.Errorf("connection ended: %v", err)
	}
	c.Close()
	if ids, _ := lost.get(); len(ids) != 0 {
		t.Errorf("answers counted lost: %v", ids)
	}
	t.Logf("figure: slow-link answers=%d answer_bytes=%d rate_Bps=%d last_written_after=%v", answers, len(payload), rate, slowest.Round(time.Millisecond))
}

// TestUnreadAnswersEndTheConnection: answers that the kernel's buffers
// absorb but the hub never reads cannot hide a dead link: the PINGREQ
// behind them gets no PINGRESP, or a write stops moving, and the
// connection is declared lost within the keep-alive and ping timeout.
func TestUnreadAnswersEndTheConnection(t *testing.T) {
	t.Parallel()
	c, _, _ := dialScripted(t, hubScript{readRate: 1 << 10}, &Options{PingTimeout: time.Second},
		func(cfg *transport.Config) { cfg.KeepAlive = time.Second })
	payload := []byte(`"` + strings.Repeat("x", 100<<10-2) + `"`)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range 3 {
		wg.Go(func() { // owned by the test: ends when Respond returns, joined above
			_ = c.Respond(t.Context(), &transport.MethodRequest{Name: "m", RequestID: fmt.Sprint(i)}, 200, payload)
		})
	}
	start := time.Now()
	_, err := receiveEnd(t, c)
	if !errors.Is(err, transport.ErrConnLost) {
		t.Fatalf("Receive = %v, want transport.ErrConnLost", err)
	}
	if !strings.Contains(err.Error(), "PINGRESP") && !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("Receive = %v, want a missing PINGRESP or a write time-out", err)
	}
	t.Logf("declared lost after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// TestResetDuringAnAnswer: a connection reset while an answer is being
// written ends the connection, and the answer is accounted for: either
// Respond fails with transport.ErrConnLost, or AnswerLost reports it.
func TestResetDuringAnAnswer(t *testing.T) {
	c, s, lost := dialScripted(t, hubScript{readRate: 16 << 10}, nil)
	payload := []byte(`"` + strings.Repeat("x", 128<<10-2) + `"`)
	respond := make(chan error, 1)
	go func() { // owned by the test; collected below
		respond <- c.Respond(t.Context(), &transport.MethodRequest{Name: "m", RequestID: "big"}, 200, payload)
	}()
	s.conn.Close() // while the hub reads the answer slowly
	_, err := receiveEnd(t, c)
	if !errors.Is(err, transport.ErrConnLost) {
		t.Errorf("Receive = %v, want transport.ErrConnLost", err)
	}
	rerr := receive(t, respond, "Respond")
	c.Close()
	ids, _ := lost.get()
	switch {
	case rerr != nil && !errors.Is(rerr, transport.ErrConnLost):
		t.Errorf("Respond = %v, want transport.ErrConnLost", rerr)
	case rerr == nil && !cmp.Equal(ids, []string{"big"}):
		t.Errorf("Respond succeeded and AnswerLost reported %v, want [big]", ids)
	case rerr != nil && len(ids) != 0:
		t.Errorf("Respond failed and AnswerLost reported %v too", ids)
	}
}
