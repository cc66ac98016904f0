package amqp

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

func TestBodyRoundTrips(t *testing.T) {
	amqpErr := &Error{Condition: ErrCondUnauthorizedAccess, Description: "no token", Info: Map{{Symbol("k"), "v"}}}
	tests := []struct {
		name string
		typ  uint8
		body Body
	}{
		{"open", FrameTypeAMQP, &Open{ContainerID: "c", Hostname: "hub.example", MaxFrameSize: 65536, ChannelMax: 9,
			IdleTimeout: 240 * time.Second, OutgoingLocales: []Symbol{"en-US"}, IncomingLocales: []Symbol{"en-US", "fr"},
			OfferedCapabilities: []Symbol{"a"}, DesiredCapabilities: []Symbol{"b", "c"}, Properties: Map{{Symbol("p"), int32(1)}}}},
		{"open minimal", FrameTypeAMQP, &Open{ContainerID: "c", MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}},
		{"begin", FrameTypeAMQP, &Begin{RemoteChannel: ptr(uint16(3)), NextOutgoingID: 1, IncomingWindow: math.MaxUint32,
			OutgoingWindow: 100, HandleMax: 7, Properties: Map{{Symbol("x"), nil}}}},
		{"begin no remote channel", FrameTypeAMQP, &Begin{IncomingWindow: 1, OutgoingWindow: 2, HandleMax: math.MaxUint32}},
		{"attach receiver", FrameTypeAMQP, &Attach{Name: "methods_requests_link-d", Handle: 2, Role: RoleReceiver,
			SndSettleMode: SenderSettleUnsettled, RcvSettleMode: ReceiverSettleFirst,
			Source: &Source{Address: "amqps://h/devices/d/methods/devicebound", ExpiryPolicy: "session-end",
				Filter:   Map{{Symbol("f"), Described{Symbol("apache.org:selector-filter:string"), "1=1"}}},
				Outcomes: []Symbol{"amqp:accepted:list"}, DefaultOutcome: Described{uint64(0x24), []any{}}},
			Target:         &Target{Address: "requests", ExpiryPolicy: "link-detach", Durable: 1, Timeout: 5},
			MaxMessageSize: 1 << 20,
			Properties:     Map{{Symbol("com.microsoft:api-version"), "2020-09-30"}}}},
		{"attach sender", FrameTypeAMQP, &Attach{Name: "s", Handle: 0, Role: RoleSender, SndSettleMode: SenderSettleMixed,
			InitialDeliveryCount: 5, Target: &Target{Address: "$cbs", ExpiryPolicy: "session-end", Capabilities: []Symbol{"x"}}}},
		{"attach refused terminus", FrameTypeAMQP, &Attach{Name: "s", Handle: 1, Role: RoleReceiver, SndSettleMode: SenderSettleMixed,
			Source: &Source{Address: "a", ExpiryPolicy: "session-end"}}},
		{"flow session", FrameTypeAMQP, &Flow{NextIncomingID: ptr(uint32(9)), IncomingWindow: 10, NextOutgoingID: 11, OutgoingWindow: 12}},
		{"flow link", FrameTypeAMQP, &Flow{IncomingWindow: 10, NextOutgoingID: 11, OutgoingWindow: 12, Handle: ptr(uint32(1)),
			DeliveryCount: ptr(uint32(2)), LinkCredit: ptr(uint32(100)), Available: ptr(uint32(0)), Drain: true, Echo: true,
			Properties: Map{{Symbol("k"), true}}}},
		{"transfer first", FrameTypeAMQP, &Transfer{Handle: 1, DeliveryID: ptr(uint32(0)), DeliveryTag: []byte{0, 1},
			MessageFormat: ptr(uint32(0)), Settled: true, More: true, RcvSettleMode: ptr(uint8(1)), Payload: []byte{0, 0x53, 0x77, 0x40}}},
		{"transfer continuation", FrameTypeAMQP, &Transfer{Handle: 1, Payload: []byte{1, 2, 3}}},
		{"transfer with state", FrameTypeAMQP, &Transfer{Handle: 1, State: &Received{SectionNumber: 1, SectionOffset: 2},
			Resume: true, Aborted: true, Batchable: true}},
		{"disposition accepted", FrameTypeAMQP, &Disposition{Role: RoleReceiver, First: 4, Last: ptr(uint32(9)), Settled: true, State: &Accepted{}}},
		{"disposition rejected", FrameTypeAMQP, &Disposition{Role: RoleReceiver, First: 4, State: &Rejected{Error: amqpErr}}},
		{"disposition rejected no error", FrameTypeAMQP, &Disposition{Role: RoleReceiver, First: 4, State: &Rejected{}}},
		{"disposition released", FrameTypeAMQP, &Disposition{Role: RoleSender, First: 0, State: &Released{}, Batchable: true}},
		{"disposition modified", FrameTypeAMQP, &Disposition{First: 1, State: &Modified{DeliveryFailed: true,
			UndeliverableHere: true, MessageAnnotations: Map{{Symbol("x-opt"), int64(1)}}}}},
		{"detach", FrameTypeAMQP, &Detach{Handle: 3, Closed: true, Error: amqpErr}},
		{"detach plain", FrameTypeAMQP, &Detach{Handle: 3}},
		{"end", FrameTypeAMQP, &End{Error: &Error{Condition: ErrCondWindowViolation}}},
		{"end plain", FrameTypeAMQP, &End{}},
		{"close", FrameTypeAMQP, &Close{Error: amqpErr}},
		{"close plain", FrameTypeAMQP, &Close{}},
		{"sasl-mechanisms", FrameTypeSASL, &SASLMechanisms{Mechanisms: []Symbol{SASLAnonymous, SASLMSSBCBS, SASLPlain}}},
		{"sasl-mechanisms one", FrameTypeSASL, &SASLMechanisms{Mechanisms: []Symbol{SASLAnonymous}}},
		{"sasl-init", FrameTypeSASL, &SASLInit{Mechanism: SASLPlain, InitialResponse: []byte("\x00u\x00p"), Hostname: "h"}},
		{"sasl-challenge", FrameTypeSASL, &SASLChallenge{Challenge: []byte("c")}},
		{"sasl-response", FrameTypeSASL, &SASLResponse{Response: []byte("r")}},
		{"sasl-outcome", FrameTypeSASL, &SASLOutcome{Code: SASLCodeAuth, AdditionalData: []byte("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Frame{Type: tt.typ, Channel: 5, Body: tt.body}
			b, err := AppendFrame(nil, f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeFrame(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(f, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestBodyDefaults decodes performatives with absent or null trailing
// fields and checks the defaults of the specification.
func TestBodyDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want Body
	}{
		{"open", Described{uint64(0x10), []any{"c"}}, &Open{ContainerID: "c", MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}},
		{"open nulls", Described{uint64(0x10), []any{"c", nil, nil, nil, nil}}, &Open{ContainerID: "c", MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}},
		{"begin", Described{uint64(0x11), []any{nil, uint32(0), uint32(1), uint32(2)}}, &Begin{IncomingWindow: 1, OutgoingWindow: 2, HandleMax: math.MaxUint32}},
		{"attach", Described{uint64(0x12), []any{"n", uint32(0), true}}, &Attach{Name: "n", Role: RoleReceiver, SndSettleMode: SenderSettleMixed}},
		{"attach source defaults", Described{uint64(0x12), []any{"n", uint32(0), false, nil, nil, Described{uint64(0x28), []any{}}}},
			&Attach{Name: "n", SndSettleMode: SenderSettleMixed, Source: &Source{ExpiryPolicy: "session-end"}}},
		{"symbolic descriptor", Described{Symbol("amqp:close:list"), []any{}}, &Close{}},
		{"sasl-mechanisms single symbol", Described{uint64(0x40), []any{Symbol("PLAIN")}}, &SASLMechanisms{Mechanisms: []Symbol{"PLAIN"}}},
		{"header-less flow widths", Described{uint64(0x13), []any{nil, uint8(1), uint16(2), uint64(3)}}, &Flow{IncomingWindow: 1, NextOutgoingID: 2, OutgoingWindow: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, n, err := DecodeBody(b)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(b) {
				t.Errorf("used %d of %d bytes", n, len(b))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBodyErrors(t *testing.T) {
	tests := []struct {
		name string
		in   any
	}{
		{"not described", []any{}},
		{"unknown descriptor", Described{uint64(0x99), []any{}}},
		{"not a list", Described{uint64(0x10), "x"}},
		{"open without container id", Described{uint64(0x10), []any{}}},
		{"open wrong type", Described{uint64(0x10), []any{uint32(1)}}},
		{"begin missing windows", Described{uint64(0x11), []any{nil, uint32(0)}}},
		{"max-frame-size too wide", Described{uint64(0x10), []any{"c", nil, uint64(1 << 40)}}},
		{"attach bad role", Described{uint64(0x12), []any{"n", uint32(0), "sender"}}},
		{"attach bad source", Described{uint64(0x12), []any{"n", uint32(0), false, nil, nil, "src"}}},
		{"attach coordinator target", Described{uint64(0x12), []any{"n", uint32(0), false, nil, nil, nil, Described{uint64(0x30), []any{}}}}},
		{"bad delivery state", Described{uint64(0x15), []any{true, uint32(0), nil, true, Described{uint64(0x99), []any{}}}}},
		{"rejected with bad error", Described{uint64(0x15), []any{true, uint32(0), nil, true, Described{uint64(0x25), []any{"x"}}}}},
		{"error without condition", Described{uint64(0x18), []any{Described{uint64(0x1d), []any{}}}}},
		{"bad symbols field", Described{uint64(0x40), []any{uint32(1)}}},
		{"array of non-symbols", Described{uint64(0x40), []any{Array{uint32(1)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := DecodeBody(b); !errors.Is(err, ErrDecode) {
				t.Errorf("DecodeBody = %v, want ErrDecode", err)
			}
		})
	}
}

func TestFrameErrors(t *testing.T) {
	open, _ := AppendFrame(nil, Frame{Body: &Open{ContainerID: "c"}})
	saslInOpen := append([]byte{}, open...)
	saslInOpen[5] = FrameTypeSASL
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"short", []byte{0, 0, 0}, ErrFraming},
		{"size mismatch", []byte{0, 0, 0, 9, 2, 0, 0, 0}, ErrFraming},
		{"doff below 2", []byte{0, 0, 0, 8, 1, 0, 0, 0}, ErrFraming},
		{"doff beyond frame", []byte{0, 0, 0, 8, 3, 0, 0, 0}, ErrFraming},
		{"unknown type", []byte{0, 0, 0, 8, 2, 9, 0, 0}, ErrFraming},
		{"open in sasl frame", saslInOpen, ErrFraming},
		{"trailing bytes after open", append(append([]byte{0, 0, 0, byte(len(open) + 1)}, open[4:]...), 0x40), ErrDecode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeFrame(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("DecodeFrame = %v, want %v", err, tt.want)
			}
		})
	}
	// An extended header (doff 3) is skipped.
	ext := []byte{0, 0, 0, 12, 3, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}
	f, err := DecodeFrame(ext)
	if err != nil || f.Body != nil || f.Channel != 1 {
		t.Errorf("extended header: %v, %v", f, err)
	}
}

func TestProtocolHeaders(t *testing.T) {
	tests := []struct {
		in      string
		want    ProtocolID
		wantErr bool
	}{
		{"AMQP\x00\x01\x00\x00", ProtocolAMQP, false},
		{"AMQP\x03\x01\x00\x00", ProtocolSASL, false},
		{"AMQP\x02\x01\x00\x00", ProtocolTLS, false},
		{"AMQP\x00\x01\x00\x01", 0, true},
		{"HTTP/1.1", 0, true},
	}
	for _, tt := range tests {
		id, err := ParseProtocolHeader([8]byte([]byte(tt.in)))
		if (err != nil) != tt.wantErr || id != tt.want {
			t.Errorf("ParseProtocolHeader(%q) = %v, %v", tt.in, id, err)
		}
		if err != nil && !errors.Is(err, ErrFraming) {
			t.Errorf("error %v is not ErrFraming", err)
		}
	}
}

func TestMessageRoundTrips(t *testing.T) {
	ts := time.UnixMilli(1700000000000).UTC()
	tests := []struct {
		name string
		m    *Message
	}{
		{"method request", &Message{
			Properties:            &Properties{CorrelationID: UUID{1, 2, 3}},
			ApplicationProperties: map[string]any{"IoThub-methodname": "reboot"},
			Data:                  [][]byte{[]byte(`{"delay":1}`)},
		}},
		{"cbs put-token", &Message{
			Properties: &Properties{MessageID: uint64(0), To: "$cbs", ReplyTo: "cbs"},
			ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken",
				"name": "h/devices/d", "expiration": ts},
			Value: "SharedAccessSignature sr=...",
		}},
		{"cbs response", &Message{
			Properties:            &Properties{CorrelationID: "2b4a-string-id"},
			ApplicationProperties: map[string]any{"status-code": int32(200), "status-description": "OK"},
		}},
		{"binary ids", &Message{Properties: &Properties{MessageID: []byte{1}, CorrelationID: []byte{}}}},
		{"every section", &Message{
			Header:              &Header{Durable: true, Priority: 9, TTL: time.Minute, FirstAcquirer: true, DeliveryCount: 2},
			DeliveryAnnotations: Map{{Symbol("x-opt-lock"), UUID{9}}},
			MessageAnnotations:  Map{{Symbol("iothub-connection-device-id"), "d"}, {uint64(5), int8(1)}},
			Properties: &Properties{MessageID: "m", UserID: []byte("u"), To: "t", Subject: "s", ReplyTo: "r",
				CorrelationID: uint64(99), ContentType: "application/json", ContentEncoding: "utf-8",
				AbsoluteExpiryTime: ts, CreationTime: ts, GroupID: "g", GroupSequence: ptr(uint32(0)), ReplyToGroupID: "rg"},
			ApplicationProperties: map[string]any{"IoThub-status": int32(200)},
			Data:                  [][]byte{[]byte("a"), {}, []byte("c")},
			Footer:                Map{{Symbol("f"), "x"}},
		}},
		{"sequences", &Message{Sequence: [][]any{{uint8(1), "two"}, {}}}},
		{"value list", &Message{Value: []any{Symbol("s"), Map{}}}},
		{"default header", &Message{Header: &Header{Priority: 4}}},
		{"empty", &Message{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := MarshalMessage(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.m, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMessageErrors(t *testing.T) {
	if _, err := MarshalMessage(&Message{Properties: &Properties{MessageID: int32(1)}}); !errors.Is(err, ErrEncode) {
		t.Errorf("int32 message id: %v", err)
	}
	bad := []any{
		"not described",
		Described{uint64(0x99), nil},
		Described{uint64(0x75), "data must be binary"},
		Described{uint64(0x74), Map{{Symbol("k"), "symbol keys are not allowed"}}},
		Described{uint64(0x73), []any{int32(1)}},
		Described{uint64(0x70), []any{"durable"}},
		Described{uint64(0x76), "not a list"},
		Described{uint64(0x72), "not a map"},
	}
	for _, v := range bad {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalMessage(b); !errors.Is(err, ErrDecode) {
			t.Errorf("UnmarshalMessage(%v) = %v, want ErrDecode", v, err)
		}
	}
	if _, err := UnmarshalMessage([]byte{0x00, 0x53}); !errors.Is(err, ErrDecode) {
		t.Errorf("truncated: %v", err)
	}
}
