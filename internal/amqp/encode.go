package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"
)

// Type codes (constructors) from section 1.6 of the specification.
const (
	codeDescribed  = 0x00
	codeNull       = 0x40
	codeBool       = 0x56
	codeTrue       = 0x41
	codeFalse      = 0x42
	codeUbyte      = 0x50
	codeUshort     = 0x60
	codeUint       = 0x70
	codeSmallUint  = 0x52
	codeUint0      = 0x43
	codeUlong      = 0x80
	codeSmallUlong = 0x53
	codeUlong0     = 0x44
	codeByte       = 0x51
	codeShort      = 0x61
	codeInt        = 0x71
	codeSmallInt   = 0x54
	codeLong       = 0x81
	codeSmallLong  = 0x55
	codeFloat      = 0x72
	codeDouble     = 0x82
	codeDecimal32  = 0x74
	codeDecimal64  = 0x84
	codeDecimal128 = 0x94
	codeChar       = 0x73
	codeTimestamp  = 0x83
	codeUUID       = 0x98
	codeVbin8      = 0xa0
	codeVbin32     = 0xb0
	codeStr8       = 0xa1
	codeStr32      = 0xb1
	codeSym8       = 0xa3
	codeSym32      = 0xb3
	codeList0      = 0x45
	codeList8      = 0xc0
	codeList32     = 0xd0
	codeMap8       = 0xc1
	codeMap32      = 0xd1
	codeArray8     = 0xe0
	codeArray32    = 0xf0
)

// ErrEncode is wrapped by every encoding error.
var ErrEncode = errors.New("amqp: cannot encode")

// Marshal returns the AMQP encoding of v, using the smallest encoding of
// each value. See the package documentation for the Go types accepted.
func Marshal(v any) ([]byte, error) {
	return AppendValue(nil, v)
}

// AppendValue appends the AMQP encoding of v to dst.
func AppendValue(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, codeNull), nil
	case bool:
		if v {
			return append(dst, codeTrue), nil
		}
		return append(dst, codeFalse), nil
	case uint8:
		return append(dst, codeUbyte, v), nil
	case uint16:
		return binary.BigEndian.AppendUint16(append(dst, codeUshort), v), nil
	case uint32:
		return appendUint32(dst, v), nil
	case uint64:
		return appendUint64(dst, v), nil
	case uint:
		return appendUint64(dst, uint64(v)), nil
	case int8:
		return append(dst, codeByte, byte(v)), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(dst, codeShort), uint16(v)), nil
	case int32:
		if v >= math.MinInt8 && v <= math.MaxInt8 {
			return append(dst, codeSmallInt, byte(int8(v))), nil
		}
		return binary.BigEndian.AppendUint32(append(dst, codeInt), uint32(v)), nil
	case int64:
		return appendInt64(dst, v), nil
	case int:
		return appendInt64(dst, int64(v)), nil
	case float32:
		return binary.BigEndian.AppendUint32(append(dst, codeFloat), math.Float32bits(v)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, codeDouble), math.Float64bits(v)), nil
	case Decimal32:
		return append(append(dst, codeDecimal32), v[:]...), nil
	case Decimal64:
		return append(append(dst, codeDecimal64), v[:]...), nil
	case Decimal128:
		return append(append(dst, codeDecimal128), v[:]...), nil
	case Char:
		return binary.BigEndian.AppendUint32(append(dst, codeChar), uint32(v)), nil
	case time.Time:
		return binary.BigEndian.AppendUint64(append(dst, codeTimestamp), uint64(v.UnixMilli())), nil
	case UUID:
		return append(append(dst, codeUUID), v[:]...), nil
	case []byte:
		return appendVariable(dst, codeVbin8, codeVbin32, v), nil
	case Binary:
		return appendVariable(dst, codeVbin8, codeVbin32, v), nil
	case string:
		if !utf8.ValidString(v) {
			return dst, fmt.Errorf("%w: string is not valid UTF-8", ErrEncode)
		}
		return appendVariable(dst, codeStr8, codeStr32, []byte(v)), nil
	case Symbol:
		return appendVariable(dst, codeSym8, codeSym32, []byte(v)), nil
	case []Symbol:
		a := make(Array, len(v))
		for i, s := range v {
			a[i] = s
		}
		return appendArray(dst, a)
	case []any:
		return appendList(dst, v)
	case Map:
		return appendMap(dst, v)
	case map[string]any:
		return appendMap(dst, stringMap(v))
	case Array:
		return appendArray(dst, v)
	case Described:
		dst = append(dst, codeDescribed)
		dst, err := AppendValue(dst, v.Descriptor)
		if err != nil {
			return dst, err
		}
		return AppendValue(dst, v.Value)
	case *Described:
		if v == nil {
			return append(dst, codeNull), nil
		}
		return AppendValue(dst, *v)
	case *Error:
		if v == nil {
			return append(dst, codeNull), nil
		}
		return appendComposite(dst, codeError, v.fields())
	}
	return dst, fmt.Errorf("%w: unsupported Go type %T", ErrEncode, v)
}

// stringMap converts a Go map to a Map with string keys in sorted order,
// so that the encoding is deterministic.
func stringMap(m map[string]any) Map {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(Map, len(keys))
	for i, k := range keys {
		out[i] = KeyValue{Key: k, Value: m[k]}
	}
	return out
}

func appendUint32(dst []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(dst, codeUint0)
	case v <= math.MaxUint8:
		return append(dst, codeSmallUint, byte(v))
	}
	return binary.BigEndian.AppendUint32(append(dst, codeUint), v)
}

func appendUint64(dst []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(dst, codeUlong0)
	case v <= math.MaxUint8:
		return append(dst, codeSmallUlong, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, codeUlong), v)
}

func appendInt64(dst []byte, v int64) []byte {
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		return append(dst, codeSmallLong, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint64(append(dst, codeLong), uint64(v))
}

func appendVariable(dst []byte, code8, code32 byte, b []byte) []byte {
	if len(b) <= math.MaxUint8 {
		dst = append(dst, code8, byte(len(b)))
	} else {
		dst = binary.BigEndian.AppendUint32(append(dst, code32), uint32(len(b)))
	}
	return append(dst, b...)
}

// appendCompound writes a list or map whose count elements are already
// encoded in body, choosing the 8-bit form when size and count fit.
func appendCompound(dst []byte, code8, code32 byte, count int, body []byte) []byte {
	if count <= math.MaxUint8 && len(body)+1 <= math.MaxUint8 {
		dst = append(dst, code8, byte(len(body)+1), byte(count))
	} else {
		dst = append(dst, code32)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)+4))
		dst = binary.BigEndian.AppendUint32(dst, uint32(count))
	}
	return append(dst, body...)
}

func appendList(dst []byte, l []any) ([]byte, error) {
	if len(l) == 0 {
		return append(dst, codeList0), nil
	}
	var body []byte
	for _, e := range l {
		var err error
		if body, err = AppendValue(body, e); err != nil {
			return dst, err
		}
	}
	return appendCompound(dst, codeList8, codeList32, len(l), body), nil
}

func appendMap(dst []byte, m Map) ([]byte, error) {
	var body []byte
	for _, kv := range m {
		var err error
		if body, err = AppendValue(body, kv.Key); err != nil {
			return dst, err
		}
		if body, err = AppendValue(body, kv.Value); err != nil {
			return dst, err
		}
	}
	return appendCompound(dst, codeMap8, codeMap32, 2*len(m), body), nil
}

// appendComposite writes a described list, dropping trailing null fields
// as section 1.4 allows.
func appendComposite(dst []byte, code uint64, fields []any) ([]byte, error) {
	for len(fields) > 0 && isNull(fields[len(fields)-1]) {
		fields = fields[:len(fields)-1]
	}
	dst = appendUint64(append(dst, codeDescribed), code)
	return appendList(dst, fields)
}

// isNull reports whether v encodes as null.
func isNull(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case *Error:
		return v == nil
	case *Described:
		return v == nil
	}
	return false
}

// appendArray writes an array with one constructor chosen from the first
// element; every element must have the same Go type (and, for described
// elements, the same descriptor).
func appendArray(dst []byte, a Array) ([]byte, error) {
	if len(a) == 0 {
		return append(dst, codeArray8, 2, 0, codeNull), nil
	}
	ctor, err := arrayConstructor(a)
	if err != nil {
		return dst, err
	}
	body := ctor
	for i, e := range a {
		if d, ok := e.(Described); ok {
			e = d.Value
		}
		if body, err = appendArrayElement(body, ctor[len(ctor)-1], e); err != nil {
			return dst, fmt.Errorf("array element %d: %w", i, err)
		}
	}
	if len(a) <= math.MaxUint8 && len(body)+1 <= math.MaxUint8 {
		dst = append(dst, codeArray8, byte(len(body)+1), byte(len(a)))
	} else {
		dst = append(dst, codeArray32)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)+4))
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(a)))
	}
	return append(dst, body...), nil
}

// arrayConstructor returns the constructor bytes shared by all elements:
// the element type code, preceded by 0x00 and the descriptor for described
// elements.
func arrayConstructor(a Array) ([]byte, error) {
	first := a[0]
	var ctor []byte
	if d, ok := first.(Described); ok {
		var err error
		if ctor, err = AppendValue([]byte{codeDescribed}, d.Descriptor); err != nil {
			return nil, err
		}
		for _, e := range a {
			ed, ok := e.(Described)
			if !ok || !sameValue(ed.Descriptor, d.Descriptor) {
				return nil, fmt.Errorf("%w: array elements must share one descriptor", ErrEncode)
			}
		}
		first = d.Value
		values := make(Array, len(a))
		for i, e := range a {
			values[i] = e.(Described).Value
		}
		a = values
	}
	code, err := arrayElementCode(first, a)
	if err != nil {
		return nil, err
	}
	return append(ctor, code), nil
}

// arrayElementCode picks the element constructor: the widest encoding any
// element needs.
func arrayElementCode(first any, a Array) (byte, error) {
	sameType := func() bool {
		for _, e := range a {
			if fmt.Sprintf("%T", e) != fmt.Sprintf("%T", first) {
				return false
			}
		}
		return true
	}
	if !sameType() {
		return 0, fmt.Errorf("%w: array elements must share one type", ErrEncode)
	}
	switch first.(type) {
	case nil:
		return codeNull, nil
	case bool:
		return codeBool, nil
	case uint8:
		return codeUbyte, nil
	case uint16:
		return codeUshort, nil
	case uint32:
		for _, e := range a {
			if e.(uint32) > math.MaxUint8 {
				return codeUint, nil
			}
		}
		return codeSmallUint, nil
	case uint64:
		for _, e := range a {
			if e.(uint64) > math.MaxUint8 {
				return codeUlong, nil
			}
		}
		return codeSmallUlong, nil
	case int8:
		return codeByte, nil
	case int16:
		return codeShort, nil
	case int32:
		for _, e := range a {
			if v := e.(int32); v < math.MinInt8 || v > math.MaxInt8 {
				return codeInt, nil
			}
		}
		return codeSmallInt, nil
	case int64:
		for _, e := range a {
			if v := e.(int64); v < math.MinInt8 || v > math.MaxInt8 {
				return codeLong, nil
			}
		}
		return codeSmallLong, nil
	case float32:
		return codeFloat, nil
	case float64:
		return codeDouble, nil
	case Decimal32:
		return codeDecimal32, nil
	case Decimal64:
		return codeDecimal64, nil
	case Decimal128:
		return codeDecimal128, nil
	case Char:
		return codeChar, nil
	case time.Time:
		return codeTimestamp, nil
	case UUID:
		return codeUUID, nil
	case []byte, Binary:
		return widest(a, codeVbin8, codeVbin32, func(e any) int { return bytesLen(e) }), nil
	case string:
		return widest(a, codeStr8, codeStr32, func(e any) int { return len(e.(string)) }), nil
	case Symbol:
		return widest(a, codeSym8, codeSym32, func(e any) int { return len(e.(Symbol)) }), nil
	case []any:
		return codeList32, nil
	case Map:
		return codeMap32, nil
	case Array:
		return codeArray32, nil
	}
	return 0, fmt.Errorf("%w: unsupported array element type %T", ErrEncode, first)
}

func bytesLen(e any) int {
	if b, ok := e.(Binary); ok {
		return len(b)
	}
	return len(e.([]byte))
}

func widest(a Array, code8, code32 byte, length func(any) int) byte {
	for _, e := range a {
		if length(e) > math.MaxUint8 {
			return code32
		}
	}
	return code8
}

// appendArrayElement writes one array element without its constructor.
func appendArrayElement(dst []byte, code byte, v any) ([]byte, error) {
	switch code {
	case codeNull:
		return dst, nil
	case codeBool:
		if v.(bool) {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case codeSmallUint:
		return append(dst, byte(v.(uint32))), nil
	case codeSmallUlong:
		return append(dst, byte(v.(uint64))), nil
	case codeSmallInt:
		return append(dst, byte(int8(v.(int32)))), nil
	case codeSmallLong:
		return append(dst, byte(int8(v.(int64)))), nil
	case codeUint:
		return binary.BigEndian.AppendUint32(dst, v.(uint32)), nil
	case codeUlong:
		return binary.BigEndian.AppendUint64(dst, v.(uint64)), nil
	case codeInt:
		return binary.BigEndian.AppendUint32(dst, uint32(v.(int32))), nil
	case codeLong:
		return binary.BigEndian.AppendUint64(dst, uint64(v.(int64))), nil
	case codeVbin8, codeStr8, codeSym8:
		b := variableBytes(v)
		return append(append(dst, byte(len(b))), b...), nil
	case codeVbin32, codeStr32, codeSym32:
		b := variableBytes(v)
		return append(binary.BigEndian.AppendUint32(dst, uint32(len(b))), b...), nil
	case codeList32, codeMap32, codeArray32:
		enc, err := AppendValue(nil, v)
		if err != nil {
			return dst, err
		}
		return append(dst, widenCompound(enc)...), nil
	}
	// Fixed-width types: the encoding minus its constructor byte.
	enc, err := AppendValue(nil, v)
	if err != nil {
		return dst, err
	}
	return append(dst, enc[1:]...), nil
}

func variableBytes(v any) []byte {
	switch v := v.(type) {
	case string:
		return []byte(v)
	case Symbol:
		return []byte(v)
	case Binary:
		return v
	}
	return v.([]byte)
}

// widenCompound turns an encoded list, map or array (any width) into the
// 32-bit form without its constructor, as array elements need.
func widenCompound(enc []byte) []byte {
	var size, count uint32
	var body []byte
	switch enc[0] {
	case codeList0:
		return []byte{0, 0, 0, 4, 0, 0, 0, 0}
	case codeList8, codeMap8, codeArray8:
		count, body = uint32(enc[2]), enc[3:]
	default:
		return enc[1:]
	}
	size = uint32(len(body)) + 4
	out := binary.BigEndian.AppendUint32(nil, size)
	out = binary.BigEndian.AppendUint32(out, count)
	return append(out, body...)
}
