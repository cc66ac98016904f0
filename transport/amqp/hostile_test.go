package amqp

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	iamqp "github.com/directmethods/iotdevice/internal/amqp"
	"github.com/directmethods/iotdevice/internal/errtest"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/google/go-cmp/cmp"
)

// The tests in this file play a hostile or broken hub: frames that
// go-amqp cannot take safely, links starved of credit or detached, and
// answers the hub does not accept.

func u32(n uint32) *uint32 { return &n }

// lostAnswer is one call of Config.AnswerLost.
type lostAnswer struct {
	req    *transport.MethodRequest
	status int
	err    error
}

// recordLost sets cfg.AnswerLost to record its calls. The channel's
// buffer exceeds the answers any test sends, so the callback never blocks.
func recordLost(cfg *transport.Config) <-chan lostAnswer {
	lost := make(chan lostAnswer, 64)
	cfg.AnswerLost = func(req *transport.MethodRequest, status int, err error) {
		lost <- lostAnswer{req, status, err}
	}
	return lost
}

// dialHub dials the hub h with cfg and returns the Conn, the hub's view
// of the connection and the link the hub sends requests on.
func dialHub(t *testing.T, h *fakeHub, cfg *transport.Config, opts *Options) (transport.Conn, *hubConn, *iamqp.Link) {
	t.Helper()
	c, err := NewDialer(opts).Dial(dialCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	hc := receive(t, h.conns, "connection")
	return c, hc, receive(t, hc.requestLink, "request link")
}

// dialHeldAnswers dials a fresh hub that leaves answers unsettled for the
// test to settle, with AnswerLost recorded.
func dialHeldAnswers(t *testing.T, opts *Options) (transport.Conn, *hubConn, *iamqp.Link, <-chan lostAnswer) {
	t.Helper()
	h := startHub(t, hubScript{holdDispositions: true})
	cfg := testConfig(t, h.port(), newCountingCredential(t))
	lost := recordLost(cfg)
	c, hc, link := dialHub(t, h, cfg, opts)
	return c, hc, link, lost
}

// rejectedFirst answers req, has the hub reject the answer, and checks
// that AnswerLost reports it before any other answer: since answers are
// awaited in the order they were sent, none sent before it was reported.
func rejectedFirst(t *testing.T, c transport.Conn, hc *hubConn, lost <-chan lostAnswer, req *transport.MethodRequest) {
	t.Helper()
	if err := c.Respond(dialCtx(t), req, 200, nil); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	if err := receive(t, hc.responses, "answer to reject").Reject(dialCtx(t), nil); err != nil {
		t.Fatalf("fake hub: reject: %v", err)
	}
	if got := receive(t, lost, "AnswerLost"); got.req != req {
		t.Errorf("AnswerLost reported %q (%v) first, want the rejected answer to %q", got.req.Name, got.err, req.Name)
	}
}

// closeReportsNothing closes c, which waits for the reports of AnswerLost,
// and checks that there are none left.
func closeReportsNothing(t *testing.T, c transport.Conn, lost <-chan lostAnswer) {
	t.Helper()
	c.Close()
	if len(lost) != 0 {
		got := <-lost
		t.Errorf("AnswerLost called unexpectedly for %q: %v", got.req.Name, got.err)
	}
}

// sendAsync sends m on the hub's request link without waiting for the
// client's outcome; the result arrives once the client settles the request
// or the link ends.
func sendAsync(t *testing.T, link *iamqp.Link, m *iamqp.Message) <-chan error {
	done := make(chan error, 1)
	go func() { // owned by the test; ends with the link at the latest, awaited by the caller
		_, err := link.Send(t.Context(), m)
		done <- err
	}()
	return done
}

// roundTrip checks that a request and its answer go through c.
func roundTrip(t *testing.T, c transport.Conn, hc *hubConn, link *iamqp.Link, id byte) {
	t.Helper()
	hc.sendRequest(t, link, request(iamqp.UUID{id}, "after", []byte("{}")))
	req := receiveRequest(t, c)
	if err := c.Respond(dialCtx(t), req, 200, []byte(`{}`)); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	receive(t, hc.responses, "answer")
}

// TestHostileMessages sends requests that go-amqp v1.7.0 cannot decode
// safely: annotations whose keys are not symbol or ulong (a list, binary or
// map key panics in its receiver goroutine, Azure/go-amqp#369, and kills
// the process) and maps whose keys go-amqp cannot hash. The process
// survives, the connection ends with an error saying why, and the next
// dial works.
func TestHostileMessages(t *testing.T) {
	id := iamqp.UUID{0x42}
	listKey := []any{"k"}
	mapKey := iamqp.Map{{Key: iamqp.Symbol("a"), Value: "b"}}
	tests := []struct {
		name string
		edit func(m *iamqp.Message)
	}{
		{"message-annotations with a list key", func(m *iamqp.Message) {
			m.MessageAnnotations = iamqp.Map{{Key: listKey, Value: "v"}}
		}},
		{"message-annotations with a binary key", func(m *iamqp.Message) {
			m.MessageAnnotations = iamqp.Map{{Key: []byte{1, 2}, Value: "v"}}
		}},
		{"message-annotations with a map key", func(m *iamqp.Message) {
			m.MessageAnnotations = iamqp.Map{{Key: mapKey, Value: "v"}}
		}},
		{"message-annotations with a string key", func(m *iamqp.Message) {
			m.MessageAnnotations = iamqp.Map{{Key: "x-opt-string", Value: "v"}}
		}},
		{"delivery-annotations with a list key", func(m *iamqp.Message) {
			m.DeliveryAnnotations = iamqp.Map{{Key: listKey, Value: "v"}}
		}},
		{"footer with a binary key", func(m *iamqp.Message) {
			m.Footer = iamqp.Map{{Key: []byte{3}, Value: "v"}}
		}},
		{"application property holding a map with a described list key", func(m *iamqp.Message) {
			m.ApplicationProperties["nested"] = iamqp.Map{{Key: iamqp.Described{Descriptor: uint64(0x1234), Value: listKey}, Value: "v"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHub(t, hubScript{})
			c, hc, link := dialHub(t, h, testConfig(t, h.port(), newCountingCredential(t)), nil)
			m := request(id, "hostile", []byte("{}"))
			tt.edit(m)
			sent := sendAsync(t, link, m)
			err := receiveError(t, c)
			errtest.WantOnly(t, err, transport.ErrConnLost)
			if !errors.Is(err, errRefused) {
				t.Errorf("Receive error %v does not say that the hub's input was refused", err)
			}
			if err := receive(t, sent, "the hub's send to end"); err == nil {
				t.Error("the hostile request was settled")
			}
			c.Close()

			c2, hc2, link2 := dialHub(t, h, testConfig(t, h.port(), newCountingCredential(t)), nil)
			roundTrip(t, c2, hc2, link2, 1)
			_ = hc
		})
	}
}

// frameHeader is the 8-byte header of an AMQP frame (type 0) or SASL frame
// (type 1) claiming size bytes.
func frameHeader(size uint32, frameType byte) []byte {
	h := binary.BigEndian.AppendUint32(nil, size)
	return append(h, 2, frameType, 0, 0)
}

// encodeFrame encodes f, failing the test on error.
func encodeFrame(t *testing.T, f iamqp.Frame) []byte {
	t.Helper()
	b, err := iamqp.AppendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// holdOpen reads and drops what the client sends until it closes the
// connection or the test ends.
func holdOpen(nc net.Conn) { _, _ = io.Copy(io.Discard, nc) }

// TestHostileFrameSizes sends frame headers claiming more than the client
// allows: 512 bytes until the hub's open (AMQP 1.0 section 2.4.1,
// MIN-MAX-FRAME-SIZE) and the max-frame-size of the client's open after
// it. go-amqp v1.7.0 buffers any frame up to 2 GiB; the client must refuse
// each at once, from its header, and name the size and the limit.
func TestHostileFrameSizes(t *testing.T) {
	const huge = 1<<31 - 1
	t.Run("before open", func(t *testing.T) {
		bigMechanisms := &iamqp.SASLMechanisms{Mechanisms: []iamqp.Symbol{iamqp.Symbol(make([]byte, 600)), iamqp.SASLAnonymous}}
		tests := []struct {
			name string
			x509 bool // no SASL: the AMQP header comes first
			play func(t *testing.T, nc net.Conn)
			want frameSizeError
		}{
			{"2 GiB SASL frame", false, func(t *testing.T, nc net.Conn) {
				nc.Write(append(protocolHeader(iamqp.ProtocolSASL), frameHeader(huge, iamqp.FrameTypeSASL)...))
			}, frameSizeError{Size: huge, Limit: 512, BeforeOpen: true}},
			{"SASL frame above 512 bytes", false, func(t *testing.T, nc net.Conn) {
				f := encodeFrame(t, iamqp.Frame{Type: iamqp.FrameTypeSASL, Body: bigMechanisms})
				nc.Write(append(protocolHeader(iamqp.ProtocolSASL), f...))
			}, frameSizeError{Size: uint32(len(encodeFrame(t, iamqp.Frame{Type: iamqp.FrameTypeSASL, Body: bigMechanisms}))), Limit: 512, BeforeOpen: true}},
			{"2 GiB frame instead of open", true, func(t *testing.T, nc net.Conn) {
				nc.Write(append(protocolHeader(iamqp.ProtocolAMQP), frameHeader(huge, iamqp.FrameTypeAMQP)...))
			}, frameSizeError{Size: huge, Limit: 512, BeforeOpen: true}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				port := startRawHub(t, func(ctx context.Context, nc net.Conn) {
					var header [8]byte
					if _, err := io.ReadFull(nc, header[:]); err != nil {
						return
					}
					tt.play(t, nc)
					holdOpen(nc)
				})
				cred := newCountingCredential(t)
				cfg := testConfig(t, port, cred)
				if tt.x509 {
					cfg = testConfig(t, port, x509Credential(t))
				}
				c, err := NewDialer(nil).Dial(dialCtx(t), cfg)
				if err == nil {
					c.Close()
					t.Fatal("Dial succeeded")
				}
				wantFrameSizeError(t, err, tt.want)
				errtest.WantOnly(t, err, transport.ErrConnLost)
			})
		}
	})
	t.Run("after open", func(t *testing.T) {
		big := encodeFrame(t, iamqp.Frame{Type: iamqp.FrameTypeAMQP, Body: &iamqp.Transfer{Handle: 0, Payload: make([]byte, maxFrameSize)}})
		tests := []struct {
			name  string
			bytes []byte
			want  frameSizeError
		}{
			{"2 GiB frame", frameHeader(huge, iamqp.FrameTypeAMQP), frameSizeError{Size: huge, Limit: maxFrameSize}},
			{"frame above the negotiated maximum", big, frameSizeError{Size: uint32(len(big)), Limit: maxFrameSize}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, hc, _ := dialed(t, nil)
				// The client may hang up before the whole frame is written,
				// which fails the write: Receive tells what happened.
				_ = hc.wire.inject(tt.bytes)
				err := receiveError(t, c)
				wantFrameSizeError(t, err, tt.want)
				errtest.WantOnly(t, err, transport.ErrConnLost)
			})
		}
	})
}

// wantFrameSizeError checks that err is the guard's refusal of a frame's
// size.
func wantFrameSizeError(t *testing.T, err error, want frameSizeError) {
	t.Helper()
	var got *frameSizeError
	if !errors.As(err, &got) {
		t.Fatalf("error %v is not a frame size error", err)
	}
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("frame size error (-want +got):\n%s", diff)
	}
}

// x509Credential is a certificate credential, with which the client uses
// no SASL.
func x509Credential(t *testing.T) sas.Credential {
	cred, err := sas.NewCertificateCredential(selfSignedClientCert(t))
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// protocolHeader is the 8-byte AMQP protocol header for id.
func protocolHeader(id iamqp.ProtocolID) []byte {
	h := iamqp.ProtocolHeader(id)
	return h[:]
}

// TestZeroCreditOnAnswerLink starves the link the client answers on. An
// answer waits for credit only until its context ends; it is then not sent
// at all, the Conn fails saying why, and credit granted later sends
// nothing: no answer goes out after its deadline.
func TestZeroCreditOnAnswerLink(t *testing.T) {
	tests := []struct {
		name     string
		credit   uint32
		requests int
	}{
		{"no credit", 0, 1},
		{"less credit than answers", 2, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, hc, link := dialedScript(t, hubScript{responseCredit: u32(tt.credit)}, nil)
			answers := receive(t, hc.responseLink, "response link")
			reqs := make([]*transport.MethodRequest, tt.requests)
			for i := range reqs {
				hc.sendRequest(t, link, request(iamqp.UUID{byte(i + 1)}, "m", []byte("{}")))
				reqs[i] = receiveRequest(t, c)
			}

			// The handlers' method timeout: nothing can arrive meanwhile,
			// so any value shows the bound.
			const deadline = 100 * time.Millisecond
			results := make(chan error, len(reqs))
			for _, req := range reqs {
				go func() { // owned by the test; ends with Respond, which its ctx bounds; awaited below
					ctx, cancel := context.WithTimeout(t.Context(), deadline)
					defer cancel()
					results <- c.Respond(ctx, req, 200, []byte("{}"))
				}()
			}
			var sent, expired int
			for range reqs {
				switch err := receive(t, results, "Respond"); {
				case err == nil:
					sent++
				case errors.Is(err, context.DeadlineExceeded):
					expired++
				default:
					t.Errorf("Respond = %v, want nil or context.DeadlineExceeded", err)
				}
			}
			if want := int(tt.credit); sent != want || expired != len(reqs)-want {
				t.Errorf("%d answers sent and %d expired, want %d and %d", sent, expired, want, len(reqs)-want)
			}
			err := receiveError(t, c)
			errtest.WantOnly(t, err, transport.ErrConnLost)
			if !errors.Is(err, errNoCredit) {
				t.Errorf("Receive error %v does not say that the hub granted no credit", err)
			}

			// Credit now would send any answer still waiting.
			if err := answers.Grant(dialCtx(t), 50); err != nil {
				t.Fatalf("fake hub: grant: %v", err)
			}
			start := time.Now()
			c.Close()
			if d := time.Since(start); d >= closeTimeout {
				t.Errorf("Close of a failed connection took %v, at least its graceful bound %v", d, closeTimeout)
			}
			receive(t, hc.served, "hub connection to end")
			if n := len(hc.responses); n != int(tt.credit) {
				t.Errorf("the hub received %d answers, want the %d sent with credit", n, tt.credit)
			}
		})
	}
}

// TestSenderDetachNoticed detaches the link the client answers on and then
// sends a request: the client must not accept it, since its answer could
// not go out, and the Conn fails at once.
func TestSenderDetachNoticed(t *testing.T) {
	c, hc, link := dialed(t, nil)
	answers := receive(t, hc.responseLink, "response link")
	if err := answers.Detach(dialCtx(t), &iamqp.Error{Condition: iamqp.ErrCondDetachForced, Description: "scripted"}); err != nil {
		t.Fatalf("fake hub: detach: %v", err)
	}
	state := hc.sendRequest(t, link, request(iamqp.UUID{8}, "after-detach", []byte("{}")))
	if _, ok := state.(*iamqp.Released); !ok {
		t.Errorf("outcome of a request sent after the answer link's detach = %#v, want released", state)
	}
	err := receiveError(t, c)
	errtest.WantOnly(t, err, transport.ErrConnLost)
	req := &transport.MethodRequest{Name: "after-detach", RequestID: iamqp.UUID{8}.String(), Handle: goamqp.UUID{8}}
	if err := c.Respond(dialCtx(t), req, 200, nil); !errors.Is(err, transport.ErrConnLost) {
		t.Errorf("Respond after the detach = %v, want transport.ErrConnLost", err)
	}
}

// TestAnswerOutcomes settles answers every way the hub can. Respond
// returns once the answer is written; AnswerLost then reports each answer
// the hub did not accept, with an error saying how, and none it accepted.
func TestAnswerOutcomes(t *testing.T) {
	tests := []struct {
		name   string
		settle func(ctx context.Context, hc *hubConn, d *iamqp.Delivery) error
		want   []error // nil: not reported
	}{
		{"accepted", func(ctx context.Context, _ *hubConn, d *iamqp.Delivery) error { return d.Accept(ctx) }, nil},
		{"rejected", func(ctx context.Context, _ *hubConn, d *iamqp.Delivery) error {
			return d.Reject(ctx, &iamqp.Error{Condition: iamqp.ErrCondInternalError, Description: "scripted"})
		}, []error{errAnswerRejected}},
		{"released", func(ctx context.Context, _ *hubConn, d *iamqp.Delivery) error { return d.Release(ctx) }, []error{errAnswerReleased}},
		{"modified", func(ctx context.Context, _ *hubConn, d *iamqp.Delivery) error {
			return d.Modify(ctx, &iamqp.Modified{DeliveryFailed: true})
		}, []error{errAnswerReleased}},
		{"connection ended before settlement", func(_ context.Context, hc *hubConn, _ *iamqp.Delivery) error {
			hc.conn.CloseWithError(&iamqp.Error{Condition: iamqp.ErrCondConnectionForced})
			return nil
		}, []error{transport.ErrConnLost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, hc, link, lost := dialHeldAnswers(t, nil)
			hc.sendRequest(t, link, request(iamqp.UUID{1}, "m", []byte("{}")))
			req := receiveRequest(t, c)
			if err := c.Respond(dialCtx(t), req, 201, []byte("{}")); err != nil {
				t.Fatalf("Respond = %v, want nil once the answer is written", err)
			}
			d := receive(t, hc.responses, "answer")
			if d.Settled {
				t.Fatal("the answer went pre-settled")
			}
			if err := tt.settle(dialCtx(t), hc, d); err != nil {
				t.Fatalf("fake hub: settle: %v", err)
			}
			if tt.want == nil {
				// Answers are awaited in order: a second, rejected answer is
				// reported first only if the accepted one is not reported.
				hc.sendRequest(t, link, request(iamqp.UUID{2}, "m", []byte("{}")))
				rejectedFirst(t, c, hc, lost, receiveRequest(t, c))
				return
			}
			got := receive(t, lost, "AnswerLost")
			if got.req != req || got.status != 201 {
				t.Errorf("AnswerLost(%q, %d), want the answer's request and status 201", got.req.RequestID, got.status)
			}
			for _, w := range tt.want {
				if !errors.Is(got.err, w) {
					t.Errorf("AnswerLost error %v does not wrap %v", got.err, w)
				}
			}
			var hubErr *goamqp.Error
			if errors.Is(got.err, errAnswerRejected) && (!errors.As(got.err, &hubErr) || hubErr.Condition != goamqp.ErrCondInternalError) {
				t.Errorf("AnswerLost error %v does not carry the hub's condition amqp:internal-error", got.err)
			}
			closeReportsNothing(t, c, lost)
		})
	}
}

// TestAnswersBeyondTheBound leaves more answers unsettled than the
// adapter tracks: Respond does not wait, and the oldest is given up and
// reported.
func TestAnswersBeyondTheBound(t *testing.T) {
	c, hc, link, lost := dialHeldAnswers(t, &Options{maxUnsettledAnswers: 2})
	var reqs []*transport.MethodRequest
	var deliveries []*iamqp.Delivery
	for i := range 3 {
		hc.sendRequest(t, link, request(iamqp.UUID{byte(i + 1)}, "m", []byte("{}")))
		req := receiveRequest(t, c)
		if err := c.Respond(dialCtx(t), req, 200, nil); err != nil {
			t.Fatalf("Respond %d: %v", i, err)
		}
		reqs = append(reqs, req)
		deliveries = append(deliveries, receive(t, hc.responses, "answer"))
	}
	got := receive(t, lost, "the oldest answer given up")
	if got.req != reqs[0] || !errors.Is(got.err, errAnswerUntracked) {
		t.Errorf("AnswerLost(%q, %v), want the oldest answer and errAnswerUntracked", got.req.RequestID, got.err)
	}
	for _, d := range deliveries {
		if err := d.Accept(dialCtx(t)); err != nil {
			t.Fatalf("fake hub: accept: %v", err)
		}
	}
	// Close detaches the links, which the hub answers after the
	// dispositions above: the accepted answers are settled by then.
	closeReportsNothing(t, c, lost)
}

// TestAnswerAtMostOnceTracksNothing: pre-settled answers have no outcome,
// so a connection that ends reports none of them.
func TestAnswerAtMostOnceTracksNothing(t *testing.T) {
	c, hc, link, lost := dialHeldAnswers(t, &Options{AnswerAtMostOnce: true})
	hc.sendRequest(t, link, request(iamqp.UUID{1}, "m", []byte("{}")))
	if err := c.Respond(dialCtx(t), receiveRequest(t, c), 200, nil); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	if d := receive(t, hc.responses, "answer"); !d.Settled {
		t.Error("the answer did not go pre-settled")
	}
	hc.conn.Close()
	receiveError(t, c)
	closeReportsNothing(t, c, lost)
}

// TestDialPutTokenSilent: a hub that never answers the put-token fails
// Dial after Options.PutTokenTimeout, with an error the client retries.
func TestDialPutTokenSilent(t *testing.T) {
	h := startHub(t, hubScript{silentPutToken: true})
	c, err := NewDialer(&Options{PutTokenTimeout: 100 * time.Millisecond}).Dial(dialCtx(t), testConfig(t, h.port(), newCountingCredential(t)))
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded without an answer to its put-token")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial error %v does not wrap context.DeadlineExceeded", err)
	}
	errtest.WantRetried(t, err)
}

// TestHubEndsConnection ends the connection from the hub: closed with
// amqp:connection:forced, or gone silent (no frame, not even a heartbeat,
// for longer than the idle time-out the client advertised).
func TestHubEndsConnection(t *testing.T) {
	tests := []struct {
		name      string
		keepAlive time.Duration
		end       func(hc *hubConn)
	}{
		{"forced close", 30 * time.Second, func(hc *hubConn) {
			hc.conn.CloseWithError(&iamqp.Error{Condition: iamqp.ErrCondConnectionForced, Description: "scripted"})
		}},
		// The hub sends heartbeats every quarter of a second until it goes
		// silent; the client gives up after a second of silence.
		{"idle peer", 500 * time.Millisecond, func(hc *hubConn) { hc.wire.silence() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHub(t, hubScript{})
			cfg := testConfig(t, h.port(), newCountingCredential(t))
			cfg.KeepAlive = tt.keepAlive
			c, hc, link := dialHub(t, h, cfg, nil)
			roundTrip(t, c, hc, link, 1)
			tt.end(hc)
			errtest.WantOnly(t, receiveError(t, c), transport.ErrConnLost)
		})
	}
}

// TestBusyAnswersNotReported: the 503 answers the adapter sends itself,
// for requests beyond Options.QueueSize, are not reported through
// AnswerLost, since the client never saw their requests.
func TestBusyAnswersNotReported(t *testing.T) {
	c, hc, link, lost := dialHeldAnswers(t, &Options{QueueSize: 1})
	hc.sendRequest(t, link, request(iamqp.UUID{1}, "queued", []byte("{}")))
	hc.sendRequest(t, link, request(iamqp.UUID{2}, "overflow", []byte("{}")))
	busyAnswer := receive(t, hc.responses, "503 answer")
	if got := busyAnswer.Message.ApplicationProperties["IoThub-status"]; got != int32(503) {
		t.Fatalf("first answer has status %v, want the adapter's 503", got)
	}
	if err := busyAnswer.Reject(dialCtx(t), nil); err != nil {
		t.Fatalf("fake hub: reject: %v", err)
	}
	rejectedFirst(t, c, hc, lost, receiveRequest(t, c))
}
