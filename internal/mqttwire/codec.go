package mqttwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// MaxPacketSize is the largest MQTT packet either end reads: IoT Hub
// limits MQTT messages to 256 KB, and a method payload to 128 KB.
const MaxPacketSize = 256 * 1024

// Codec errors, testable with errors.Is.
var (
	// ErrPacketTooLarge reports a packet whose remaining length exceeds
	// the reader's limit; its body is never read.
	ErrPacketTooLarge = errors.New("mqtt packet too large")
	// ErrMalformedPacket reports bytes that are not a valid MQTT 3.1.1 packet.
	ErrMalformedPacket = errors.New("malformed mqtt packet")
)

// ReadPacket reads one MQTT packet. Unlike packets.ReadPacket it checks the
// remaining length before allocating the body, so a peer cannot make the
// reader buffer more than limit bytes, and it rejects bodies that do not
// decode exactly.
func ReadPacket(r *bufio.Reader, limit int) (packets.ControlPacket, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	length, err := readRemainingLength(r)
	if err != nil {
		return nil, err
	}
	if length > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrPacketTooLarge, length, limit)
	}
	header := packets.FixedHeader{
		MessageType:     first >> 4,
		Dup:             first&0x08 != 0,
		Qos:             (first >> 1) & 0x03,
		Retain:          first&0x01 != 0,
		RemainingLength: length,
	}
	if err := checkFlags(header.MessageType, first&0x0f); err != nil {
		return nil, err
	}
	packet, err := packets.NewControlPacketWithHeader(header)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedPacket, err)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if header.MessageType == packets.Publish {
		if err := decodePublish(packet.(*packets.PublishPacket), body); err != nil {
			return nil, err
		}
		return packet, nil
	}
	rest := bytes.NewReader(body)
	var src io.Reader = exactReader{rest}
	if header.MessageType == packets.Suback {
		// paho reads a SUBACK's return codes up to io.EOF, which
		// exactReader would refuse; a SUBACK has no other variable field.
		src = rest
	}
	if err := packet.Unpack(src); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformedPacket, PacketName(header.MessageType), err)
	}
	if rest.Len() != 0 {
		return nil, fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformedPacket, PacketName(header.MessageType), rest.Len())
	}
	return packet, nil
}

// readRemainingLength decodes the variable-length remaining length: at
// most four bytes, as MQTT 3.1.1 section 2.2.3 allows.
func readRemainingLength(r io.ByteReader) (int, error) {
	length, shift := 0, 0
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		length |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return length, nil
		}
		shift += 7
	}
	return 0, fmt.Errorf("%w: remaining length longer than 4 bytes", ErrMalformedPacket)
}

// checkFlags enforces the fixed-header flags of MQTT 3.1.1 section 2.2.2.
func checkFlags(packetType, flags byte) error {
	want := byte(0)
	switch packetType {
	case packets.Publish:
		if flags>>1&0x03 == 3 {
			return fmt.Errorf("%w: PUBLISH with QoS 3", ErrMalformedPacket)
		}
		return nil
	case packets.Pubrel, packets.Subscribe, packets.Unsubscribe:
		want = 0x02
	}
	if flags != want {
		return fmt.Errorf("%w: %s with flags %#x", ErrMalformedPacket, PacketName(packetType), flags)
	}
	return nil
}

// exactReader fails a read it cannot fill completely, so that a field
// longer than the packet is an error instead of a short, zero-padded value.
type exactReader struct{ r *bytes.Reader }

func (e exactReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(e.r, p)
	if err != nil {
		return n, fmt.Errorf("%w: field runs past the end of the packet", ErrMalformedPacket)
	}
	return n, nil
}

// PacketName names a packet type for errors, including reserved ones.
func PacketName(packetType byte) string {
	if name, ok := packets.PacketNames[packetType]; ok {
		return name
	}
	return fmt.Sprintf("packet type %d", packetType)
}

// decodePublish fills p from the body of a PUBLISH as paho's Unpack does,
// but with the payload left in body rather than copied, and no other
// allocation than the topic's string: every method request comes this way.
func decodePublish(p *packets.PublishPacket, body []byte) error {
	if len(body) < 2 {
		return fmt.Errorf("%w: PUBLISH: topic length runs past the end of the packet", ErrMalformedPacket)
	}
	n := int(body[0])<<8 | int(body[1])
	rest := body[2:]
	if n > len(rest) {
		return fmt.Errorf("%w: PUBLISH: topic runs past the end of the packet", ErrMalformedPacket)
	}
	p.TopicName, rest = string(rest[:n]), rest[n:]
	if p.Qos > 0 {
		if len(rest) < 2 {
			return fmt.Errorf("%w: PUBLISH: packet identifier runs past the end of the packet", ErrMalformedPacket)
		}
		p.MessageID, rest = uint16(rest[0])<<8|uint16(rest[1]), rest[2:]
	}
	p.Payload = rest[:len(rest):len(rest)]
	return nil
}

// WritePublish writes p to w as paho's Write does, without its
// intermediate buffers: every answer goes out this way.
func WritePublish(w *bufio.Writer, p *packets.PublishPacket) error {
	if len(p.TopicName) > 0xffff {
		return fmt.Errorf("%w: PUBLISH topic of %d bytes", ErrMalformedPacket, len(p.TopicName))
	}
	length := 2 + len(p.TopicName) + len(p.Payload)
	if p.Qos > 0 {
		length += 2
	}
	if length > maxRemainingLength {
		return fmt.Errorf("%w: PUBLISH of %d bytes", ErrPacketTooLarge, length)
	}
	first := byte(packets.Publish<<4) | p.Qos<<1
	if p.Dup {
		first |= 0x08
	}
	if p.Retain {
		first |= 0x01
	}
	w.WriteByte(first)
	for {
		b := byte(length & 0x7f)
		length >>= 7
		if length > 0 {
			b |= 0x80
		}
		w.WriteByte(b)
		if length == 0 {
			break
		}
	}
	w.WriteByte(byte(len(p.TopicName) >> 8))
	w.WriteByte(byte(len(p.TopicName)))
	w.WriteString(p.TopicName)
	if p.Qos > 0 {
		w.WriteByte(byte(p.MessageID >> 8))
		w.WriteByte(byte(p.MessageID))
	}
	_, err := w.Write(p.Payload)
	return err
}

// maxRemainingLength is the largest remaining length four bytes encode
// (MQTT 3.1.1 section 2.2.3).
const maxRemainingLength = 268_435_455
