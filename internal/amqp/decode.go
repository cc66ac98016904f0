package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// MaxDepth bounds how deeply lists, maps, arrays and described values may
// nest in decoded input.
const MaxDepth = 64

// maxZeroWidthArray caps arrays whose elements take no bytes (null),
// which would otherwise allocate without bound.
const maxZeroWidthArray = 1024

// ErrDecode is wrapped by every decoding error.
var ErrDecode = errors.New("amqp: decode error")

func decodeErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrDecode}, args...)...)
}

// Unmarshal decodes exactly one AMQP value filling all of b.
func Unmarshal(b []byte) (any, error) {
	v, n, err := DecodeValue(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, decodeErrorf("%d trailing bytes", len(b)-n)
	}
	return v, nil
}

// DecodeValue decodes the first AMQP value in b and returns it with the
// number of bytes it used. Every declared size and count is checked
// against the bytes present before anything is allocated, nesting is
// limited to MaxDepth, and malformed input gives an error wrapping
// ErrDecode.
func DecodeValue(b []byte) (v any, n int, err error) {
	d := decoder{buf: b}
	v, err = d.value()
	return v, d.pos, err
}

// decoder reads values from buf starting at pos.
type decoder struct {
	buf   []byte
	pos   int
	depth int
}

func (d *decoder) remaining() int { return len(d.buf) - d.pos }

func (d *decoder) next(n int) ([]byte, error) {
	if n < 0 || n > d.remaining() {
		return nil, decodeErrorf("need %d bytes, have %d", n, d.remaining())
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *decoder) byte() (byte, error) {
	b, err := d.next(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *decoder) uint32() (uint32, error) {
	b, err := d.next(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

func (d *decoder) value() (any, error) {
	code, err := d.byte()
	if err != nil {
		return nil, err
	}
	if code == codeDescribed {
		return d.described()
	}
	return d.valueOf(code)
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > MaxDepth {
		return decodeErrorf("nesting deeper than %d", MaxDepth)
	}
	return nil
}

func (d *decoder) described() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	desc, err := d.value()
	if err != nil {
		return nil, err
	}
	if err := checkDescriptor(desc); err != nil {
		return nil, err
	}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	return Described{Descriptor: desc, Value: v}, nil
}

// checkDescriptor allows the two descriptor forms of section 1.5: a ulong
// code or a symbol name.
func checkDescriptor(desc any) error {
	switch desc.(type) {
	case uint64, Symbol:
		return nil
	}
	return decodeErrorf("descriptor of type %T", desc)
}

// valueOf decodes the value whose constructor code has been read.
func (d *decoder) valueOf(code byte) (any, error) {
	if w := fixedWidth(code); w >= 0 {
		b, err := d.next(w)
		if err != nil {
			return nil, err
		}
		return fixedValue(code, b)
	}
	switch code {
	case codeVbin8, codeStr8, codeSym8, codeVbin32, codeStr32, codeSym32:
		var n int
		if code&0xf0 == 0xa0 {
			c, err := d.byte()
			if err != nil {
				return nil, err
			}
			n = int(c)
		} else {
			c, err := d.uint32()
			if err != nil {
				return nil, err
			}
			if uint64(c) > uint64(d.remaining()) {
				return nil, decodeErrorf("variable width of %d bytes, have %d", c, d.remaining())
			}
			n = int(c)
		}
		b, err := d.next(n)
		if err != nil {
			return nil, err
		}
		return variableValue(code, b)
	case codeList0:
		return []any{}, nil
	case codeList8, codeList32, codeMap8, codeMap32, codeArray8, codeArray32:
		return d.compound(code)
	}
	return nil, decodeErrorf("unknown constructor 0x%02x", code)
}

// fixedWidth returns the number of data bytes after a fixed-width
// constructor, or -1 for other constructors.
func fixedWidth(code byte) int {
	switch code {
	case codeNull, codeTrue, codeFalse, codeUint0, codeUlong0:
		return 0
	case codeBool, codeUbyte, codeByte, codeSmallUint, codeSmallUlong, codeSmallInt, codeSmallLong:
		return 1
	case codeUshort, codeShort:
		return 2
	case codeUint, codeInt, codeFloat, codeChar, codeDecimal32:
		return 4
	case codeUlong, codeLong, codeDouble, codeTimestamp, codeDecimal64:
		return 8
	case codeUUID, codeDecimal128:
		return 16
	}
	return -1
}

func fixedValue(code byte, b []byte) (any, error) {
	switch code {
	case codeNull:
		return nil, nil
	case codeTrue:
		return true, nil
	case codeFalse:
		return false, nil
	case codeUint0:
		return uint32(0), nil
	case codeUlong0:
		return uint64(0), nil
	case codeBool:
		switch b[0] {
		case 0:
			return false, nil
		case 1:
			return true, nil
		}
		return nil, decodeErrorf("boolean byte 0x%02x", b[0])
	case codeUbyte:
		return b[0], nil
	case codeByte:
		return int8(b[0]), nil
	case codeSmallUint:
		return uint32(b[0]), nil
	case codeSmallUlong:
		return uint64(b[0]), nil
	case codeSmallInt:
		return int32(int8(b[0])), nil
	case codeSmallLong:
		return int64(int8(b[0])), nil
	case codeUshort:
		return binary.BigEndian.Uint16(b), nil
	case codeShort:
		return int16(binary.BigEndian.Uint16(b)), nil
	case codeUint:
		return binary.BigEndian.Uint32(b), nil
	case codeInt:
		return int32(binary.BigEndian.Uint32(b)), nil
	case codeFloat:
		return math.Float32frombits(binary.BigEndian.Uint32(b)), nil
	case codeChar:
		return Char(binary.BigEndian.Uint32(b)), nil
	case codeDecimal32:
		return Decimal32(b), nil
	case codeUlong:
		return binary.BigEndian.Uint64(b), nil
	case codeLong:
		return int64(binary.BigEndian.Uint64(b)), nil
	case codeDouble:
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	case codeTimestamp:
		return time.UnixMilli(int64(binary.BigEndian.Uint64(b))).UTC(), nil
	case codeDecimal64:
		return Decimal64(b), nil
	case codeUUID:
		return UUID(b), nil
	case codeDecimal128:
		return Decimal128(b), nil
	}
	return nil, decodeErrorf("unknown constructor 0x%02x", code)
}

func variableValue(code byte, b []byte) (any, error) {
	switch code {
	case codeVbin8, codeVbin32:
		return append([]byte{}, b...), nil
	case codeStr8, codeStr32:
		if !utf8.Valid(b) {
			return nil, decodeErrorf("string is not valid UTF-8")
		}
		return string(b), nil
	}
	return Symbol(b), nil
}

// compound decodes a list, map or array: size, count, then the elements,
// which must fill exactly the declared size.
func (d *decoder) compound(code byte) (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	var size, count uint32
	if code == codeList8 || code == codeMap8 || code == codeArray8 {
		b, err := d.next(2)
		if err != nil {
			return nil, err
		}
		size, count = uint32(b[0]), uint32(b[1])
		if size < 1 {
			return nil, decodeErrorf("compound size %d too small for its count", size)
		}
		size--
	} else {
		b, err := d.next(8)
		if err != nil {
			return nil, err
		}
		size, count = binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
		if size < 4 {
			return nil, decodeErrorf("compound size %d too small for its count", size)
		}
		size -= 4
	}
	if uint64(size) > uint64(d.remaining()) {
		return nil, decodeErrorf("compound of %d bytes, have %d", size, d.remaining())
	}
	// List and map elements take at least one byte each, so a count above
	// the size is a lie; this bounds the slice allocated below by the input
	// length. Arrays are checked once their element constructor is known.
	if count > size && code != codeArray8 && code != codeArray32 {
		return nil, decodeErrorf("count %d exceeds size %d", count, size)
	}
	body := decoder{buf: d.buf[d.pos : d.pos+int(size)], depth: d.depth}
	d.pos += int(size)
	var v any
	var err error
	switch code {
	case codeList8, codeList32:
		v, err = body.listBody(int(count))
	case codeMap8, codeMap32:
		v, err = body.mapBody(int(count))
	default:
		v, err = body.arrayBody(int(count))
	}
	if err != nil {
		return nil, err
	}
	if body.remaining() != 0 {
		return nil, decodeErrorf("%d unused bytes in compound value", body.remaining())
	}
	return v, nil
}

func (d *decoder) listBody(count int) ([]any, error) {
	l := make([]any, count)
	for i := range l {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		l[i] = v
	}
	return l, nil
}

func (d *decoder) mapBody(count int) (Map, error) {
	if count%2 != 0 {
		return nil, decodeErrorf("map with odd count %d", count)
	}
	m := make(Map, count/2)
	for i := range m {
		k, err := d.value()
		if err != nil {
			return nil, err
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[i] = KeyValue{Key: k, Value: v}
	}
	return m, nil
}

func (d *decoder) arrayBody(count int) (Array, error) {
	code, err := d.byte()
	if err != nil {
		return nil, err
	}
	var desc any
	described := code == codeDescribed
	if described {
		if desc, err = d.value(); err != nil {
			return nil, err
		}
		if err := checkDescriptor(desc); err != nil {
			return nil, err
		}
		if code, err = d.byte(); err != nil {
			return nil, err
		}
		if code == codeDescribed {
			return nil, decodeErrorf("nested described array constructor")
		}
	}
	// Elements take at least one byte each, except null elements, which
	// take none and are capped instead.
	if fixedWidth(code) == 0 {
		if count > maxZeroWidthArray {
			return nil, decodeErrorf("array of %d zero-width elements", count)
		}
	} else if count > d.remaining() {
		return nil, decodeErrorf("array count %d exceeds its %d bytes", count, d.remaining())
	}
	a := make(Array, count)
	for i := range a {
		v, err := d.valueOf(code)
		if err != nil {
			return nil, err
		}
		if described {
			v = Described{Descriptor: desc, Value: v}
		}
		a[i] = v
	}
	return a, nil
}
