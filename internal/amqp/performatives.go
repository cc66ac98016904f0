package amqp

import (
	"math"
	"time"
)

// Body is a frame body: a performative (open, begin, attach, flow,
// transfer, disposition, detach, end, close) or a SASL frame. Each is
// encoded as a described list (section 2.7).
type Body interface {
	descriptor() uint64
	fields() []any
	decodeFields(c *composite)
}

// AppendBody appends the encoding of b to dst.
func AppendBody(dst []byte, b Body) ([]byte, error) {
	return appendComposite(dst, b.descriptor(), b.fields())
}

// DecodeBody decodes the performative or SASL frame at the start of buf and
// returns it with the number of bytes used; what follows is a transfer's
// payload. Absent and null fields take the defaults of the specification.
func DecodeBody(buf []byte) (Body, int, error) {
	v, n, err := DecodeValue(buf)
	if err != nil {
		return nil, 0, err
	}
	d, ok := v.(Described)
	if !ok {
		return nil, 0, decodeErrorf("frame body is %T, not a described list", v)
	}
	code, _ := descriptorCode(d.Descriptor)
	var b Body
	switch code {
	case codeOpen:
		b = &Open{}
	case codeBegin:
		b = &Begin{}
	case codeAttach:
		b = &Attach{}
	case codeFlow:
		b = &Flow{}
	case codeTransfer:
		b = &Transfer{}
	case codeDisposition:
		b = &Disposition{}
	case codeDetach:
		b = &Detach{}
	case codeEnd:
		b = &End{}
	case codeClose:
		b = &Close{}
	case codeSASLMechanisms:
		b = &SASLMechanisms{}
	case codeSASLInit:
		b = &SASLInit{}
	case codeSASLChallenge:
		b = &SASLChallenge{}
	case codeSASLResponse:
		b = &SASLResponse{}
	case codeSASLOutcome:
		b = &SASLOutcome{}
	default:
		return nil, 0, decodeErrorf("unknown frame body descriptor %v", d.Descriptor)
	}
	c, err := listFields(d.Value, descriptorName(code))
	if err != nil {
		return nil, 0, err
	}
	b.decodeFields(c)
	if c.err != nil {
		return nil, 0, c.err
	}
	return b, n, nil
}

// mandatory records an error for a missing mandatory field.
func (c *composite) mandatory(idx ...int) {
	for _, i := range idx {
		if !c.present(i) && c.err == nil {
			c.err = decodeErrorf("%s: mandatory field %d missing", c.name, i)
		}
	}
}

// Role is a link endpoint's role: false for sender, true for receiver.
type Role bool

// The two link roles.
const (
	RoleSender   Role = false
	RoleReceiver Role = true
)

func (r Role) String() string {
	if r == RoleReceiver {
		return "receiver"
	}
	return "sender"
}

// Settlement modes (sections 2.8.2 and 2.8.3).
const (
	SenderSettleUnsettled uint8 = 0
	SenderSettleSettled   uint8 = 1
	SenderSettleMixed     uint8 = 2

	ReceiverSettleFirst  uint8 = 0
	ReceiverSettleSecond uint8 = 1
)

// Open (0x10) negotiates connection parameters.
type Open struct {
	ContainerID         string
	Hostname            string
	MaxFrameSize        uint32 // default 4294967295
	ChannelMax          uint16 // default 65535
	IdleTimeout         time.Duration
	OutgoingLocales     []Symbol
	IncomingLocales     []Symbol
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          Map
}

func (*Open) descriptor() uint64 { return codeOpen }

func (o *Open) fields() []any {
	return []any{o.ContainerID, nilIfEmpty(o.Hostname), o.MaxFrameSize, o.ChannelMax,
		durationMillis(o.IdleTimeout), symbolsField(o.OutgoingLocales), symbolsField(o.IncomingLocales),
		symbolsField(o.OfferedCapabilities), symbolsField(o.DesiredCapabilities), nilIfEmptyMap(o.Properties)}
}

func (o *Open) decodeFields(c *composite) {
	c.mandatory(0)
	*o = Open{
		ContainerID:         c.string(0),
		Hostname:            c.string(1),
		MaxFrameSize:        c.uint32(2, math.MaxUint32),
		ChannelMax:          c.uint16(3, math.MaxUint16),
		IdleTimeout:         c.milliseconds(4),
		OutgoingLocales:     c.symbols(5),
		IncomingLocales:     c.symbols(6),
		OfferedCapabilities: c.symbols(7),
		DesiredCapabilities: c.symbols(8),
		Properties:          c.fieldMap(9),
	}
}

// Begin (0x11) starts a session.
type Begin struct {
	RemoteChannel       *uint16
	NextOutgoingID      uint32
	IncomingWindow      uint32
	OutgoingWindow      uint32
	HandleMax           uint32 // default 4294967295
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          Map
}

func (*Begin) descriptor() uint64 { return codeBegin }

func (b *Begin) fields() []any {
	return []any{optional(b.RemoteChannel), b.NextOutgoingID, b.IncomingWindow, b.OutgoingWindow,
		b.HandleMax, symbolsField(b.OfferedCapabilities), symbolsField(b.DesiredCapabilities),
		nilIfEmptyMap(b.Properties)}
}

func (b *Begin) decodeFields(c *composite) {
	c.mandatory(1, 2, 3)
	var remote *uint16
	if c.present(0) {
		v := c.uint16(0, 0)
		remote = &v
	}
	*b = Begin{
		RemoteChannel:       remote,
		NextOutgoingID:      c.uint32(1, 0),
		IncomingWindow:      c.uint32(2, 0),
		OutgoingWindow:      c.uint32(3, 0),
		HandleMax:           c.uint32(4, math.MaxUint32),
		OfferedCapabilities: c.symbols(5),
		DesiredCapabilities: c.symbols(6),
		Properties:          c.fieldMap(7),
	}
}

// Attach (0x12) attaches a link to a session.
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 Role
	SndSettleMode        uint8 // default SenderSettleMixed
	RcvSettleMode        uint8 // default ReceiverSettleFirst
	Source               *Source
	Target               *Target
	Unsettled            Map
	IncompleteUnsettled  bool
	InitialDeliveryCount uint32
	MaxMessageSize       uint64 // 0: no limit
	OfferedCapabilities  []Symbol
	DesiredCapabilities  []Symbol
	Properties           Map
}

func (*Attach) descriptor() uint64 { return codeAttach }

func (a *Attach) fields() []any {
	var source, target any
	if a.Source != nil {
		source = Described{Descriptor: uint64(codeSource), Value: trimList(a.Source.fields())}
	}
	if a.Target != nil {
		target = Described{Descriptor: uint64(codeTarget), Value: trimList(a.Target.fields())}
	}
	var deliveryCount, maxSize any
	if a.Role == RoleSender {
		deliveryCount = a.InitialDeliveryCount
	}
	if a.MaxMessageSize > 0 {
		maxSize = a.MaxMessageSize
	}
	return []any{a.Name, a.Handle, bool(a.Role), a.SndSettleMode, a.RcvSettleMode, source, target,
		nilIfEmptyMap(a.Unsettled), a.IncompleteUnsettled, deliveryCount, maxSize,
		symbolsField(a.OfferedCapabilities), symbolsField(a.DesiredCapabilities), nilIfEmptyMap(a.Properties)}
}

func (a *Attach) decodeFields(c *composite) {
	c.mandatory(0, 1, 2)
	*a = Attach{
		Name:                 c.string(0),
		Handle:               c.uint32(1, 0),
		Role:                 Role(c.bool(2, false)),
		SndSettleMode:        c.uint8(3, SenderSettleMixed),
		RcvSettleMode:        c.uint8(4, ReceiverSettleFirst),
		Unsettled:            c.fieldMap(7),
		IncompleteUnsettled:  c.bool(8, false),
		InitialDeliveryCount: c.uint32(9, 0),
		MaxMessageSize:       c.uint64(10, 0),
		OfferedCapabilities:  c.symbols(11),
		DesiredCapabilities:  c.symbols(12),
		Properties:           c.fieldMap(13),
	}
	if c.present(5) {
		if sc, err := describedFields(c.get(5), codeSource); err != nil {
			c.setErr(err)
		} else {
			a.Source = &Source{}
			a.Source.decodeFields(sc)
			c.setErr(sc.err)
		}
	}
	if c.present(6) {
		// A coordinator target (transactions) is not supported; it
		// decodes as an error so the link can be refused.
		if tc, err := describedFields(c.get(6), codeTarget); err != nil {
			c.setErr(err)
		} else {
			a.Target = &Target{}
			a.Target.decodeFields(tc)
			c.setErr(tc.err)
		}
	}
}

func (c *composite) setErr(err error) {
	if c.err == nil {
		c.err = err
	}
}

// trimList drops trailing nulls of a nested composite's fields.
func trimList(f []any) []any {
	for len(f) > 0 && isNull(f[len(f)-1]) {
		f = f[:len(f)-1]
	}
	return f
}

// Source (0x28) is the source terminus of a link.
type Source struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          Symbol // default "session-end"
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties Map
	DistributionMode      Symbol
	Filter                Map
	DefaultOutcome        any
	Outcomes              []Symbol
	Capabilities          []Symbol
}

func (s *Source) fields() []any {
	return []any{nilIfEmpty(s.Address), s.Durable, nilIfEmpty(s.ExpiryPolicy), s.Timeout, s.Dynamic,
		nilIfEmptyMap(s.DynamicNodeProperties), nilIfEmpty(s.DistributionMode), nilIfEmptyMap(s.Filter),
		s.DefaultOutcome, symbolsField(s.Outcomes), symbolsField(s.Capabilities)}
}

func (s *Source) decodeFields(c *composite) {
	*s = Source{
		Address:               c.string(0),
		Durable:               c.uint32(1, 0),
		ExpiryPolicy:          c.symbol(2),
		Timeout:               c.uint32(3, 0),
		Dynamic:               c.bool(4, false),
		DynamicNodeProperties: c.fieldMap(5),
		DistributionMode:      c.symbol(6),
		Filter:                c.fieldMap(7),
		DefaultOutcome:        c.get(8),
		Outcomes:              c.symbols(9),
		Capabilities:          c.symbols(10),
	}
	if s.ExpiryPolicy == "" {
		s.ExpiryPolicy = "session-end"
	}
}

// Target (0x29) is the target terminus of a link.
type Target struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          Symbol // default "session-end"
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties Map
	Capabilities          []Symbol
}

func (t *Target) fields() []any {
	return []any{nilIfEmpty(t.Address), t.Durable, nilIfEmpty(t.ExpiryPolicy), t.Timeout, t.Dynamic,
		nilIfEmptyMap(t.DynamicNodeProperties), symbolsField(t.Capabilities)}
}

func (t *Target) decodeFields(c *composite) {
	*t = Target{
		Address:               c.string(0),
		Durable:               c.uint32(1, 0),
		ExpiryPolicy:          c.symbol(2),
		Timeout:               c.uint32(3, 0),
		Dynamic:               c.bool(4, false),
		DynamicNodeProperties: c.fieldMap(5),
		Capabilities:          c.symbols(6),
	}
	if t.ExpiryPolicy == "" {
		t.ExpiryPolicy = "session-end"
	}
}

// Flow (0x13) updates session windows and, with a handle, link credit.
type Flow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
	Properties     Map
}

func (*Flow) descriptor() uint64 { return codeFlow }

func (f *Flow) fields() []any {
	return []any{optional(f.NextIncomingID), f.IncomingWindow, f.NextOutgoingID, f.OutgoingWindow,
		optional(f.Handle), optional(f.DeliveryCount), optional(f.LinkCredit), optional(f.Available),
		f.Drain, f.Echo, nilIfEmptyMap(f.Properties)}
}

func (f *Flow) decodeFields(c *composite) {
	c.mandatory(1, 2, 3)
	*f = Flow{
		NextIncomingID: c.optUint32(0),
		IncomingWindow: c.uint32(1, 0),
		NextOutgoingID: c.uint32(2, 0),
		OutgoingWindow: c.uint32(3, 0),
		Handle:         c.optUint32(4),
		DeliveryCount:  c.optUint32(5),
		LinkCredit:     c.optUint32(6),
		Available:      c.optUint32(7),
		Drain:          c.bool(8, false),
		Echo:           c.bool(9, false),
		Properties:     c.fieldMap(10),
	}
}

// Transfer (0x14) carries (part of) a message. Payload is the frame's
// bytes after the performative; it is not one of the list fields.
type Transfer struct {
	Handle        uint32
	DeliveryID    *uint32
	DeliveryTag   []byte
	MessageFormat *uint32
	Settled       bool
	More          bool
	RcvSettleMode *uint8
	State         DeliveryState
	Resume        bool
	Aborted       bool
	Batchable     bool
	Payload       []byte
}

func (*Transfer) descriptor() uint64 { return codeTransfer }

func (t *Transfer) fields() []any {
	return []any{t.Handle, optional(t.DeliveryID), nilIfEmptyBytes(t.DeliveryTag), optional(t.MessageFormat),
		t.Settled, t.More, optional(t.RcvSettleMode), stateValue(t.State), t.Resume, t.Aborted, t.Batchable}
}

func (t *Transfer) decodeFields(c *composite) {
	c.mandatory(0)
	var mode *uint8
	if c.present(6) {
		v := c.uint8(6, 0)
		mode = &v
	}
	*t = Transfer{
		Handle:        c.uint32(0, 0),
		DeliveryID:    c.optUint32(1),
		DeliveryTag:   c.binary(2),
		MessageFormat: c.optUint32(3),
		Settled:       c.bool(4, false),
		More:          c.bool(5, false),
		RcvSettleMode: mode,
		State:         c.deliveryState(7),
		Resume:        c.bool(8, false),
		Aborted:       c.bool(9, false),
		Batchable:     c.bool(10, false),
	}
}

// Disposition (0x15) settles or updates the state of a range of deliveries.
type Disposition struct {
	Role      Role
	First     uint32
	Last      *uint32 // nil: same as First
	Settled   bool
	State     DeliveryState
	Batchable bool
}

func (*Disposition) descriptor() uint64 { return codeDisposition }

func (d *Disposition) fields() []any {
	return []any{bool(d.Role), d.First, optional(d.Last), d.Settled, stateValue(d.State), d.Batchable}
}

func (d *Disposition) decodeFields(c *composite) {
	c.mandatory(0, 1)
	*d = Disposition{
		Role:      Role(c.bool(0, false)),
		First:     c.uint32(1, 0),
		Last:      c.optUint32(2),
		Settled:   c.bool(3, false),
		State:     c.deliveryState(4),
		Batchable: c.bool(5, false),
	}
}

// Detach (0x16) detaches a link; Closed also closes it.
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

func (*Detach) descriptor() uint64 { return codeDetach }

func (d *Detach) fields() []any { return []any{d.Handle, d.Closed, d.Error} }

func (d *Detach) decodeFields(c *composite) {
	c.mandatory(0)
	*d = Detach{Handle: c.uint32(0, 0), Closed: c.bool(1, false), Error: c.error(2)}
}

// End (0x17) ends a session.
type End struct {
	Error *Error
}

func (*End) descriptor() uint64 { return codeEnd }

func (e *End) fields() []any { return []any{e.Error} }

func (e *End) decodeFields(c *composite) { *e = End{Error: c.error(0)} }

// Close (0x18) closes the connection.
type Close struct {
	Error *Error
}

func (*Close) descriptor() uint64 { return codeClose }

func (cl *Close) fields() []any { return []any{cl.Error} }

func (cl *Close) decodeFields(c *composite) { *cl = Close{Error: c.error(0)} }

// DeliveryState is the state or outcome of a delivery: *Accepted,
// *Rejected, *Released, *Modified or *Received.
type DeliveryState interface {
	stateCode() uint64
	stateFields() []any
}

// Accepted (0x24) is the outcome of a message processed successfully.
type Accepted struct{}

// Rejected (0x25) is the outcome of an invalid message.
type Rejected struct{ Error *Error }

// Released (0x26) is the outcome of a message not processed.
type Released struct{}

// Modified (0x27) is a released outcome with changes.
type Modified struct {
	DeliveryFailed     bool
	UndeliverableHere  bool
	MessageAnnotations Map
}

// Received (0x23) is the state of a partially received delivery.
type Received struct {
	SectionNumber uint32
	SectionOffset uint64
}

func (*Accepted) stateCode() uint64    { return codeAccepted }
func (*Accepted) stateFields() []any   { return nil }
func (*Rejected) stateCode() uint64    { return codeRejected }
func (r *Rejected) stateFields() []any { return []any{r.Error} }
func (*Released) stateCode() uint64    { return codeReleased }
func (*Released) stateFields() []any   { return nil }
func (*Modified) stateCode() uint64    { return codeModified }
func (m *Modified) stateFields() []any {
	return []any{m.DeliveryFailed, m.UndeliverableHere, nilIfEmptyMap(m.MessageAnnotations)}
}
func (*Received) stateCode() uint64 { return codeReceived }
func (r *Received) stateFields() []any {
	return []any{r.SectionNumber, r.SectionOffset}
}

// stateValue is the described list for a delivery state, or nil.
func stateValue(s DeliveryState) any {
	if s == nil {
		return nil
	}
	return Described{Descriptor: s.stateCode(), Value: trimList(s.stateFields())}
}

func (c *composite) deliveryState(i int) DeliveryState {
	v := c.get(i)
	if v == nil {
		return nil
	}
	s, err := decodeDeliveryState(v)
	c.setErr(err)
	return s
}

func decodeDeliveryState(v any) (DeliveryState, error) {
	d, ok := v.(Described)
	if !ok {
		return nil, decodeErrorf("delivery state is %T", v)
	}
	code, _ := descriptorCode(d.Descriptor)
	c, err := listFields(d.Value, descriptorName(code))
	if err != nil {
		return nil, err
	}
	var s DeliveryState
	switch code {
	case codeAccepted:
		s = &Accepted{}
	case codeRejected:
		s = &Rejected{Error: c.error(0)}
	case codeReleased:
		s = &Released{}
	case codeModified:
		s = &Modified{DeliveryFailed: c.bool(0, false), UndeliverableHere: c.bool(1, false), MessageAnnotations: c.fieldMap(2)}
	case codeReceived:
		c.mandatory(0, 1)
		s = &Received{SectionNumber: c.uint32(0, 0), SectionOffset: c.uint64(1, 0)}
	default:
		return nil, decodeErrorf("unknown delivery state %v", d.Descriptor)
	}
	return s, c.err
}
