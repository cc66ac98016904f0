package amqp

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValueEncodings(t *testing.T) {
	ts := time.UnixMilli(1700000000123).UTC()
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		v    any
		want []byte // nil: only the constructor is checked
		code byte
	}{
		{"null", nil, []byte{0x40}, 0},
		{"true", true, []byte{0x41}, 0},
		{"false", false, []byte{0x42}, 0},
		{"ubyte", uint8(200), []byte{0x50, 200}, 0},
		{"ushort", uint16(0x1234), []byte{0x60, 0x12, 0x34}, 0},
		{"uint0", uint32(0), []byte{0x43}, 0},
		{"smalluint", uint32(7), []byte{0x52, 7}, 0},
		{"uint", uint32(0x01020304), []byte{0x70, 1, 2, 3, 4}, 0},
		{"ulong0", uint64(0), []byte{0x44}, 0},
		{"smallulong", uint64(255), []byte{0x53, 255}, 0},
		{"ulong", uint64(256), []byte{0x80, 0, 0, 0, 0, 0, 0, 1, 0}, 0},
		{"byte", int8(-2), []byte{0x51, 0xfe}, 0},
		{"short", int16(-2), []byte{0x61, 0xff, 0xfe}, 0},
		{"smallint", int32(-128), []byte{0x54, 0x80}, 0},
		{"int", int32(200), []byte{0x71, 0, 0, 0, 200}, 0},
		{"int min", int32(math.MinInt32), []byte{0x71, 0x80, 0, 0, 0}, 0},
		{"smalllong", int64(127), []byte{0x55, 127}, 0},
		{"long", int64(-129), []byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 0},
		{"float", float32(1.5), []byte{0x72, 0x3f, 0xc0, 0, 0}, 0},
		{"double", float64(-2), []byte{0x82, 0xc0, 0, 0, 0, 0, 0, 0, 0}, 0},
		{"decimal32", Decimal32{1, 2, 3, 4}, []byte{0x74, 1, 2, 3, 4}, 0},
		{"decimal64", Decimal64{1, 2, 3, 4, 5, 6, 7, 8}, nil, 0x84},
		{"decimal128", Decimal128{15: 9}, nil, 0x94},
		{"char", Char('é'), []byte{0x73, 0, 0, 0, 0xe9}, 0},
		{"timestamp", ts, nil, 0x83},
		{"uuid", UUID{0: 1, 15: 2}, []byte{0x98, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 0},
		{"vbin8", []byte{1, 2}, []byte{0xa0, 2, 1, 2}, 0},
		{"vbin8 empty", []byte{}, []byte{0xa0, 0}, 0},
		{"vbin32", bytes.Repeat([]byte{7}, 256), nil, 0xb0},
		{"str8", "hé", []byte{0xa1, 3, 'h', 0xc3, 0xa9}, 0},
		{"str32", long, nil, 0xb1},
		{"sym8", Symbol("PLAIN"), []byte{0xa3, 5, 'P', 'L', 'A', 'I', 'N'}, 0},
		{"sym32", Symbol(long), nil, 0xb3},
		{"list0", []any{}, []byte{0x45}, 0},
		{"list8", []any{uint32(1), nil}, []byte{0xc0, 4, 2, 0x52, 1, 0x40}, 0},
		{"list32", []any{long}, nil, 0xd0},
		{"list32 by count", make([]any, 256), nil, 0xd0},
		{"map8", Map{{Symbol("a"), int32(1)}}, []byte{0xc1, 6, 2, 0xa3, 1, 'a', 0x54, 1}, 0},
		{"map8 empty", Map{}, []byte{0xc1, 1, 0}, 0},
		{"map32", Map{{"k", long}}, nil, 0xd1},
		{"array8 symbols", Array{Symbol("a"), Symbol("bc")}, []byte{0xe0, 7, 2, 0xa3, 1, 'a', 2, 'b', 'c'}, 0},
		{"array8 smalluint", Array{uint32(1), uint32(2)}, []byte{0xe0, 4, 2, 0x52, 1, 2}, 0},
		{"array8 uint widened", Array{uint32(1), uint32(300)}, []byte{0xe0, 10, 2, 0x70, 0, 0, 0, 1, 0, 0, 1, 0x2c}, 0},
		{"array8 bool", Array{true, false}, []byte{0xe0, 4, 2, 0x56, 1, 0}, 0},
		{"array32", Array{Symbol(long)}, nil, 0xf0},
		{"array empty", Array{}, []byte{0xe0, 2, 0, 0x40}, 0},
		{"described ulong", Described{uint64(0x75), []byte{1}}, []byte{0x00, 0x53, 0x75, 0xa0, 1, 1}, 0},
		{"described symbol", Described{Symbol("x:y"), "v"}, []byte{0x00, 0xa3, 3, 'x', ':', 'y', 0xa1, 1, 'v'}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, b); diff != "" {
					t.Errorf("encoding (-want +got):\n%s", diff)
				}
			} else if b[0] != tt.code {
				t.Errorf("constructor 0x%02x, want 0x%02x", b[0], tt.code)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(tt.v, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeWideEncodings decodes encodings our encoder never chooses
// (wide forms for small values), which peers may send.
func TestDecodeWideEncodings(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want any
	}{
		{"boolean 0x56 true", []byte{0x56, 1}, true},
		{"boolean 0x56 false", []byte{0x56, 0}, false},
		{"uint 0x70 zero", []byte{0x70, 0, 0, 0, 0}, uint32(0)},
		{"ulong 0x80 small", []byte{0x80, 0, 0, 0, 0, 0, 0, 0, 5}, uint64(5)},
		{"int 0x71 small", []byte{0x71, 0xff, 0xff, 0xff, 0xff}, int32(-1)},
		{"long 0x81 small", []byte{0x81, 0, 0, 0, 0, 0, 0, 0, 1}, int64(1)},
		{"str32 short", []byte{0xb1, 0, 0, 0, 1, 'a'}, "a"},
		{"sym32 short", []byte{0xb3, 0, 0, 0, 1, 'a'}, Symbol("a")},
		{"vbin32 short", []byte{0xb0, 0, 0, 0, 1, 9}, []byte{9}},
		{"list8 empty", []byte{0xc0, 1, 0}, []any{}},
		{"list32", []byte{0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x40}, []any{nil}},
		{"map32", []byte{0xd1, 0, 0, 0, 6, 0, 0, 0, 2, 0x44, 0x41}, Map{{uint64(0), true}}},
		{"array32", []byte{0xf0, 0, 0, 0, 7, 0, 0, 0, 2, 0x50, 1, 2}, Array{uint8(1), uint8(2)}},
		{"array of described", []byte{0xe0, 8, 2, 0x00, 0x53, 0x75, 0xa0, 1, 1, 0}, Array{
			Described{uint64(0x75), []byte{1}}, Described{uint64(0x75), []byte{}}}},
		{"timestamp", []byte{0x83, 0, 0, 0, 0, 0, 0, 0x03, 0xe8}, time.Unix(1, 0).UTC()},
		{"array of list32", []byte{0xe0, 11, 1, 0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x40}, Array{[]any{nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unmarshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestArrayRoundTrips(t *testing.T) {
	long := strings.Repeat("y", 300)
	tests := []struct {
		name string
		v    Array
	}{
		{"ulongs", Array{uint64(1), uint64(1 << 40)}},
		{"small ulongs", Array{uint64(1), uint64(2)}},
		{"ints", Array{int32(-1), int32(1 << 20)}},
		{"longs", Array{int64(-1), int64(1 << 40)}},
		{"small longs", Array{int64(-1), int64(5)}},
		{"strings wide", Array{"a", long}},
		{"binaries", Array{[]byte{1}, []byte{}}},
		{"uuids", Array{UUID{1}, UUID{2}}},
		{"timestamps", Array{time.UnixMilli(5).UTC()}},
		{"doubles", Array{1.5, -2.0}},
		{"floats", Array{float32(1.5)}},
		{"chars", Array{Char('a')}},
		{"nulls", Array{nil, nil}},
		{"lists", Array{[]any{uint8(1)}, []any{}}},
		{"maps", Array{Map{{"a", nil}}, Map{}}},
		{"arrays", Array{Array{Symbol("a")}, Array{Symbol("b"), Symbol("c")}}},
		{"described symbols", Array{Described{Symbol("d"), "x"}, Described{Symbol("d"), long}}},
		{"shorts", Array{int16(1), int16(-1)}},
		{"bytes", Array{int8(1)}},
		{"ushorts", Array{uint16(9)}},
		{"decimals", Array{Decimal64{1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.v, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestArrayEncodeErrors(t *testing.T) {
	for _, a := range []Array{
		{uint32(1), "mixed"},
		{Described{uint64(1), "a"}, Described{uint64(2), "b"}},
		{Described{uint64(1), "a"}, "plain"},
		{struct{}{}},
	} {
		if _, err := Marshal(a); !errors.Is(err, ErrEncode) {
			t.Errorf("Marshal(%v) = %v, want ErrEncode", a, err)
		}
	}
	if _, err := Marshal(struct{}{}); !errors.Is(err, ErrEncode) {
		t.Errorf("unsupported type: %v", err)
	}
	if _, err := Marshal("\xff"); !errors.Is(err, ErrEncode) {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

func TestMapKeepsKeyTypes(t *testing.T) {
	m := Map{
		{Symbol("k"), "symbol key"},
		{"k", "string key"},
		{uint64(1), "ulong key"},
		{int32(1), "int key"},
		{[]byte("k"), "binary key"},
	}
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	gm := got.(Map)
	for _, kv := range m {
		if v, ok := gm.Get(kv.Key); !ok || v != kv.Value {
			t.Errorf("Get(%#v) = %v, %v", kv.Key, v, ok)
		}
	}
	if _, ok := gm.Get(uint32(1)); ok {
		t.Error("uint32 key matched a ulong key")
	}
	gm.Set("k", "replaced")
	gm.Set("new", int64(1))
	if v, _ := gm.Get("k"); v != "replaced" {
		t.Errorf("after Set: %v", v)
	}
	if len(gm) != len(m)+1 {
		t.Errorf("len %d", len(gm))
	}
}

func TestGoMapEncodesSorted(t *testing.T) {
	b, err := Marshal(map[string]any{"b": nil, "a": nil})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Map{{"a", nil}, {"b", nil}}, got); diff != "" {
		t.Error(diff)
	}
}

func TestDecodeErrors(t *testing.T) {
	deep := bytes.Repeat([]byte{0xc0, 0xff, 1}, 100)
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown constructor", []byte{0x01}},
		{"truncated uint", []byte{0x70, 0, 0}},
		{"truncated str8", []byte{0xa1, 5, 'a'}},
		{"huge str32", []byte{0xb1, 0xff, 0xff, 0xff, 0xff, 'a'}},
		{"huge list32 size", []byte{0xd0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1}},
		{"list count beyond size", []byte{0xc0, 2, 200, 0x40}},
		{"list32 count beyond size", []byte{0xd0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x40}},
		{"array count beyond size", []byte{0xe0, 2, 255, 0x52}},
		{"zero-width array too long", []byte{0xf0, 0, 0, 0, 5, 0, 1, 0, 0, 0x40}},
		{"array32 huge count", []byte{0xf0, 0, 0, 0, 5, 0x7f, 0xff, 0xff, 0xff, 0x40}},
		{"list size zero", []byte{0xc0, 0, 0}},
		{"list32 size below count", []byte{0xd0, 0, 0, 0, 2, 0, 0}},
		{"odd map", []byte{0xc1, 2, 1, 0x40}},
		{"list leftover bytes", []byte{0xc0, 3, 1, 0x40, 0x40}},
		{"bad boolean", []byte{0x56, 2}},
		{"invalid utf8", []byte{0xa1, 1, 0xff}},
		{"descriptor of wrong type", []byte{0x00, 0xa1, 1, 'x', 0x40}},
		{"nested described constructor", []byte{0xe0, 5, 1, 0x00, 0x53, 0x01, 0x00}},
		{"too deep", deep},
		{"trailing bytes", []byte{0x40, 0x40}},
		{"described truncated", []byte{0x00, 0x53}},
		{"array without constructor", []byte{0xe0, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Unmarshal(tt.in); !errors.Is(err, ErrDecode) {
				t.Errorf("Unmarshal = %v, want ErrDecode", err)
			}
		})
	}
}

func TestDecodeBoundedAllocation(t *testing.T) {
	hostile := [][]byte{
		{0xf0, 0, 0, 0, 9, 0x7f, 0xff, 0xff, 0xff, 0x40},
		{0xd0, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff},
		{0xb0, 0x7f, 0xff, 0xff, 0xff, 0},
		{0xe0, 0xff, 0xff, 0x40},
	}
	for _, in := range hostile {
		var m0, m1 runtimeMem
		m0.read()
		allocs := testing.AllocsPerRun(20, func() { _, _ = Unmarshal(in) })
		m1.read()
		if allocs > 20 {
			t.Errorf("%x: %v allocations", in, allocs)
		}
		if grown := m1.totalAlloc - m0.totalAlloc; grown > 1<<20 {
			t.Errorf("%x: allocated %d bytes", in, grown)
		}
	}
}

func TestSpecByteSequences(t *testing.T) {
	if h := ProtocolHeader(ProtocolAMQP); string(h[:]) != "AMQP\x00\x01\x00\x00" {
		t.Errorf("AMQP header %q", h)
	}
	if h := ProtocolHeader(ProtocolSASL); string(h[:]) != "AMQP\x03\x01\x00\x00" {
		t.Errorf("SASL header %q", h)
	}
	// An open frame built by hand: size, doff 2, type 0, channel 0, then
	// 0x00 0x53 0x10 (described by smallulong 0x10) and a list8 of
	// container-id "c", hostname null, max-frame-size 512 as uint.
	frame := []byte{
		0, 0, 0, 0x17, 2, 0, 0, 0,
		0x00, 0x53, 0x10,
		0xc0, 0x0a, 3,
		0xa1, 1, 'c',
		0x40,
		0x70, 0, 0, 2, 0,
	}
	f, err := DecodeFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	want := Frame{Body: &Open{ContainerID: "c", MaxFrameSize: 512, ChannelMax: 65535}}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Our encoding of the same open is the smallest form.
	enc, err := AppendFrame(nil, Frame{Body: &Open{ContainerID: "c", MaxFrameSize: 512, ChannelMax: 65535}})
	if err != nil {
		t.Fatal(err)
	}
	wantEnc := []byte{0, 0, 0, 0x1a, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xc0, 0x0d, 4,
		0xa1, 1, 'c', 0x40, 0x70, 0, 0, 2, 0, 0x60, 0xff, 0xff}
	if diff := cmp.Diff(wantEnc, enc); diff != "" {
		t.Errorf("encoding (-want +got):\n%s", diff)
	}
	// An empty frame (heartbeat) is just the header.
	hb, _ := AppendFrame(nil, Frame{})
	if diff := cmp.Diff([]byte{0, 0, 0, 8, 2, 0, 0, 0}, hb); diff != "" {
		t.Error(diff)
	}
}

func TestUUIDString(t *testing.T) {
	u := UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
	if got, want := u.String(), "12345678-9abc-def0-0102-030405060708"; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

func TestErrorIs(t *testing.T) {
	err := error(&LinkError{Remote: true, Err: &Error{Condition: ErrCondUnauthorizedAccess, Description: "x"}})
	if !errors.Is(err, &Error{Condition: ErrCondUnauthorizedAccess}) {
		t.Error("errors.Is by condition failed")
	}
	if errors.Is(err, &Error{Condition: ErrCondNotFound}) {
		t.Error("errors.Is matched another condition")
	}
	if errors.Unwrap(&LinkError{}) != nil {
		t.Error("clean LinkError unwraps to non-nil")
	}
	ce := error(&ConnError{IOErr: errors.New("reset")})
	if !errors.Is(ce, ErrConnClosed) {
		t.Error("ConnError is not ErrConnClosed")
	}
}
