package amqp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seedFrames returns encoded frames of every kind, for fuzz seeds and
// benchmarks.
func seedFrames(tb testing.TB) [][]byte {
	tb.Helper()
	msg, err := MarshalMessage(&Message{
		Properties:            &Properties{CorrelationID: UUID{1}, MessageID: uint64(1)},
		ApplicationProperties: map[string]any{"IoThub-methodname": "m"},
		Data:                  [][]byte{[]byte("{}")},
	})
	if err != nil {
		tb.Fatal(err)
	}
	bodies := []Frame{
		{Body: &Open{ContainerID: "c", IdleTimeout: time.Minute, Properties: Map{{Symbol("k"), "v"}}}},
		{Body: &Begin{RemoteChannel: ptr(uint16(0)), IncomingWindow: 1, OutgoingWindow: 1}},
		{Body: &Attach{Name: "l", Role: RoleReceiver, Source: &Source{Address: "a"}, Target: &Target{Address: "b"},
			Properties: Map{{Symbol("com.microsoft:api-version"), "2020-09-30"}}}},
		{Body: &Flow{Handle: ptr(uint32(0)), LinkCredit: ptr(uint32(10)), Drain: true}},
		{Body: &Transfer{Handle: 0, DeliveryID: ptr(uint32(0)), DeliveryTag: []byte{1}, Payload: msg}},
		{Body: &Disposition{Role: RoleReceiver, First: 1, State: &Rejected{Error: &Error{Condition: ErrCondDecodeError}}}},
		{Body: &Detach{Handle: 1, Closed: true, Error: &Error{Condition: ErrCondDetachForced, Info: Map{{Symbol("x"), Array{Symbol("a")}}}}}},
		{Body: &End{}},
		{Body: &Close{}},
		{Type: FrameTypeSASL, Body: &SASLMechanisms{Mechanisms: []Symbol{SASLAnonymous, SASLPlain}}},
		{Type: FrameTypeSASL, Body: &SASLInit{Mechanism: SASLPlain, InitialResponse: []byte("\x00u\x00p")}},
		{Type: FrameTypeSASL, Body: &SASLOutcome{}},
		{},
	}
	var out [][]byte
	for _, f := range bodies {
		b, err := AppendFrame(nil, f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzDecodeFrame feeds arbitrary bytes to the frame reader: it must never
// panic, and whatever it accepts must encode again, stably.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	f.Add([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xc0})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := NewFrameReader(bytes.NewReader(in), 1<<16)
		for range 8 {
			frame, err := fr.ReadFrame()
			if err != nil {
				return
			}
			// Encoding normalises (defaults become absent fields), so
			// check that a second decode and encode changes nothing.
			enc, err := AppendFrame(nil, frame)
			if err != nil {
				t.Fatalf("re-encode %#v: %v", frame, err)
			}
			again, err := DecodeFrame(enc)
			if err != nil {
				t.Fatalf("decode of re-encoded frame: %v", err)
			}
			enc2, err := AppendFrame(nil, again)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, enc2) {
				t.Fatalf("encoding is not stable:\n% x\n% x", enc, enc2)
			}
		}
	})
}

// FuzzDecodeValue decodes arbitrary bytes as one value and as a message.
func FuzzDecodeValue(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s[8:])
	}
	for _, s := range [][]byte{
		{0x40}, {0x52, 7}, {0xe0, 7, 2, 0xa3, 1, 'a', 2, 'b', 'c'}, {0xd1, 0, 0, 0, 6, 0, 0, 0, 2, 0x44, 0x41},
		{0xf0, 0, 0, 0, 9, 0x7f, 0xff, 0xff, 0xff, 0x40}, {0xe0, 8, 2, 0x00, 0x53, 0x75, 0xa0, 1, 1, 0},
		bytes.Repeat([]byte{0xc0, 0xff, 1}, 70),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, n, err := DecodeValue(in)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
		} else {
			if n <= 0 || n > len(in) {
				t.Fatalf("used %d of %d bytes", n, len(in))
			}
			enc, err := Marshal(v)
			if err != nil {
				t.Fatalf("re-encode %#v: %v", v, err)
			}
			again, err := Unmarshal(enc)
			if err != nil {
				t.Fatalf("decode of re-encoded value: %v", err)
			}
			if diff := cmp.Diff(v, again); diff != "" && !hasNaN(diff) {
				t.Fatalf("re-encoded value differs:\n%s", diff)
			}
		}
		_, _ = UnmarshalMessage(in)
	})
}

// hasNaN tells diffs caused by NaN, which never equals itself.
func hasNaN(diff string) bool { return bytes.Contains([]byte(diff), []byte("NaN")) }

func BenchmarkDecodeTransfer(b *testing.B) {
	frame := transferFrame(b)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := DecodeFrame(frame)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := UnmarshalMessage(f.Body.(*Transfer).Payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeTransfer(b *testing.B) {
	msg := benchMessage()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		payload, err := MarshalMessage(msg)
		if err != nil {
			b.Fatal(err)
		}
		buf, err = AppendFrame(buf[:0], Frame{Body: &Transfer{Handle: 1, DeliveryID: ptr(uint32(7)),
			DeliveryTag: []byte{0, 0, 0, 0, 0, 0, 0, 7}, MessageFormat: ptr(uint32(0)), Payload: payload}})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func benchMessage() *Message {
	return &Message{
		Properties:            &Properties{CorrelationID: UUID{1, 2, 3}},
		ApplicationProperties: map[string]any{"IoThub-methodname": "reboot"},
		Data:                  [][]byte{bytes.Repeat([]byte("x"), 100)},
	}
}

func transferFrame(tb testing.TB) []byte {
	payload, err := MarshalMessage(benchMessage())
	if err != nil {
		tb.Fatal(err)
	}
	b, err := AppendFrame(nil, Frame{Body: &Transfer{Handle: 1, DeliveryID: ptr(uint32(7)),
		DeliveryTag: []byte{0, 0, 0, 0, 0, 0, 0, 7}, MessageFormat: ptr(uint32(0)), Payload: payload}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestTransferFrameRoundTrip(t *testing.T) {
	f, err := DecodeFrame(transferFrame(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := UnmarshalMessage(f.Body.(*Transfer).Payload)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(benchMessage(), m); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
