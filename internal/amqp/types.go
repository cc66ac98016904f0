package amqp

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"time"
)

// The Go types below, together with nil, bool, the sized integer types
// (uint8…uint64, int8…int64), float32, float64, string, []byte, time.Time
// and []any, represent every AMQP 1.0 value:
//
//	AMQP          Go
//	null          nil
//	boolean       bool
//	ubyte…ulong   uint8, uint16, uint32, uint64
//	byte…long     int8, int16, int32, int64
//	float/double  float32, float64
//	decimalN      Decimal32, Decimal64, Decimal128 (opaque bytes)
//	char          Char
//	timestamp     time.Time (UTC, millisecond precision)
//	uuid          UUID
//	binary        []byte (Binary is accepted when encoding)
//	string        string
//	symbol        Symbol
//	list          []any
//	map           Map (ordered, keys keep their AMQP type)
//	array         Array
//	described     Described
//
// Integer widths are kept distinct so that a value decoded and encoded
// again keeps its wire type; Go's int and uint encode as long and ulong.

// Symbol is an AMQP symbol: an ASCII string used for names and keys.
type Symbol string

// Binary is an AMQP binary value. The decoder returns binary values as
// plain []byte; Binary is accepted by the encoder as well.
type Binary []byte

// Char is an AMQP char: one UTF-32 code point.
type Char rune

// Decimal32 is an IEEE 754 decimal32 value, kept as its raw bytes.
type Decimal32 [4]byte

// Decimal64 is an IEEE 754 decimal64 value, kept as its raw bytes.
type Decimal64 [8]byte

// Decimal128 is an IEEE 754 decimal128 value, kept as its raw bytes.
type Decimal128 [16]byte

// UUID is an AMQP uuid: 16 bytes in network order.
type UUID [16]byte

// String returns the canonical 8-4-4-4-12 hexadecimal form.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// Described is a described type: a descriptor (a uint64 code or a Symbol
// name) followed by the value it describes.
type Described struct {
	Descriptor any
	Value      any
}

// KeyValue is one entry of a Map.
type KeyValue struct {
	Key   any
	Value any
}

// Map is an AMQP map. It is a slice so that entry order and the AMQP type
// of each key (symbol, string, ulong…) survive a decode and encode.
type Map []KeyValue

// Get returns the value stored under key, comparing keys by AMQP type and
// value: Symbol("a") and "a" are different keys.
func (m Map) Get(key any) (any, bool) {
	for _, kv := range m {
		if sameValue(kv.Key, key) {
			return kv.Value, true
		}
	}
	return nil, false
}

// Set replaces the value stored under key, or appends a new entry.
func (m *Map) Set(key, value any) {
	for i, kv := range *m {
		if sameValue(kv.Key, key) {
			(*m)[i].Value = value
			return
		}
	}
	*m = append(*m, KeyValue{Key: key, Value: value})
}

// sameValue reports whether two map keys are equal. Keys are primitives in
// practice; binary keys compare by content and anything not comparable is
// never equal.
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case []byte:
		b, ok := b.([]byte)
		return ok && bytes.Equal(a, b)
	case Binary:
		b, ok := b.(Binary)
		return ok && bytes.Equal(a, b)
	case time.Time:
		b, ok := b.(time.Time)
		return ok && a.Equal(b)
	case nil, bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64,
		float32, float64, Char, string, Symbol, UUID, Decimal32, Decimal64, Decimal128:
		return a == b
	}
	return false
}

// Array is an AMQP array: a sequence of values that share one type, so one
// constructor on the wire. Elements are all of the same Go type (for
// example all Symbol, or all Described with the same descriptor). An empty
// Array encodes as an array of null.
type Array []any

// Error is the AMQP error type (descriptor 0x1d), carried by close, end,
// detach and the rejected outcome. It implements error.
type Error struct {
	Condition   Symbol
	Description string
	Info        Map
}

func (e *Error) Error() string {
	if e.Description == "" {
		return "amqp: " + string(e.Condition)
	}
	return fmt.Sprintf("amqp: %s: %s", e.Condition, e.Description)
}

// Is matches another *Error with the same condition, so that
// errors.Is(err, &Error{Condition: ErrCondUnauthorizedAccess}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Condition == e.Condition
}

// Error conditions defined by the specification (section 2.8.15 to 2.8.18).
const (
	ErrCondInternalError         Symbol = "amqp:internal-error"
	ErrCondNotFound              Symbol = "amqp:not-found"
	ErrCondUnauthorizedAccess    Symbol = "amqp:unauthorized-access"
	ErrCondDecodeError           Symbol = "amqp:decode-error"
	ErrCondResourceLimitExceeded Symbol = "amqp:resource-limit-exceeded"
	ErrCondNotAllowed            Symbol = "amqp:not-allowed"
	ErrCondInvalidField          Symbol = "amqp:invalid-field"
	ErrCondNotImplemented        Symbol = "amqp:not-implemented"
	ErrCondResourceLocked        Symbol = "amqp:resource-locked"
	ErrCondPreconditionFailed    Symbol = "amqp:precondition-failed"
	ErrCondResourceDeleted       Symbol = "amqp:resource-deleted"
	ErrCondIllegalState          Symbol = "amqp:illegal-state"
	ErrCondFrameSizeTooSmall     Symbol = "amqp:frame-size-too-small"

	ErrCondConnectionForced Symbol = "amqp:connection:forced"
	ErrCondFramingError     Symbol = "amqp:connection:framing-error"

	ErrCondWindowViolation  Symbol = "amqp:session:window-violation"
	ErrCondErrantLink       Symbol = "amqp:session:errant-link"
	ErrCondHandleInUse      Symbol = "amqp:session:handle-in-use"
	ErrCondUnattachedHandle Symbol = "amqp:session:unattached-handle"

	ErrCondDetachForced          Symbol = "amqp:link:detach-forced"
	ErrCondTransferLimitExceeded Symbol = "amqp:link:transfer-limit-exceeded"
	ErrCondMessageSizeExceeded   Symbol = "amqp:link:message-size-exceeded"
	ErrCondLinkRedirect          Symbol = "amqp:link:redirect"
	ErrCondStolen                Symbol = "amqp:link:stolen"
)
