package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sync/atomic"

	iamqp "github.com/directmethods/iotdevice/internal/amqp"
)

// Limits of what the hub may send, enforced by frameGuard.
const (
	// maxFrameSize is the max-frame-size of our open frame
	// (goamqp.ConnOptions.MaxFrameSize), go-amqp's own default: the
	// largest frame the hub may send once both opens are exchanged.
	maxFrameSize = 64 << 10
	// minMaxFrameSize is AMQP's MIN-MAX-FRAME-SIZE: the largest frame
	// before the hub's open, SASL frames included (AMQP 1.0 sections
	// 2.4.1 and 5.3.1), and the smallest max-frame-size a peer may
	// advertise (section 2.7.1).
	minMaxFrameSize = 512
	// maxMessageSize bounds a message reassembled from its transfers, the
	// max-message-size of our receiving links: IoT Hub's largest method
	// payload, 128 KB ("Handle direct methods from IoT Hub",
	// learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods),
	// plus 64 KiB for the other sections (properties, annotations). It is
	// also the most the guard buffers for transfers in progress, across
	// all links together.
	maxMessageSize = 128<<10 + 64<<10
	// maxDispositionRange bounds the delivery ids one disposition from the
	// hub may settle: go-amqp visits each id of the range in turn.
	maxDispositionRange = 1 << 16
	// guardReadSize is the first size of the guard's read buffer; it
	// grows to a frame's size as frames need, so at most maxFrameSize.
	guardReadSize = 4 << 10
	// maxGuardedLinks bounds the links the guard follows; the adapter
	// attaches four.
	maxGuardedLinks = 64
)

// Descriptor codes the guard looks for (AMQP 1.0 sections 3.2.2, 3.2.3,
// 3.2.10 and 3.4.5).
const (
	codeDeliveryAnnotations = 0x71
	codeMessageAnnotations  = 0x72
	codeFooter              = 0x78
	codeModified            = 0x27
)

// errRefused is wrapped by every error of the guard: the hub sent what
// the adapter does not hand to go-amqp, and the connection ends.
var errRefused = errors.New("amqp: refused the hub's input")

// frameSizeError is the guard's error for a frame larger than allowed.
// It wraps errRefused.
type frameSizeError struct {
	Size       uint32 // the size in the frame's header
	Limit      uint32 // the largest size allowed
	BeforeOpen bool   // the hub's open had not arrived
}

func (e *frameSizeError) Error() string {
	if e.BeforeOpen {
		return fmt.Sprintf("amqp: refused the hub's frame of %d bytes: above the %d bytes allowed before its open (AMQP 1.0 section 2.4.1)", e.Size, e.Limit)
	}
	return fmt.Sprintf("amqp: refused the hub's frame of %d bytes: above the max-frame-size of %d bytes in our open", e.Size, e.Limit)
}

func (e *frameSizeError) Unwrap() error { return errRefused }

func refusedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errRefused}, args...)...)
}

// guardPhase is where the byte stream from the hub stands.
type guardPhase int

const (
	phaseHeader     guardPhase = iota // the first protocol header
	phaseSASL                         // SASL frames, until the outcome
	phaseAMQPHeader                   // the AMQP header after SASL
	phaseOpen                         // frames before the hub's open
	phaseOpened                       // frames after it
)

// guardHooks tell the Conn what the guard saw. They run on the goroutine
// reading from the guard (go-amqp's), before the bytes concerned reach
// go-amqp, and must not block.
type guardHooks struct {
	// watched are the names of the links whose detach by the hub ends
	// the Conn: the method links.
	watched []string
	// detached is called when the hub detaches a watched link.
	detached func(name string, e *iamqp.Error)
	// refused is called with the guard's error before Read returns it.
	refused func(err error)
}

// deliveryKey names a link as the hub's frames do: by the hub's channel
// and handle.
type deliveryKey struct {
	channel uint16
	handle  uint32
}

// guardedLink is what the guard knows of an attached link.
type guardedLink struct {
	name        string
	hubReceives bool // the hub's role is receiver: go-amqp sends on it
}

// frameGuard sits between the network connection (Options.Network's,
// TLS or WebSocket) and go-amqp, and checks every byte the hub sends
// before go-amqp reads it: protocol headers, SASL frames and AMQP frames.
// It refuses, ending the connection with an error wrapping errRefused:
//
//   - frames larger than minMaxFrameSize before the hub's open, and than
//     maxFrameSize after it, from their 8-byte header, so that a claimed
//     size is never buffered (go-amqp v1.7.0 buffers up to 2 GiB, and
//     the same reader serves the open connection);
//   - frames that internal/amqp cannot decode, frames with an extended
//     header (go-amqp ignores the data offset, so it would read the
//     header as the body), and SASL and AMQP frames out of place;
//   - an open advertising a max-frame-size below 512 bytes (go-amqp's
//     sender then slices with a negative length and panics);
//   - a message, reassembled from its transfers up to maxMessageSize,
//     that internal/amqp cannot decode, or whose delivery-annotations,
//     message-annotations or footer have keys other than symbol and
//     ulong (AMQP 1.0 section 3.2.10): go-amqp v1.7.0 panics on a list,
//     binary or map key in its receiver goroutine (Azure/go-amqp#369);
//   - any map, in a frame or a message, with a key go-amqp cannot hash
//     (binary, list, map, array, or a described value holding one): its
//     decoder stores such keys in a Go map and panics; and the
//     annotations of a modified outcome with keys other than symbol and
//     ulong;
//   - a flow without link-credit for a link go-amqp sends on (its
//     sender dereferences it), a disposition whose range reaches delivery id
//     4294967295 or spans more than maxDispositionRange ids, and a
//     transfer with delivery id 4294967295 (go-amqp's loops over a range
//     never end at the largest id, and it settles a received delivery
//     through the same loop).
//
// It also reports the hub's detach of a watched link (guardHooks), before
// go-amqp sees the detach or anything after it.
//
// At most maxFrameSize bytes wait unchecked in the guard, and at most
// maxMessageSize bytes of unfinished messages.
type frameGuard struct {
	net.Conn
	hooks guardHooks
	err   atomic.Pointer[error] // the refusal, for Err

	// Owned by the goroutine calling Read: go-amqp reads from one
	// goroutine at a time (NewConn's caller, then its connReader).
	phase    guardPhase
	buf      []byte // buf[off:ready] checked, not read yet; buf[ready:] not checked
	off      int
	ready    int
	readErr  error
	partials map[deliveryKey][]byte      // messages whose transfers go on
	partial  int                         // bytes in partials
	links    map[deliveryKey]guardedLink // links the hub attached
}

// newFrameGuard wraps nc.
func newFrameGuard(nc net.Conn, hooks guardHooks) *frameGuard {
	return &frameGuard{Conn: nc, hooks: hooks}
}

// Err returns the guard's refusal, or nil.
func (g *frameGuard) Err() error {
	if p := g.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Read returns bytes of the hub's stream once the whole protocol header or
// frame they belong to has been checked.
func (g *frameGuard) Read(p []byte) (int, error) {
	for g.off == g.ready {
		if g.readErr != nil {
			return 0, g.readErr
		}
		if err := g.checkNext(); err != nil {
			if errors.Is(err, errRefused) {
				g.err.Store(&err)
				if g.hooks.refused != nil {
					g.hooks.refused(err)
				}
			}
			g.readErr = err
		}
	}
	n := copy(p, g.buf[g.off:g.ready])
	g.off += n
	return n, nil
}

// fill reads until n unchecked bytes are buffered.
func (g *frameGuard) fill(n int) error {
	if g.off == g.ready && g.ready > 0 { // all read: move the rest to the front
		g.buf = g.buf[:copy(g.buf, g.buf[g.ready:])]
		g.off, g.ready = 0, 0
	}
	for len(g.buf)-g.ready < n {
		if need := g.ready + n; cap(g.buf) < need {
			g.buf = slices.Grow(g.buf, max(need, guardReadSize)-len(g.buf))
		}
		m, err := g.Conn.Read(g.buf[len(g.buf):cap(g.buf)])
		g.buf = g.buf[:len(g.buf)+m]
		if err != nil && len(g.buf)-g.ready < n {
			return err
		}
	}
	return nil
}

// checkNext checks the next protocol header or frame and marks it ready.
func (g *frameGuard) checkNext() error {
	if g.phase == phaseHeader || g.phase == phaseAMQPHeader {
		if err := g.fill(8); err != nil {
			return err
		}
		if err := g.checkHeader([8]byte(g.buf[g.ready:])); err != nil {
			return err
		}
		g.ready += 8
		return nil
	}
	if err := g.fill(8); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(g.buf[g.ready:])
	limit := uint32(maxFrameSize)
	if g.phase != phaseOpened {
		limit = minMaxFrameSize
	}
	if size > limit {
		return &frameSizeError{Size: size, Limit: limit, BeforeOpen: g.phase != phaseOpened}
	}
	if size < 8 {
		return refusedf("frame size %d is below its 8-byte header", size)
	}
	if err := g.fill(int(size)); err != nil {
		return err
	}
	if err := g.checkFrame(g.buf[g.ready : g.ready+int(size)]); err != nil {
		return err
	}
	g.ready += int(size)
	return nil
}

// checkHeader checks a protocol header: SASL or AMQP first, AMQP after
// SASL (AMQP 1.0 sections 2.2 and 5.3.1).
func (g *frameGuard) checkHeader(h [8]byte) error {
	id, err := iamqp.ParseProtocolHeader(h)
	if err != nil {
		return refusedf("%w", err)
	}
	switch {
	case id == iamqp.ProtocolSASL && g.phase == phaseHeader:
		g.phase = phaseSASL
	case id == iamqp.ProtocolAMQP:
		g.phase = phaseOpen
	default:
		return refusedf("protocol header with protocol id %d", id)
	}
	return nil
}

// checkFrame checks one whole frame, header included.
func (g *frameGuard) checkFrame(frame []byte) error {
	if doff := frame[4]; doff != 2 {
		return refusedf("frame with data offset %d: extended frame headers are not supported", doff)
	}
	if len(frame) == 8 {
		return nil // empty: a heartbeat
	}
	v, _, err := iamqp.DecodeValue(frame[8:])
	if err != nil {
		return refusedf("%w", err)
	}
	if err := checkValue(v); err != nil {
		return err
	}
	f, err := iamqp.DecodeFrame(frame)
	if err != nil {
		return refusedf("%w", err)
	}
	switch g.phase {
	case phaseSASL:
		if f.Type != iamqp.FrameTypeSASL {
			return refusedf("%T during SASL", f.Body)
		}
		if _, ok := f.Body.(*iamqp.SASLOutcome); ok {
			g.phase = phaseAMQPHeader
		}
		return nil
	case phaseOpen:
		open, ok := f.Body.(*iamqp.Open)
		if !ok || f.Type != iamqp.FrameTypeAMQP || f.Channel != 0 {
			return refusedf("first frame is %T on channel %d, not an open on channel 0", f.Body, f.Channel)
		}
		if open.MaxFrameSize < minMaxFrameSize {
			return refusedf("open with max-frame-size %d, below the %d bytes every peer accepts (AMQP 1.0 section 2.7.1)", open.MaxFrameSize, minMaxFrameSize)
		}
		g.phase = phaseOpened
		return nil
	}
	if f.Type != iamqp.FrameTypeAMQP {
		return refusedf("%T after open", f.Body)
	}
	return g.checkPerformative(f.Channel, f.Body)
}

// checkPerformative checks a performative of the open connection and
// follows the watched links.
func (g *frameGuard) checkPerformative(channel uint16, body iamqp.Body) error {
	switch b := body.(type) {
	case *iamqp.Attach:
		if g.links == nil {
			g.links = make(map[deliveryKey]guardedLink)
		}
		if len(g.links) >= maxGuardedLinks {
			return refusedf("more than %d links attached", maxGuardedLinks)
		}
		g.links[deliveryKey{channel, b.Handle}] = guardedLink{name: b.Name, hubReceives: b.Role == iamqp.RoleReceiver}
	case *iamqp.Detach:
		key := deliveryKey{channel, b.Handle}
		g.dropPartial(key)
		if l, ok := g.links[key]; ok {
			delete(g.links, key)
			if slices.Contains(g.hooks.watched, l.name) && g.hooks.detached != nil {
				g.hooks.detached(l.name, b.Error)
			}
		}
	case *iamqp.End:
		for key := range g.partials {
			if key.channel == channel {
				g.dropPartial(key)
			}
		}
		for key := range g.links {
			if key.channel == channel {
				delete(g.links, key)
			}
		}
	case *iamqp.Flow:
		if b.Handle != nil && b.LinkCredit == nil && g.links[deliveryKey{channel, *b.Handle}].hubReceives {
			return refusedf("flow for handle %d without link-credit", *b.Handle)
		}
	case *iamqp.Disposition:
		last := b.First
		if b.Last != nil {
			last = *b.Last
		}
		if b.First <= last && (last == math.MaxUint32 || last-b.First >= maxDispositionRange) {
			return refusedf("disposition of delivery ids %d to %d", b.First, last)
		}
	case *iamqp.Transfer:
		return g.checkTransfer(deliveryKey{channel, b.Handle}, b)
	}
	return nil
}

// checkTransfer reassembles a message from its transfers and checks it
// once complete, before go-amqp sees its last transfer.
func (g *frameGuard) checkTransfer(key deliveryKey, t *iamqp.Transfer) error {
	if t.DeliveryID != nil && *t.DeliveryID == math.MaxUint32 {
		return refusedf("transfer with delivery id %d", *t.DeliveryID)
	}
	if t.Aborted {
		g.dropPartial(key)
		return nil
	}
	if g.partial+len(t.Payload) > maxMessageSize {
		return refusedf("message of more than %d bytes", maxMessageSize)
	}
	if t.More {
		if g.partials == nil {
			g.partials = make(map[deliveryKey][]byte)
		}
		g.partials[key] = append(g.partials[key], t.Payload...)
		g.partial += len(t.Payload)
		return nil
	}
	msg := t.Payload
	if prev, ok := g.partials[key]; ok {
		msg = append(prev, t.Payload...)
		g.dropPartial(key)
	}
	return checkMessage(msg)
}

// dropPartial forgets the unfinished message of key.
func (g *frameGuard) dropPartial(key deliveryKey) {
	if p, ok := g.partials[key]; ok {
		g.partial -= len(p)
		delete(g.partials, key)
	}
}

// checkMessage checks the sections of a message.
func checkMessage(b []byte) error {
	for pos := 0; pos < len(b); {
		v, n, err := iamqp.DecodeValue(b[pos:])
		if err != nil {
			return refusedf("message section at byte %d: %w", pos, err)
		}
		pos += n
		d, ok := v.(iamqp.Described)
		if !ok {
			return refusedf("message section at byte %d is not described", pos-n)
		}
		code, _ := iamqp.DescriptorCode(d.Descriptor)
		switch code {
		case codeDeliveryAnnotations, codeMessageAnnotations, codeFooter:
			if err := checkAnnotations(d.Value); err != nil {
				return err
			}
		}
		if err := checkValue(v); err != nil {
			return err
		}
	}
	return nil
}

// checkAnnotations checks that an annotations map has only symbol and
// ulong keys (AMQP 1.0 section 3.2.10).
func checkAnnotations(v any) error {
	m, ok := v.(iamqp.Map)
	if !ok {
		if v == nil {
			return nil
		}
		return refusedf("annotations of type %s, not a map", typeName(v))
	}
	for _, kv := range m {
		switch kv.Key.(type) {
		case iamqp.Symbol, uint64:
		default:
			return refusedf("annotation key of type %s: AMQP allows only symbol and ulong keys", typeName(kv.Key))
		}
	}
	return nil
}

// checkValue walks v, refusing maps whose keys go-amqp cannot hash and
// modified outcomes whose annotations checkAnnotations refuses. Nesting is
// already bounded by the decoder (iamqp.MaxDepth).
func checkValue(v any) error {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if err := checkValue(e); err != nil {
				return err
			}
		}
	case iamqp.Array:
		for _, e := range v {
			if err := checkValue(e); err != nil {
				return err
			}
		}
	case iamqp.Map:
		for _, kv := range v {
			if !hashable(kv.Key) {
				return refusedf("map key of type %s", typeName(kv.Key))
			}
			if err := checkValue(kv.Value); err != nil {
				return err
			}
		}
	case iamqp.Described:
		if code, _ := iamqp.DescriptorCode(v.Descriptor); code == codeModified {
			if fields, ok := v.Value.([]any); ok && len(fields) > 2 {
				if err := checkAnnotations(fields[2]); err != nil {
					return err
				}
			}
		}
		return checkValue(v.Value)
	}
	return nil
}

// hashable reports whether go-amqp decodes v to a value it can use as a
// Go map key: not binary, list, map or array, nor a described value
// holding one.
func hashable(v any) bool {
	switch v := v.(type) {
	case []byte, []any, iamqp.Map, iamqp.Array:
		return false
	case iamqp.Described:
		return hashable(v.Value)
	}
	return true
}

// typeName names the AMQP type of a decoded value in errors.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []byte:
		return "binary"
	case []any:
		return "list"
	case iamqp.Map:
		return "map"
	case iamqp.Array:
		return "array"
	case iamqp.Described:
		return "described"
	case string:
		return "string"
	case iamqp.Symbol:
		return "symbol"
	}
	return fmt.Sprintf("%T", v)
}
