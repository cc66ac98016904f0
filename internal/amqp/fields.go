package amqp

import (
	"fmt"
	"math"
	"time"
)

// composite is the decoded list of a described composite type (section
// 1.4). Its getters read field i, giving the default for an absent or null
// field, and record the first type mismatch in err.
type composite struct {
	name   string
	fields []any
	err    error
}

func (c *composite) get(i int) any {
	if i < len(c.fields) {
		return c.fields[i]
	}
	return nil
}

func (c *composite) fail(i int, want string) {
	if c.err == nil {
		c.err = decodeErrorf("%s field %d: want %s, got %T", c.name, i, want, c.get(i))
	}
}

// present reports whether field i is there and not null.
func (c *composite) present(i int) bool { return c.get(i) != nil }

func (c *composite) uint64(i int, def uint64) uint64 {
	switch v := c.get(i).(type) {
	case nil:
		return def
	case uint8:
		return uint64(v)
	case uint16:
		return uint64(v)
	case uint32:
		return uint64(v)
	case uint64:
		return v
	}
	c.fail(i, "unsigned integer")
	return def
}

func (c *composite) uint32(i int, def uint32) uint32 {
	v := c.uint64(i, uint64(def))
	if v > math.MaxUint32 {
		c.fail(i, "uint")
		return def
	}
	return uint32(v)
}

func (c *composite) uint16(i int, def uint16) uint16 {
	v := c.uint64(i, uint64(def))
	if v > math.MaxUint16 {
		c.fail(i, "ushort")
		return def
	}
	return uint16(v)
}

func (c *composite) uint8(i int, def uint8) uint8 {
	v := c.uint64(i, uint64(def))
	if v > math.MaxUint8 {
		c.fail(i, "ubyte")
		return def
	}
	return uint8(v)
}

// optUint32 returns nil for an absent field.
func (c *composite) optUint32(i int) *uint32 {
	if !c.present(i) {
		return nil
	}
	v := c.uint32(i, 0)
	return &v
}

func (c *composite) bool(i int, def bool) bool {
	switch v := c.get(i).(type) {
	case nil:
		return def
	case bool:
		return v
	}
	c.fail(i, "boolean")
	return def
}

func (c *composite) string(i int) string {
	switch v := c.get(i).(type) {
	case nil:
		return ""
	case string:
		return v
	}
	c.fail(i, "string")
	return ""
}

func (c *composite) symbol(i int) Symbol {
	switch v := c.get(i).(type) {
	case nil:
		return ""
	case Symbol:
		return v
	}
	c.fail(i, "symbol")
	return ""
}

func (c *composite) binary(i int) []byte {
	switch v := c.get(i).(type) {
	case nil:
		return nil
	case []byte:
		return v
	}
	c.fail(i, "binary")
	return nil
}

func (c *composite) timestamp(i int) time.Time {
	switch v := c.get(i).(type) {
	case nil:
		return time.Time{}
	case time.Time:
		return v
	}
	c.fail(i, "timestamp")
	return time.Time{}
}

func (c *composite) milliseconds(i int) time.Duration {
	return time.Duration(c.uint32(i, 0)) * time.Millisecond
}

// symbols reads a "multiple" symbol field: one symbol or an array of them.
func (c *composite) symbols(i int) []Symbol {
	switch v := c.get(i).(type) {
	case nil:
		return nil
	case Symbol:
		return []Symbol{v}
	case Array:
		out := make([]Symbol, 0, len(v))
		for _, e := range v {
			s, ok := e.(Symbol)
			if !ok {
				c.fail(i, "array of symbol")
				return nil
			}
			out = append(out, s)
		}
		return out
	}
	c.fail(i, "symbol or array of symbol")
	return nil
}

func (c *composite) fieldMap(i int) Map {
	switch v := c.get(i).(type) {
	case nil:
		return nil
	case Map:
		return v
	}
	c.fail(i, "map")
	return nil
}

func (c *composite) error(i int) *Error {
	v := c.get(i)
	if v == nil {
		return nil
	}
	e, err := errorFromValue(v)
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("%s field %d: %w", c.name, i, err)
	}
	return e
}

// describedFields unwraps a described list whose descriptor is code (or its
// symbolic name) into a composite.
func describedFields(v any, code uint64) (*composite, error) {
	d, ok := v.(Described)
	if !ok {
		return nil, decodeErrorf("want described %s, got %T", descriptorName(code), v)
	}
	if got, ok := descriptorCode(d.Descriptor); !ok || got != code {
		return nil, decodeErrorf("want descriptor %s, got %v", descriptorName(code), d.Descriptor)
	}
	return listFields(d.Value, descriptorName(code))
}

func listFields(v any, name string) (*composite, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, decodeErrorf("%s: want list, got %T", name, v)
	}
	return &composite{name: name, fields: l}, nil
}

// Descriptor codes of the composite types this package knows.
const (
	codeError       = 0x1d
	codeOpen        = 0x10
	codeBegin       = 0x11
	codeAttach      = 0x12
	codeFlow        = 0x13
	codeTransfer    = 0x14
	codeDisposition = 0x15
	codeDetach      = 0x16
	codeEnd         = 0x17
	codeClose       = 0x18

	codeReceived = 0x23
	codeAccepted = 0x24
	codeRejected = 0x25
	codeReleased = 0x26
	codeModified = 0x27
	codeSource   = 0x28
	codeTarget   = 0x29

	codeSASLMechanisms = 0x40
	codeSASLInit       = 0x41
	codeSASLChallenge  = 0x42
	codeSASLResponse   = 0x43
	codeSASLOutcome    = 0x44

	codeHeader                = 0x70
	codeDeliveryAnnotations   = 0x71
	codeMessageAnnotations    = 0x72
	codeProperties            = 0x73
	codeApplicationProperties = 0x74
	codeData                  = 0x75
	codeAMQPSequence          = 0x76
	codeAMQPValue             = 0x77
	codeFooter                = 0x78
)

// descriptorNames maps codes to the symbolic descriptors of the
// specification, which a peer may send instead of the code.
var descriptorNames = map[uint64]Symbol{
	codeError: "amqp:error:list", codeOpen: "amqp:open:list", codeBegin: "amqp:begin:list",
	codeAttach: "amqp:attach:list", codeFlow: "amqp:flow:list", codeTransfer: "amqp:transfer:list",
	codeDisposition: "amqp:disposition:list", codeDetach: "amqp:detach:list", codeEnd: "amqp:end:list",
	codeClose: "amqp:close:list", codeReceived: "amqp:received:list", codeAccepted: "amqp:accepted:list",
	codeRejected: "amqp:rejected:list", codeReleased: "amqp:released:list", codeModified: "amqp:modified:list",
	codeSource: "amqp:source:list", codeTarget: "amqp:target:list",
	codeSASLMechanisms: "amqp:sasl-mechanisms:list", codeSASLInit: "amqp:sasl-init:list",
	codeSASLChallenge: "amqp:sasl-challenge:list", codeSASLResponse: "amqp:sasl-response:list",
	codeSASLOutcome: "amqp:sasl-outcome:list",
	codeHeader:      "amqp:header:list", codeDeliveryAnnotations: "amqp:delivery-annotations:map",
	codeMessageAnnotations: "amqp:message-annotations:map", codeProperties: "amqp:properties:list",
	codeApplicationProperties: "amqp:application-properties:map", codeData: "amqp:data:binary",
	codeAMQPSequence: "amqp:amqp-sequence:list", codeAMQPValue: "amqp:amqp-value:*",
	codeFooter: "amqp:footer:map",
}

var descriptorCodes = func() map[Symbol]uint64 {
	m := make(map[Symbol]uint64, len(descriptorNames))
	for c, n := range descriptorNames {
		m[n] = c
	}
	return m
}()

// DescriptorCode returns the numeric code of a descriptor given as a code
// (a uint64) or as a symbolic name this package knows, such as
// "amqp:message-annotations:map" for 0x72.
func DescriptorCode(desc any) (uint64, bool) { return descriptorCode(desc) }

// descriptorCode returns the numeric code of a descriptor given as a code
// or as a known symbolic name.
func descriptorCode(desc any) (uint64, bool) {
	switch d := desc.(type) {
	case uint64:
		return d, true
	case Symbol:
		c, ok := descriptorCodes[d]
		return c, ok
	}
	return 0, false
}

func descriptorName(code uint64) string {
	if n, ok := descriptorNames[code]; ok {
		return string(n)
	}
	return fmt.Sprintf("0x%x", code)
}

// fields returns the error's list fields for encoding.
func (e *Error) fields() []any {
	return []any{e.Condition, nilIfEmpty(e.Description), nilIfEmptyMap(e.Info)}
}

// errorFromValue decodes a described error (0x1d).
func errorFromValue(v any) (*Error, error) {
	c, err := describedFields(v, codeError)
	if err != nil {
		return nil, err
	}
	e := &Error{Condition: c.symbol(0), Description: c.string(1), Info: c.fieldMap(2)}
	if c.err == nil && e.Condition == "" {
		c.err = decodeErrorf("error without condition")
	}
	return e, c.err
}

// nilIfEmpty keeps an empty string field absent on the wire.
func nilIfEmpty[T ~string](s T) any {
	if s == "" {
		return nil
	}
	return s
}

func nilIfEmptyMap(m Map) any {
	if m == nil {
		return nil
	}
	return m
}

func nilIfEmptyBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func nilIfZeroTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// optional returns the pointed-to value, or nil for an absent field.
func optional[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// symbolsField encodes a "multiple" symbol field.
func symbolsField(s []Symbol) any {
	switch len(s) {
	case 0:
		return nil
	case 1:
		return s[0]
	}
	return s
}

func durationMillis(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	ms := d.Milliseconds()
	if ms > math.MaxUint32 {
		ms = math.MaxUint32
	}
	return uint32(ms)
}
