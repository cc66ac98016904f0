package bench

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
)

// floorWSHeaderRoom is the room the floor device leaves before each packet
// it builds, so that a WebSocket frame's header fits in front of it: 2
// bytes, an 8-byte length and a 4-byte masking key at most (RFC 6455,
// section 5.2).
const floorWSHeaderRoom = 14

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	floorWSContinuation = 0x0
	floorWSText         = 0x1
	floorWSBinary       = 0x2
	floorWSClose        = 0x8
	floorWSPing         = 0x9
	floorWSPong         = 0xA
)

// floorWSGUID is the GUID of the opening handshake (RFC 6455, section 1.3).
const floorWSGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// errFloorWS reports a WebSocket the floor device cannot use.
var errFloorWS = errors.New("bench: floor device: websocket")

// floorWS is the client side of a WebSocket, written by hand for the
// floor device: the opening handshake, and frames read from the TLS
// connection by the device's loop alone and written to it in one write
// each. Read yields the data frames' payloads as one stream, answering
// pings on the way; each write is one masked binary frame.
type floorWS struct {
	conn io.Writer     // the connection, through the device's floorWriter
	br   *bufio.Reader // the connection's bytes
	left uint64        // payload bytes left in the current data frame
}

// openFloorWS sends the opening handshake for MQTT on conn and reads the
// hub's answer with br, which then reads the frames.
func openFloorWS(conn io.Writer, br *bufio.Reader, address string) (*floorWS, error) {
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	request := "GET " + rawWebSocketPath + " HTTP/1.1\r\nHost: " + address +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	if _, err := io.WriteString(conn, request); err != nil {
		return nil, fmt.Errorf("%w: handshake: %v", errFloorWS, err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: handshake: %v", errFloorWS, err)
	}
	res.Body.Close()
	sum := sha1.Sum([]byte(key + floorWSGUID))
	switch {
	case res.StatusCode != http.StatusSwitchingProtocols:
		return nil, fmt.Errorf("%w: handshake answered %s", errFloorWS, res.Status)
	case res.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]):
		return nil, fmt.Errorf("%w: handshake: wrong Sec-WebSocket-Accept", errFloorWS)
	case res.Header.Get("Sec-WebSocket-Protocol") != "mqtt":
		return nil, fmt.Errorf("%w: hub chose subprotocol %q", errFloorWS, res.Header.Get("Sec-WebSocket-Protocol"))
	case res.Header.Get("Sec-WebSocket-Extensions") != "":
		return nil, fmt.Errorf("%w: hub chose extensions %q", errFloorWS, res.Header.Get("Sec-WebSocket-Extensions"))
	}
	return &floorWS{conn: conn, br: br}, nil
}

// Read reads the payloads of data frames. A deadline's error before a
// frame's first byte is returned as it is, so the caller may read on; a
// failure within a frame's header is not a timeout.
func (w *floorWS) Read(p []byte) (int, error) {
	for w.left == 0 {
		if err := w.nextFrame(); err != nil {
			return 0, err
		}
	}
	if uint64(len(p)) > w.left {
		p = p[:w.left]
	}
	n, err := w.br.Read(p)
	w.left -= uint64(n)
	return n, err
}

// nextFrame reads a frame's header. For a data frame it sets w.left; it
// answers a ping, skips a pong and returns io.EOF for a close.
func (w *floorWS) nextFrame() error {
	b0, err := w.br.ReadByte()
	if err != nil {
		return err
	}
	var h [8]byte
	if _, err := io.ReadFull(w.br, h[:1]); err != nil {
		return fmt.Errorf("%w: frame header: %v", errFloorWS, err)
	}
	if h[0]&0x80 != 0 {
		return fmt.Errorf("%w: masked frame from the hub", errFloorWS)
	}
	n := uint64(h[0] & 0x7F)
	switch n {
	case 126:
		if _, err := io.ReadFull(w.br, h[:2]); err != nil {
			return fmt.Errorf("%w: frame header: %v", errFloorWS, err)
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(w.br, h[:8]); err != nil {
			return fmt.Errorf("%w: frame header: %v", errFloorWS, err)
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	switch b0 & 0x0F {
	case floorWSContinuation, floorWSBinary, floorWSText:
		if n > floorMaxPacket {
			return fmt.Errorf("%w: frame of %d bytes", errFloorWS, n)
		}
		w.left = n
		return nil
	case floorWSPing, floorWSPong:
		if n > 125 {
			return fmt.Errorf("%w: control frame of %d bytes", errFloorWS, n)
		}
		frame := make([]byte, floorWSHeaderRoom+int(n))
		if _, err := io.ReadFull(w.br, frame[floorWSHeaderRoom:]); err != nil {
			return fmt.Errorf("%w: control frame: %v", errFloorWS, err)
		}
		if b0&0x0F == floorWSPing {
			return w.writeFrame(floorWSPong, frame)
		}
		return nil
	case floorWSClose:
		return io.EOF
	}
	return fmt.Errorf("%w: frame with opcode %#x", errFloorWS, b0&0x0F)
}

// writeFrame writes payload, which starts after floorWSHeaderRoom spare
// bytes, as one masked frame of opcode in one write. It masks payload in
// place.
func (w *floorWS) writeFrame(opcode byte, payload []byte) error {
	data := payload[floorWSHeaderRoom:]
	n := len(data)
	start := floorWSHeaderRoom - 6 // 2-byte header and the masking key
	switch {
	case n > 0xFFFF:
		start -= 8
	case n > 125:
		start -= 2
	}
	h := payload[start:floorWSHeaderRoom]
	h[0] = 0x80 | opcode // FIN
	switch {
	case n > 0xFFFF:
		h[1] = 0x80 | 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	case n > 125:
		h[1] = 0x80 | 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h[1] = 0x80 | byte(n)
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], mathrand.Uint32()) // unpredictable enough for a hub of our own
	copy(h[len(h)-4:], mask[:])
	for i := range data {
		data[i] ^= mask[i&3]
	}
	if _, err := w.conn.Write(payload[start:]); err != nil {
		return err
	}
	return nil
}
