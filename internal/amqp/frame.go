package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtocolID is the protocol id byte of an AMQP protocol header
// (section 2.2).
type ProtocolID uint8

// Protocol ids.
const (
	ProtocolAMQP ProtocolID = 0
	ProtocolTLS  ProtocolID = 2
	ProtocolSASL ProtocolID = 3
)

// ProtocolHeader returns the 8-byte protocol header for id and version
// 1.0.0.
func ProtocolHeader(id ProtocolID) [8]byte {
	return [8]byte{'A', 'M', 'Q', 'P', byte(id), 1, 0, 0}
}

// ErrFraming is wrapped by errors about protocol headers and frames that
// cannot be read.
var ErrFraming = errors.New("amqp: framing error")

// ParseProtocolHeader checks an 8-byte protocol header and returns its
// protocol id. Any version other than 1.0.0 is an error.
func ParseProtocolHeader(h [8]byte) (ProtocolID, error) {
	if string(h[:4]) != "AMQP" {
		return 0, fmt.Errorf("%w: not an AMQP protocol header", ErrFraming)
	}
	if h[5] != 1 || h[6] != 0 || h[7] != 0 {
		return 0, fmt.Errorf("%w: unsupported AMQP version %d.%d.%d", ErrFraming, h[5], h[6], h[7])
	}
	return ProtocolID(h[4]), nil
}

// Frame types (section 2.3 and 5.3.1).
const (
	FrameTypeAMQP uint8 = 0x00
	FrameTypeSASL uint8 = 0x01
)

const (
	frameHeaderSize = 8
	// MinMaxFrameSize is the smallest max-frame-size a peer may set
	// (section 2.7.1, MIN-MAX-FRAME-SIZE).
	MinMaxFrameSize = 512
)

// Frame is one decoded frame. A nil Body is an empty frame, which peers
// send as a heartbeat.
type Frame struct {
	Type    uint8
	Channel uint16
	Body    Body
}

// AppendFrame appends the encoding of f to dst. A transfer's Payload
// follows its performative.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 2, f.Type)
	dst = binary.BigEndian.AppendUint16(dst, f.Channel)
	if f.Body != nil {
		var err error
		if dst, err = AppendBody(dst, f.Body); err != nil {
			return dst[:start], err
		}
		if t, ok := f.Body.(*Transfer); ok {
			dst = append(dst, t.Payload...)
		}
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst, nil
}

// DecodeFrame decodes one whole frame, header included.
func DecodeFrame(b []byte) (Frame, error) {
	if len(b) < frameHeaderSize {
		return Frame{}, fmt.Errorf("%w: frame of %d bytes", ErrFraming, len(b))
	}
	size := binary.BigEndian.Uint32(b)
	if uint64(size) != uint64(len(b)) {
		return Frame{}, fmt.Errorf("%w: frame size %d, have %d bytes", ErrFraming, size, len(b))
	}
	return decodeFrameBody(b[:frameHeaderSize], b[frameHeaderSize:])
}

// decodeFrameBody decodes a frame given its 8-byte header and the rest.
func decodeFrameBody(h, rest []byte) (Frame, error) {
	doff := int(h[4]) * 4
	if doff < frameHeaderSize {
		return Frame{}, fmt.Errorf("%w: data offset %d", ErrFraming, h[4])
	}
	if doff-frameHeaderSize > len(rest) {
		return Frame{}, fmt.Errorf("%w: data offset %d beyond frame end", ErrFraming, h[4])
	}
	f := Frame{Type: h[5], Channel: binary.BigEndian.Uint16(h[6:])}
	if f.Type != FrameTypeAMQP && f.Type != FrameTypeSASL {
		return Frame{}, fmt.Errorf("%w: frame type 0x%02x", ErrFraming, f.Type)
	}
	body := rest[doff-frameHeaderSize:]
	if len(body) == 0 {
		return f, nil
	}
	b, n, err := DecodeBody(body)
	if err != nil {
		return Frame{}, err
	}
	if _, sasl := b.(interface{ sasl() }); sasl != (f.Type == FrameTypeSASL) {
		return Frame{}, fmt.Errorf("%w: %s in a frame of type 0x%02x", ErrFraming, descriptorName(b.descriptor()), f.Type)
	}
	if t, ok := b.(*Transfer); ok {
		if n < len(body) {
			t.Payload = body[n:]
		}
	} else if n != len(body) {
		return Frame{}, decodeErrorf("%d bytes after %s", len(body)-n, descriptorName(b.descriptor()))
	}
	return f.with(b), nil
}

func (f Frame) with(b Body) Frame {
	f.Body = b
	return f
}

// FrameReader reads frames from a byte stream, refusing any frame larger
// than its maximum size before allocating for it.
type FrameReader struct {
	r       io.Reader
	maxSize uint32
	header  [frameHeaderSize]byte
}

// NewFrameReader returns a reader of frames of at most maxSize bytes.
func NewFrameReader(r io.Reader, maxSize uint32) *FrameReader {
	return &FrameReader{r: r, maxSize: maxSize}
}

// SetMaxSize changes the largest frame accepted.
func (fr *FrameReader) SetMaxSize(n uint32) { fr.maxSize = n }

// ReadFrame reads and decodes the next frame. Errors from the underlying
// reader are returned as they are (io.EOF included); malformed frames give
// errors wrapping ErrFraming or ErrDecode.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(fr.r, fr.header[:]); err != nil {
		return Frame{}, err
	}
	size := binary.BigEndian.Uint32(fr.header[:])
	if size < frameHeaderSize {
		return Frame{}, fmt.Errorf("%w: frame size %d", ErrFraming, size)
	}
	if size > fr.maxSize {
		return Frame{}, fmt.Errorf("%w: frame size %d above the maximum %d", ErrFraming, size, fr.maxSize)
	}
	rest := make([]byte, size-frameHeaderSize)
	if _, err := io.ReadFull(fr.r, rest); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return decodeFrameBody(fr.header[:], rest)
}
