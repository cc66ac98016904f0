package amqp

import (
	"fmt"
	"time"
)

// Message is a bare or annotated AMQP message (section 3.2). Empty
// sections are not encoded.
type Message struct {
	Header                *Header
	DeliveryAnnotations   Map
	MessageAnnotations    Map
	Properties            *Properties
	ApplicationProperties map[string]any
	// Body: any number of data sections, or amqp-sequence sections, or
	// one amqp-value section. Value nil means no amqp-value section (an
	// amqp-value of null decodes to nil as well).
	Data     [][]byte
	Sequence [][]any
	Value    any
	Footer   Map
}

// Header (0x70) carries delivery details.
type Header struct {
	Durable       bool
	Priority      uint8 // default 4
	TTL           time.Duration
	FirstAcquirer bool
	DeliveryCount uint32
}

// Properties (0x73) are the message's immutable standard properties.
// MessageID and CorrelationID keep their AMQP type: uint64, UUID, []byte
// or string.
type Properties struct {
	MessageID          any
	UserID             []byte
	To                 string
	Subject            string
	ReplyTo            string
	CorrelationID      any
	ContentType        Symbol
	ContentEncoding    Symbol
	AbsoluteExpiryTime time.Time
	CreationTime       time.Time
	GroupID            string
	GroupSequence      *uint32
	ReplyToGroupID     string
}

// MarshalMessage returns the encoded sections of m, as carried in transfer
// payloads.
func MarshalMessage(m *Message) ([]byte, error) {
	return AppendMessage(nil, m)
}

// AppendMessage appends the encoded sections of m to dst.
func AppendMessage(dst []byte, m *Message) ([]byte, error) {
	var err error
	add := func(code uint64, v any) {
		if err == nil {
			dst, err = AppendValue(dst, Described{Descriptor: code, Value: v})
		}
	}
	if h := m.Header; h != nil {
		dst, err = appendComposite(dst, codeHeader, []any{h.Durable, h.Priority,
			durationMillis(h.TTL), h.FirstAcquirer, h.DeliveryCount})
	}
	if m.DeliveryAnnotations != nil {
		add(codeDeliveryAnnotations, m.DeliveryAnnotations)
	}
	if m.MessageAnnotations != nil {
		add(codeMessageAnnotations, m.MessageAnnotations)
	}
	if p := m.Properties; p != nil && err == nil {
		if err = checkMessageID(p.MessageID); err == nil {
			err = checkMessageID(p.CorrelationID)
		}
		if err == nil {
			dst, err = appendComposite(dst, codeProperties, []any{p.MessageID, nilIfEmptyBytes(p.UserID),
				nilIfEmpty(p.To), nilIfEmpty(p.Subject), nilIfEmpty(p.ReplyTo), p.CorrelationID,
				nilIfEmpty(p.ContentType), nilIfEmpty(p.ContentEncoding), nilIfZeroTime(p.AbsoluteExpiryTime),
				nilIfZeroTime(p.CreationTime), nilIfEmpty(p.GroupID), optional(p.GroupSequence),
				nilIfEmpty(p.ReplyToGroupID)})
		}
	}
	if m.ApplicationProperties != nil {
		add(codeApplicationProperties, m.ApplicationProperties)
	}
	for _, d := range m.Data {
		if d == nil {
			d = []byte{}
		}
		add(codeData, d)
	}
	for _, s := range m.Sequence {
		if s == nil {
			s = []any{}
		}
		add(codeAMQPSequence, s)
	}
	if m.Value != nil {
		add(codeAMQPValue, m.Value)
	}
	if m.Footer != nil {
		add(codeFooter, m.Footer)
	}
	if err != nil {
		return dst, fmt.Errorf("encode message: %w", err)
	}
	return dst, nil
}

// checkMessageID allows the four message-id types of section 3.2.5.
func checkMessageID(id any) error {
	switch id.(type) {
	case nil, uint64, UUID, []byte, string:
		return nil
	}
	return fmt.Errorf("%w: message id of type %T", ErrEncode, id)
}

// UnmarshalMessage decodes the sections of a message.
func UnmarshalMessage(b []byte) (*Message, error) {
	m := &Message{}
	for pos := 0; pos < len(b); {
		v, n, err := DecodeValue(b[pos:])
		if err != nil {
			return nil, fmt.Errorf("message section at %d: %w", pos, err)
		}
		pos += n
		if err := m.addSection(v); err != nil {
			return nil, fmt.Errorf("message section at %d: %w", pos, err)
		}
	}
	return m, nil
}

func (m *Message) addSection(v any) error {
	d, ok := v.(Described)
	if !ok {
		return decodeErrorf("section is %T, not described", v)
	}
	code, _ := descriptorCode(d.Descriptor)
	switch code {
	case codeHeader:
		c, err := listFields(d.Value, "header")
		if err != nil {
			return err
		}
		m.Header = &Header{Durable: c.bool(0, false), Priority: c.uint8(1, 4), TTL: c.milliseconds(2),
			FirstAcquirer: c.bool(3, false), DeliveryCount: c.uint32(4, 0)}
		return c.err
	case codeDeliveryAnnotations, codeMessageAnnotations, codeFooter:
		mp, ok := d.Value.(Map)
		if !ok && d.Value != nil {
			return decodeErrorf("%s is %T, not a map", descriptorName(code), d.Value)
		}
		if mp == nil {
			mp = Map{}
		}
		switch code {
		case codeDeliveryAnnotations:
			m.DeliveryAnnotations = mp
		case codeMessageAnnotations:
			m.MessageAnnotations = mp
		default:
			m.Footer = mp
		}
	case codeProperties:
		c, err := listFields(d.Value, "properties")
		if err != nil {
			return err
		}
		m.Properties = &Properties{MessageID: c.messageID(0), UserID: c.binary(1), To: c.string(2),
			Subject: c.string(3), ReplyTo: c.string(4), CorrelationID: c.messageID(5),
			ContentType: c.symbol(6), ContentEncoding: c.symbol(7), AbsoluteExpiryTime: c.timestamp(8),
			CreationTime: c.timestamp(9), GroupID: c.string(10), GroupSequence: c.optUint32(11),
			ReplyToGroupID: c.string(12)}
		return c.err
	case codeApplicationProperties:
		mp, ok := d.Value.(Map)
		if !ok && d.Value != nil {
			return decodeErrorf("application-properties is %T, not a map", d.Value)
		}
		props := make(map[string]any, len(mp))
		for _, kv := range mp {
			k, ok := kv.Key.(string)
			if !ok {
				return decodeErrorf("application-properties key of type %T", kv.Key)
			}
			props[k] = kv.Value
		}
		m.ApplicationProperties = props
	case codeData:
		b, ok := d.Value.([]byte)
		if !ok {
			return decodeErrorf("data section is %T, not binary", d.Value)
		}
		m.Data = append(m.Data, b)
	case codeAMQPSequence:
		l, ok := d.Value.([]any)
		if !ok {
			return decodeErrorf("amqp-sequence section is %T, not a list", d.Value)
		}
		m.Sequence = append(m.Sequence, l)
	case codeAMQPValue:
		m.Value = d.Value
	default:
		return decodeErrorf("unknown message section %v", d.Descriptor)
	}
	return nil
}

func (c *composite) messageID(i int) any {
	v := c.get(i)
	if err := checkMessageID(v); err != nil {
		c.fail(i, "ulong, uuid, binary or string")
		return nil
	}
	return v
}
