package amqp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rawClient is a hand-driven AMQP peer over TLS, for protocol violations
// go-amqp will not commit.
type rawClient struct {
	t  *testing.T
	c  *tls.Conn
	fr *FrameReader
}

func (ts *testServer) rawDial(t *testing.T) *rawClient {
	t.Helper()
	d := tls.Dialer{Config: ts.clientTLS}
	nc, err := d.DialContext(timeout(t), "tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := nc.(*tls.Conn)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, c: c, fr: NewFrameReader(c, 1<<20)}
}

func (r *rawClient) write(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawClient) writeFrame(f Frame) {
	r.t.Helper()
	b, err := AppendFrame(nil, f)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

func (r *rawClient) readHeader() [8]byte {
	r.t.Helper()
	var h [8]byte
	if _, err := io.ReadFull(r.c, h[:]); err != nil {
		r.t.Fatalf("read header: %v", err)
	}
	return h
}

func (r *rawClient) readFrame() Frame {
	r.t.Helper()
	f, err := r.fr.ReadFrame()
	if err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	return f
}

// open runs the plain AMQP header and open exchange.
func (r *rawClient) open(idle time.Duration) {
	r.t.Helper()
	h := ProtocolHeader(ProtocolAMQP)
	r.write(h[:])
	if got := r.readHeader(); got != h {
		r.t.Fatalf("header = %q", got)
	}
	r.writeFrame(Frame{Body: &Open{ContainerID: "raw", IdleTimeout: idle}})
	if _, ok := r.readFrame().Body.(*Open); !ok {
		r.t.Fatal("no open from server")
	}
}

// expectClose reads frames until a close and returns its error.
func (r *rawClient) expectClose() *Error {
	r.t.Helper()
	for {
		f := r.readFrame()
		if c, ok := f.Body.(*Close); ok {
			return c.Error
		}
	}
}

// expectEOF checks that the server hung up.
func (r *rawClient) expectEOF() {
	r.t.Helper()
	_, err := io.Copy(io.Discard, r.c)
	if err != nil && !errors.Is(err, io.EOF) {
		r.t.Fatalf("after close: %v", err)
	}
}

func noLinks() LinkHandler { return LinkHandlerFunc(func(ctx context.Context, l *Link) {}) }

func TestRawProtocolErrors(t *testing.T) {
	tests := []struct {
		name string
		send func(r *rawClient)
		want Symbol
	}{
		{"undecodable performative", func(r *rawClient) {
			r.write([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xc0}) // list8 cut short
		}, ErrCondDecodeError},
		{"unknown descriptor", func(r *rawClient) {
			r.write([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x99, 0x45})
		}, ErrCondDecodeError},
		{"frame on a channel without session", func(r *rawClient) {
			r.writeFrame(Frame{Channel: 7, Body: &Attach{Name: "x", Handle: 0}})
		}, ErrCondFramingError},
		{"frame larger than max-frame-size", func(r *rawClient) {
			r.write([]byte{0, 1, 0, 0, 2, 0, 0, 0})
		}, ErrCondFramingError},
		{"frame size below header", func(r *rawClient) {
			r.write([]byte{0, 0, 0, 4, 2, 0, 0, 0})
		}, ErrCondFramingError},
		{"bad data offset", func(r *rawClient) {
			r.write([]byte{0, 0, 0, 8, 1, 0, 0, 0})
		}, ErrCondFramingError},
		{"second open", func(r *rawClient) {
			r.writeFrame(Frame{Body: &Open{ContainerID: "again"}})
		}, ErrCondIllegalState},
		{"sasl frame after open", func(r *rawClient) {
			r.writeFrame(Frame{Type: FrameTypeSASL, Body: &SASLInit{Mechanism: SASLAnonymous}})
		}, ErrCondFramingError},
	}
	ts := startServer(t, noLinks(), &ConnOptions{MaxFrameSize: 4096})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.rawDial(t)
			r.open(0)
			tt.send(r)
			got := r.expectClose()
			if got == nil || got.Condition != tt.want {
				t.Fatalf("close error = %v, want %s", got, tt.want)
			}
			r.expectEOF()
		})
	}
}

func TestRawBadHeaders(t *testing.T) {
	tests := []struct {
		name   string
		header string
		reply  [8]byte
	}{
		{"garbage", "GARBAGE!", ProtocolHeader(ProtocolAMQP)},
		{"tls refused", "AMQP\x02\x01\x00\x00", ProtocolHeader(ProtocolSASL)},
		{"wrong version", "AMQP\x00\x02\x00\x00", ProtocolHeader(ProtocolAMQP)},
	}
	ts := startServer(t, noLinks(), nil)
	// A healthy connection lives through the bad ones.
	healthy := ts.dial(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.rawDial(t)
			r.write([]byte(tt.header))
			if got := r.readHeader(); got != tt.reply {
				t.Errorf("reply header = %q, want %q", got, tt.reply)
			}
			r.expectEOF()
		})
	}
	if _, err := healthy.NewSession(timeout(t), nil); err != nil {
		t.Fatalf("healthy connection broken: %v", err)
	}
}

func TestRawFirstFrameNotOpen(t *testing.T) {
	ts := startServer(t, noLinks(), nil)
	r := ts.rawDial(t)
	h := ProtocolHeader(ProtocolAMQP)
	r.write(h[:])
	r.readHeader()
	r.writeFrame(Frame{Body: &Begin{IncomingWindow: 1, OutgoingWindow: 1}})
	if _, ok := r.readFrame().Body.(*Open); !ok {
		t.Fatal("want open before close")
	}
	if got := r.expectClose(); got == nil || got.Condition != ErrCondFramingError {
		t.Fatalf("close error = %v", got)
	}
}

func TestRawIdleTimeout(t *testing.T) {
	ts := startServer(t, noLinks(), &ConnOptions{IdleTimeout: 100 * time.Millisecond})
	r := ts.rawDial(t)
	r.open(0)
	start := time.Now()
	got := r.expectClose() // the raw client stays silent
	if got == nil || got.Condition != ErrCondResourceLimitExceeded {
		t.Fatalf("close error = %v, want resource-limit-exceeded", got)
	}
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Errorf("closed after %v, before twice the advertised idle time-out", elapsed)
	}
	r.expectEOF()
}

func TestRawHeartbeatsKeepAlive(t *testing.T) {
	ts := startServer(t, noLinks(), &ConnOptions{IdleTimeout: 200 * time.Millisecond})
	r := ts.rawDial(t)
	r.open(100 * time.Millisecond) // we ask the server for frames every 100 ms
	deadline := time.Now().Add(time.Second)
	heartbeats := 0
	for time.Now().Before(deadline) {
		r.writeFrame(Frame{}) // our heartbeat keeps the server's timer happy
		f := r.readFrame()
		if f.Body != nil {
			t.Fatalf("unexpected %T", f.Body)
		}
		heartbeats++
	}
	if heartbeats < 3 {
		t.Errorf("%d heartbeats in a second, want several", heartbeats)
	}
}

func TestRawHandshakeTimeout(t *testing.T) {
	ts := startServer(t, noLinks(), &ConnOptions{HandshakeTimeout: 100 * time.Millisecond})
	r := ts.rawDial(t)
	r.expectEOF() // silent from the start
	select {
	case err := <-ts.served:
		if err == nil {
			t.Error("Serve = nil after a handshake time-out")
		}
	case <-timeout(t).Done():
		t.Fatal("Serve did not return")
	}
}

func TestRawSASLUnknownMechanism(t *testing.T) {
	ts := startServer(t, noLinks(), nil)
	r := ts.rawDial(t)
	h := ProtocolHeader(ProtocolSASL)
	r.write(h[:])
	if got := r.readHeader(); got != h {
		t.Fatalf("header %q", got)
	}
	mechs, ok := r.readFrame().Body.(*SASLMechanisms)
	if !ok {
		t.Fatal("no sasl-mechanisms")
	}
	if diff := cmp.Diff([]Symbol{SASLAnonymous, SASLMSSBCBS, SASLPlain}, mechs.Mechanisms); diff != "" {
		t.Errorf("mechanisms (-want +got):\n%s", diff)
	}
	r.writeFrame(Frame{Type: FrameTypeSASL, Body: &SASLInit{Mechanism: "EXTERNAL"}})
	out, ok := r.readFrame().Body.(*SASLOutcome)
	if !ok || out.Code != SASLCodeAuth {
		t.Fatalf("outcome = %#v, want auth failure", out)
	}
	r.expectEOF()
}

func TestRawMSSBCBSThenLinkCredit(t *testing.T) {
	attached := make(chan *Link, 1)
	ts := startServer(t, LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if l.Accept(ctx) == nil {
			attached <- l
			<-ctx.Done()
		}
	}), &ConnOptions{LinkCredit: 2})
	r := ts.rawDial(t)
	h := ProtocolHeader(ProtocolSASL)
	r.write(h[:])
	r.readHeader()
	r.readFrame()
	r.writeFrame(Frame{Type: FrameTypeSASL, Body: &SASLInit{Mechanism: SASLMSSBCBS}})
	if out := r.readFrame().Body.(*SASLOutcome); out.Code != SASLCodeOK {
		t.Fatalf("outcome %v", out.Code)
	}
	r.open(0)
	r.writeFrame(Frame{Body: &Begin{IncomingWindow: 100, OutgoingWindow: 100}})
	if _, ok := r.readFrame().Body.(*Begin); !ok {
		t.Fatal("no begin")
	}
	r.writeFrame(Frame{Body: &Attach{Name: "s", Handle: 3, Role: RoleSender, Target: &Target{Address: "t"}}})
	a, ok := r.readFrame().Body.(*Attach)
	if !ok || a.Role != RoleReceiver || a.Handle != 3 || a.Target == nil {
		t.Fatalf("attach answer %#v", a)
	}
	flow, ok := r.readFrame().Body.(*Flow)
	if !ok || flow.LinkCredit == nil || *flow.LinkCredit != 2 {
		t.Fatalf("flow %#v, want credit 2", flow)
	}
	<-attached
	// Three transfers against a credit of two: the third breaks the rule.
	for i := range uint32(3) {
		id := i
		payload, _ := MarshalMessage(&Message{Value: "v"})
		r.writeFrame(Frame{Body: &Transfer{Handle: 3, DeliveryID: &id, DeliveryTag: []byte{byte(i)}, Settled: true, Payload: payload}})
	}
	for {
		f := r.readFrame()
		if d, ok := f.Body.(*Detach); ok {
			if d.Error == nil || d.Error.Condition != ErrCondTransferLimitExceeded {
				t.Fatalf("detach error %v, want transfer-limit-exceeded", d.Error)
			}
			break
		}
	}
}

func TestCloseBeforeServe(t *testing.T) {
	a, b := netPipe()
	defer b.Close()
	c := NewConn(a, noLinks(), nil)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Serve(t.Context()); !errors.Is(err, ErrConnClosed) {
		t.Errorf("Serve after Close = %v", err)
	}
}

func TestServeContextCancel(t *testing.T) {
	a, b := netPipe()
	c := NewConn(a, noLinks(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { done <- c.Serve(ctx) }) // owned by the test; stopped by cancel; joined below
	wg.Go(func() {                         // owned by the test; stopped by closing b; joined below
		h := ProtocolHeader(ProtocolAMQP)
		_, _ = b.Write(h[:])
		openFrame, _ := AppendFrame(nil, Frame{Body: &Open{ContainerID: "p"}})
		_, _ = b.Write(openFrame)
		_, _ = io.Copy(io.Discard, b)
	})
	defer wg.Wait()
	defer b.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, ErrConnClosed) {
			t.Errorf("Serve = %v", err)
		}
	case <-timeout(t).Done():
		t.Fatal("Serve ignored ctx")
	}
	_ = c.Close()
}

func TestFrameReaderRejectsLargeFrameBeforeReading(t *testing.T) {
	var buf bytes.Buffer
	buf.Write([]byte{0x7f, 0xff, 0xff, 0xff, 2, 0, 0, 0})
	fr := NewFrameReader(&buf, 1024)
	allocs := testing.AllocsPerRun(10, func() {
		_, err := NewFrameReader(bytes.NewReader([]byte{0x7f, 0xff, 0xff, 0xff, 2, 0, 0, 0}), 1024).ReadFrame()
		if !errors.Is(err, ErrFraming) {
			t.Fatalf("err = %v", err)
		}
	})
	if allocs > 10 {
		t.Errorf("%v allocations for a refused frame", allocs)
	}
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrFraming) {
		t.Errorf("err = %v", err)
	}
}

// attachSender opens a session and attaches a link the raw client sends
// on, returning the credit the server granted.
func (r *rawClient) attachSender(handle uint32) uint32 {
	r.t.Helper()
	r.writeFrame(Frame{Body: &Begin{IncomingWindow: 100, OutgoingWindow: 100}})
	if _, ok := r.readFrame().Body.(*Begin); !ok {
		r.t.Fatal("no begin")
	}
	r.writeFrame(Frame{Body: &Attach{Name: "s", Handle: handle, Role: RoleSender, Target: &Target{Address: "t"}}})
	if _, ok := r.readFrame().Body.(*Attach); !ok {
		r.t.Fatal("no attach")
	}
	flow, ok := r.readFrame().Body.(*Flow)
	if !ok || flow.LinkCredit == nil {
		r.t.Fatal("no flow")
	}
	return *flow.LinkCredit
}

// next returns the next frame whose body is of type T, skipping others.
func next[T Body](r *rawClient) T {
	r.t.Helper()
	for {
		if b, ok := r.readFrame().Body.(T); ok {
			return b
		}
	}
}

func acceptAll(received chan<- *Delivery) LinkHandler {
	return LinkHandlerFunc(func(ctx context.Context, l *Link) {
		if l.Accept(ctx) != nil {
			return
		}
		for {
			d, err := l.Receive(ctx)
			if err != nil {
				return
			}
			received <- d
		}
	})
}

func TestRawSessionErrors(t *testing.T) {
	tests := []struct {
		name string
		send func(r *rawClient)
		want Symbol
	}{
		{"flow on unattached handle", func(r *rawClient) {
			r.writeFrame(Frame{Body: &Flow{IncomingWindow: 1, OutgoingWindow: 1, Handle: ptr(uint32(9)), LinkCredit: ptr(uint32(1))}})
		}, ErrCondUnattachedHandle},
		{"handle in use", func(r *rawClient) {
			r.writeFrame(Frame{Body: &Attach{Name: "again", Handle: 0, Role: RoleSender}})
		}, ErrCondHandleInUse},
		{"handle above handle-max", func(r *rawClient) {
			r.writeFrame(Frame{Body: &Attach{Name: "big", Handle: 1 << 20, Role: RoleSender}})
		}, ErrCondResourceLimitExceeded},
	}
	ts := startServer(t, acceptAll(make(chan *Delivery, 1)), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.rawDial(t)
			r.open(0)
			r.attachSender(0)
			tt.send(r)
			end := next[*End](r)
			if end.Error == nil || end.Error.Condition != tt.want {
				t.Fatalf("end error = %v, want %s", end.Error, tt.want)
			}
			// The connection survives: a new session begins.
			r.writeFrame(Frame{Body: &End{}})
			r.writeFrame(Frame{Channel: 1, Body: &Begin{IncomingWindow: 1, OutgoingWindow: 1}})
			if b := next[*Begin](r); b.RemoteChannel == nil || *b.RemoteChannel != 1 {
				t.Fatalf("begin answer %#v", b)
			}
		})
	}
}

func TestRawTransfers(t *testing.T) {
	received := make(chan *Delivery, 4)
	ts := startServer(t, acceptAll(received), &ConnOptions{MaxMessageSize: 100})
	msg, err := MarshalMessage(&Message{Data: [][]byte{[]byte("0123456789")}})
	if err != nil {
		t.Fatal(err)
	}
	r := ts.rawDial(t)
	r.open(0)
	r.attachSender(0)

	// A message split over three transfers is reassembled.
	id := uint32(0)
	r.writeFrame(Frame{Body: &Transfer{Handle: 0, DeliveryID: &id, DeliveryTag: []byte{0}, More: true, Payload: msg[:3]}})
	r.writeFrame(Frame{Body: &Transfer{Handle: 0, More: true, Payload: msg[3:6]}})
	r.writeFrame(Frame{Body: &Transfer{Handle: 0, Payload: msg[6:]}})
	d := <-received
	if diff := cmpMessage(&Message{Data: [][]byte{[]byte("0123456789")}}, d.Message); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := d.Accept(timeout(t)); err != nil {
		t.Fatal(err)
	}
	disp := next[*Disposition](r)
	if diff := cmpAny(&Disposition{Role: RoleReceiver, First: 0, Settled: true, State: &Accepted{}}, disp); diff != "" {
		t.Errorf("disposition (-want +got):\n%s", diff)
	}

	// An aborted delivery is dropped.
	id = 1
	r.writeFrame(Frame{Body: &Transfer{Handle: 0, DeliveryID: &id, DeliveryTag: []byte{1}, More: true, Payload: msg[:3]}})
	r.writeFrame(Frame{Body: &Transfer{Handle: 0, Aborted: true}})

	// An undecodable unsettled message is rejected with decode-error.
	id = 2
	r.writeFrame(Frame{Body: &Transfer{Handle: 0, DeliveryID: &id, DeliveryTag: []byte{2}, Payload: []byte{0x00, 0x53}}})
	disp = next[*Disposition](r)
	if rej, ok := disp.State.(*Rejected); !ok || disp.First != 2 || rej.Error.Condition != ErrCondDecodeError {
		t.Errorf("disposition %#v, want rejected decode-error for delivery 2", disp)
	}

	// A message above MaxMessageSize detaches the link.
	id = 3
	big := make([]byte, 60)
	r.writeFrame(Frame{Body: &Transfer{Handle: 0, DeliveryID: &id, DeliveryTag: []byte{3}, More: true, Payload: big}})
	r.writeFrame(Frame{Body: &Transfer{Handle: 0, Payload: big}})
	det := next[*Detach](r)
	if det.Error == nil || det.Error.Condition != ErrCondMessageSizeExceeded {
		t.Fatalf("detach %v, want message-size-exceeded", det.Error)
	}
	select {
	case d := <-received:
		t.Errorf("unexpected delivery %d", d.ID)
	default:
	}
}

func TestRawBadOpen(t *testing.T) {
	ts := startServer(t, noLinks(), nil)
	r := ts.rawDial(t)
	h := ProtocolHeader(ProtocolAMQP)
	r.write(h[:])
	r.readHeader()
	r.write([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0x45}) // open without container-id
	if _, ok := r.readFrame().Body.(*Open); !ok {
		t.Fatal("want open before close")
	}
	if got := r.expectClose(); got == nil || got.Condition != ErrCondDecodeError {
		t.Fatalf("close error = %v, want decode-error", got)
	}
}
