package amqp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"testing"

	iamqp "github.com/directmethods/iotdevice/internal/amqp"
	"github.com/google/go-cmp/cmp"
)

// streamConn is a net.Conn whose Read serves r at most chunk bytes at a
// time and counts what it served; nothing else is used.
type streamConn struct {
	net.Conn
	r     io.Reader
	chunk int
	read  int
}

func (s *streamConn) Read(p []byte) (int, error) {
	if len(p) > s.chunk {
		p = p[:s.chunk]
	}
	n, err := s.r.Read(p)
	s.read += n
	return n, err
}

// stream concatenates protocol headers and encoded frames.
type stream []byte

func (s stream) header(id iamqp.ProtocolID) stream { return append(s, protocolHeader(id)...) }

func (s stream) frame(t *testing.T, channel uint16, body iamqp.Body) stream {
	t.Helper()
	typ := iamqp.FrameTypeAMQP
	switch body.(type) {
	case *iamqp.SASLMechanisms, *iamqp.SASLOutcome, *iamqp.SASLChallenge:
		typ = iamqp.FrameTypeSASL
	}
	return append(s, encodeFrame(t, iamqp.Frame{Type: typ, Channel: channel, Body: body})...)
}

// opened is a stream up to the hub's open, through SASL.
func opened(t *testing.T) stream {
	return stream(nil).header(iamqp.ProtocolSASL).
		frame(t, 0, &iamqp.SASLMechanisms{Mechanisms: []iamqp.Symbol{iamqp.SASLAnonymous}}).
		frame(t, 0, &iamqp.SASLOutcome{Code: iamqp.SASLCodeOK}).
		header(iamqp.ProtocolAMQP).
		frame(t, 0, &iamqp.Open{ContainerID: "hub", MaxFrameSize: maxFrameSize, ChannelMax: 10})
}

// transfer is a whole message in one transfer on handle 1.
func transfer(t *testing.T, id uint32, m *iamqp.Message) *iamqp.Transfer {
	t.Helper()
	payload, err := iamqp.MarshalMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	format := uint32(0)
	return &iamqp.Transfer{Handle: 1, DeliveryID: &id, DeliveryTag: []byte{byte(id)}, MessageFormat: &format, Payload: payload}
}

// split cuts a one-transfer message into transfers of at most n payload
// bytes.
func split(tr *iamqp.Transfer, n int) []*iamqp.Transfer {
	var out []*iamqp.Transfer
	payload := tr.Payload
	for first := true; first || len(payload) > 0; first = false {
		k := min(n, len(payload))
		part := &iamqp.Transfer{Handle: tr.Handle, Payload: payload[:k], More: k < len(payload)}
		if first {
			part.DeliveryID, part.DeliveryTag, part.MessageFormat = tr.DeliveryID, tr.DeliveryTag, tr.MessageFormat
		}
		payload = payload[k:]
		out = append(out, part)
	}
	return out
}

func withAnnotations(m iamqp.Map) *iamqp.Message {
	msg := request(iamqp.UUID{1}, "m", []byte("{}"))
	msg.MessageAnnotations = m
	return msg
}

// guardRead reads all of in through a guard, a few bytes per network
// read, and returns what came out, the error and the hooks' calls.
func guardRead(in []byte, watched ...string) (out []byte, refused []error, detached []string, err error) {
	sc := &streamConn{r: bytes.NewReader(in), chunk: 7}
	g := newFrameGuard(sc, guardHooks{
		watched:  watched,
		detached: func(name string, _ *iamqp.Error) { detached = append(detached, name) },
		refused:  func(err error) { refused = append(refused, err) },
	})
	out, err = io.ReadAll(g)
	return out, refused, detached, err
}

// TestGuardPassesValidStreams checks that the guard hands a well-formed
// stream to go-amqp unchanged, whatever the network's read sizes.
func TestGuardPassesValidStreams(t *testing.T) {
	one, zero := uint32(1), uint32(0)
	big := transfer(t, 7, request(iamqp.UUID{2}, "big", bytes.Repeat([]byte("x"), 150<<10)))
	s := opened(t).
		frame(t, 0, &iamqp.Begin{RemoteChannel: new(uint16), NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100}).
		frame(t, 0, &iamqp.Attach{Name: "requests", Handle: 1, Role: iamqp.RoleSender, Source: &iamqp.Source{Address: "/x"}, Properties: iamqp.Map{{Key: iamqp.Symbol("p"), Value: "v"}}}).
		frame(t, 0, &iamqp.Flow{NextIncomingID: &zero, IncomingWindow: 10, OutgoingWindow: 10, Handle: &one, LinkCredit: &one}).
		frame(t, 0, &iamqp.Flow{NextIncomingID: &zero, IncomingWindow: 10, OutgoingWindow: 10, Handle: &one}). // the hub sends on it
		frame(t, 0, &iamqp.Flow{NextIncomingID: &zero, IncomingWindow: 10, OutgoingWindow: 10}).
		frame(t, 0, transfer(t, 1, withAnnotations(iamqp.Map{{Key: iamqp.Symbol("x-opt"), Value: "v"}, {Key: uint64(9), Value: int32(1)}})))
	for _, part := range split(big, 60<<10) {
		s = s.frame(t, 0, part)
	}
	wrapped := uint32(3)
	s = append(s, frameHeader(8, iamqp.FrameTypeAMQP)...) // a heartbeat
	s = s.frame(t, 0, &iamqp.Disposition{Role: iamqp.RoleReceiver, First: 5, Last: &wrapped, Settled: true, State: &iamqp.Accepted{}}).
		frame(t, 0, &iamqp.Disposition{Role: iamqp.RoleReceiver, First: 0, Settled: true, State: &iamqp.Modified{MessageAnnotations: iamqp.Map{{Key: iamqp.Symbol("a"), Value: 1}}}}).
		frame(t, 0, &iamqp.Detach{Handle: 1, Closed: true}).
		frame(t, 0, &iamqp.Close{})

	out, refused, _, err := guardRead(s)
	if err != nil {
		t.Fatalf("guard refused a valid stream: %v", err)
	}
	if !bytes.Equal(out, s) {
		t.Errorf("the guard changed the stream: %d bytes in, %d out", len(s), len(out))
	}
	if len(refused) != 0 {
		t.Errorf("refused hook called: %v", refused)
	}
}

// TestGuardRefuses feeds streams the guard must refuse: each is cut after
// its last good unit, with an error wrapping errRefused, and the refused
// hook hears of it.
func TestGuardRefuses(t *testing.T) {
	one, zero, last := uint32(1), uint32(0), uint32(math.MaxUint32)
	deep := any("leaf")
	for range iamqp.MaxDepth + 1 {
		deep = []any{deep}
	}
	tooBig := transfer(t, 2, request(iamqp.UUID{2}, "m", make([]byte, maxMessageSize)))
	tests := []struct {
		name string
		good stream // passes
		bad  []byte // refused
	}{
		{"not AMQP", nil, []byte("HTTP/1.1")},
		{"TLS protocol id", nil, protocolHeader(iamqp.ProtocolTLS)},
		{"SASL after SASL", stream(nil).header(iamqp.ProtocolSASL).frame(t, 0, &iamqp.SASLOutcome{}), protocolHeader(iamqp.ProtocolSASL)},
		{"frame below its header", stream(nil).header(iamqp.ProtocolAMQP), frameHeader(4, 0)},
		{"extended frame header", stream(nil).header(iamqp.ProtocolAMQP), []byte{0, 0, 0, 12, 3, 0, 0, 0, 0, 0, 0, 0}},
		{"open during SASL", stream(nil).header(iamqp.ProtocolSASL), stream(nil).frame(t, 0, &iamqp.Open{ContainerID: "hub"})},
		{"begin before open", stream(nil).header(iamqp.ProtocolAMQP), stream(nil).frame(t, 0, &iamqp.Begin{IncomingWindow: 1, OutgoingWindow: 1})},
		{"open with max-frame-size 100", stream(nil).header(iamqp.ProtocolAMQP), stream(nil).frame(t, 0, &iamqp.Open{ContainerID: "hub", MaxFrameSize: 100})},
		{"undecodable performative", opened(t), append(frameHeader(11, 0), 0x00, 0x53, 0xff)},
		{"SASL frame after open", opened(t), stream(nil).frame(t, 0, &iamqp.SASLOutcome{})},
		{"flow without link-credit for a link go-amqp sends on", opened(t).frame(t, 0, &iamqp.Attach{Name: "answers", Handle: 1, Role: iamqp.RoleReceiver, Target: &iamqp.Target{Address: "/x"}}),
			stream(nil).frame(t, 0, &iamqp.Flow{NextIncomingID: &zero, IncomingWindow: 1, OutgoingWindow: 1, Handle: &one})},
		{"too many links", func() stream {
			s := opened(t)
			for h := range uint32(maxGuardedLinks) {
				s = s.frame(t, 0, &iamqp.Attach{Name: "l", Handle: h, Role: iamqp.RoleSender})
			}
			return s
		}(), stream(nil).frame(t, 0, &iamqp.Attach{Name: "l", Handle: maxGuardedLinks, Role: iamqp.RoleSender})},
		{"disposition up to the largest delivery id", opened(t), stream(nil).frame(t, 0, &iamqp.Disposition{Role: iamqp.RoleReceiver, First: 1, Last: &last, Settled: true})},
		{"disposition of the largest delivery id", opened(t), stream(nil).frame(t, 0, &iamqp.Disposition{Role: iamqp.RoleReceiver, First: last, Settled: true})},
		{"transfer with the largest delivery id", opened(t), stream(nil).frame(t, 0, transfer(t, last, request(iamqp.UUID{1}, "m", nil)))},
		{"modified outcome with a list annotation key", opened(t), stream(nil).frame(t, 0, &iamqp.Disposition{Role: iamqp.RoleReceiver, First: 0, Settled: true, State: &iamqp.Modified{MessageAnnotations: iamqp.Map{{Key: []any{1}, Value: 1}}}})},
		{"attach property holding a map with a binary key", opened(t), stream(nil).frame(t, 0, &iamqp.Attach{Name: "l", Handle: 1, Properties: iamqp.Map{{Key: iamqp.Symbol("p"), Value: iamqp.Map{{Key: []byte{1}, Value: 1}}}}})},
		{"message-annotations with an array key", opened(t), stream(nil).frame(t, 0, transfer(t, 1, withAnnotations(iamqp.Map{{Key: iamqp.Array{int32(1)}, Value: 1}})))},
		{"message-annotations with a described list key", opened(t), stream(nil).frame(t, 0, transfer(t, 1, withAnnotations(iamqp.Map{{Key: iamqp.Described{Descriptor: uint64(1), Value: []any{1}}, Value: 1}})))},
		{"message-annotations with a string key", opened(t), stream(nil).frame(t, 0, transfer(t, 1, withAnnotations(iamqp.Map{{Key: "s", Value: 1}})))},
		{"message nested too deep", opened(t), stream(nil).frame(t, 0, transfer(t, 1, &iamqp.Message{Value: deep}))},
		{"section that is not described", opened(t), stream(nil).frame(t, 0, &iamqp.Transfer{Handle: 1, DeliveryID: &one, Payload: []byte{0x41}})},
		{"message larger than the bound", func() stream {
			s := opened(t)
			parts := split(tooBig, 60<<10)
			for _, p := range parts[:len(parts)-1] {
				s = s.frame(t, 0, p)
			}
			return s
		}(), func() []byte {
			parts := split(tooBig, 60<<10)
			return stream(nil).frame(t, 0, parts[len(parts)-1])
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, refused, _, err := guardRead(append(append([]byte{}, tt.good...), tt.bad...))
			if !errors.Is(err, errRefused) {
				t.Fatalf("guard error = %v, want one wrapping errRefused", err)
			}
			if !bytes.Equal(out, tt.good) {
				t.Errorf("the guard handed over %d bytes, want the %d before the refused input", len(out), len(tt.good))
			}
			if len(refused) != 1 || refused[0] != err {
				t.Errorf("refused hook calls = %v, want one with %v", refused, err)
			}
		})
	}
}

// TestGuardReassembles splits a message whose annotations are refused over
// transfers: the guard passes the first transfers and refuses the last.
// An aborted message is forgotten.
func TestGuardReassembles(t *testing.T) {
	bad := transfer(t, 1, withAnnotations(iamqp.Map{{Key: []byte{9}, Value: 1}}))
	parts := split(bad, 16)
	good := opened(t)
	for _, p := range parts[:len(parts)-1] {
		good = good.frame(t, 0, p)
	}
	out, _, _, err := guardRead(append(append([]byte{}, good...), stream(nil).frame(t, 0, parts[len(parts)-1])...))
	if !errors.Is(err, errRefused) || !bytes.Equal(out, good) {
		t.Errorf("guard passed %d of %d bytes with error %v, want all but the last transfer and a refusal", len(out), len(good), err)
	}

	aborted := opened(t).frame(t, 0, parts[0]).frame(t, 0, &iamqp.Transfer{Handle: 1, Aborted: true}).
		frame(t, 0, transfer(t, 2, request(iamqp.UUID{2}, "m", []byte("{}"))))
	if out, _, _, err := guardRead(aborted); err != nil || !bytes.Equal(out, aborted) {
		t.Errorf("guard after an aborted message: %d of %d bytes, error %v", len(out), len(aborted), err)
	}
}

// TestGuardFrameSizeBound checks that a frame header claiming 2 GiB is
// refused from its header: the guard reads no more of the network than
// its first buffer, whatever follows.
func TestGuardFrameSizeBound(t *testing.T) {
	tests := []struct {
		name   string
		prefix []byte
		want   frameSizeError
	}{
		{"before open", protocolHeader(iamqp.ProtocolSASL), frameSizeError{Size: 1<<31 - 1, Limit: minMaxFrameSize, BeforeOpen: true}},
		{"after open", opened(t), frameSizeError{Size: 1<<31 - 1, Limit: maxFrameSize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endless := io.MultiReader(bytes.NewReader(tt.prefix), bytes.NewReader(frameHeader(1<<31-1, 0)), zeros{})
			sc := &streamConn{r: endless, chunk: 1 << 20}
			g := newFrameGuard(sc, guardHooks{})
			_, err := io.Copy(io.Discard, g)
			wantFrameSizeError(t, err, tt.want)
			if bound := len(tt.prefix) + guardReadSize; sc.read > bound {
				t.Errorf("the guard read %d bytes from the network, more than %d", sc.read, bound)
			}
		})
	}
}

// zeros is an endless source of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestGuardDetachHook checks that the hub's detach of a watched link is
// reported, before the detach frame is handed over, and that other links'
// detaches are not.
func TestGuardDetachHook(t *testing.T) {
	s := opened(t).
		frame(t, 0, &iamqp.Attach{Name: "answers", Handle: 3, Role: iamqp.RoleReceiver, Target: &iamqp.Target{Address: "/x"}}).
		frame(t, 0, &iamqp.Attach{Name: "other", Handle: 4, Role: iamqp.RoleReceiver, Target: &iamqp.Target{Address: "/y"}}).
		frame(t, 0, &iamqp.Detach{Handle: 4, Closed: true}).
		frame(t, 0, &iamqp.Detach{Handle: 3, Closed: true, Error: &iamqp.Error{Condition: iamqp.ErrCondDetachForced}})
	_, _, detached, err := guardRead(s, "answers", "requests")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"answers"}, detached); diff != "" {
		t.Errorf("detached hook calls (-want +got):\n%s", diff)
	}
}
