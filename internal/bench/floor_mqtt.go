package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// floorKeepAlive is the keep-alive the floor device asks for. It pings
// when it has read nothing for half of it.
const floorKeepAlive = 30 * time.Second

// MQTT 3.1.1 packet types, in the high nibble of a packet's first byte.
const (
	floorCONNECT    = 1
	floorCONNACK    = 2
	floorPUBLISH    = 3
	floorPUBACK     = 4
	floorSUBSCRIBE  = 8
	floorSUBACK     = 9
	floorPINGREQ    = 12
	floorPINGRESP   = 13
	floorDISCONNECT = 14
)

// floorMaxPacket bounds the packets the floor device reads: IoT Hub's
// largest method payload (128 KB) with room for its topic.
const floorMaxPacket = 132 << 10

// floorHandoffWorkers is how many goroutines answer the requests of a
// handoff floor device.
const floorHandoffWorkers = 16

// errFloorStopped tells the loop's end that Close stopped it.
var errFloorStopped = errors.New("bench: floor device: closed")

// errFloorProtocol reports a packet the floor device does not expect.
var errFloorProtocol = errors.New("bench: floor device: protocol error")

// floorMQTT is the echo device written by hand: MQTT 3.1.1 over its own
// TLS connection (with its own WebSocket framing for mqtt-ws), no MQTT or
// WebSocket library, and one goroutine that reads each packet and writes
// each answer itself, so no call is handed between goroutines. It is the
// least a device can do per call, and the floor the SDK's CPU per call is
// measured against. It shares no code with the SDK.
//
// It pings when it has read nothing for half its keep-alive: the loop
// reads under a deadline that it moves once a quarter of the keep-alive
// has passed, so the deadline costs nothing per call.
//
// With workers, it is the handoff floor: the loop acknowledges each
// request and hands a copy of it to one of the workers, goroutines that
// wait on a channel, build the answer in a buffer of their own and write
// it. That is one goroutine handoff per call, the least a device that
// never answers on the goroutine reading the network can do.
type floorMQTT struct {
	conn net.Conn      // the TLS connection
	w    floorWriter   // conn, for every write after the handshake
	r    *bufio.Reader // the MQTT stream: conn's bytes, or the WebSocket frames' payloads
	ws   *floorWS      // nil for MQTT over TLS
	qos  byte          // of the answers
	// keepAlive is floorKeepAlive but in tests: the loop pings when it has
	// read nothing for half of it.
	keepAlive time.Duration
	packetID  atomic.Uint32 // of the last answer at QoS 1, in its low 16 bits

	// Used by the loop alone.
	in    []byte    // the packet being read
	out   []byte    // the packet being written, after room for a frame header
	moved time.Time // when the read deadline was last moved

	// With workers: the loop sends them requests on jobs and closes it
	// when it ends; workers counts them until they have ended.
	workers sync.WaitGroup
	jobs    chan floorJob

	mu    sync.Mutex // guards cause and the read deadline
	cause error      // why the loop is to stop: errFloorStopped by Close, or a worker's failed write
	done  chan error // the loop's result
}

// floorJob is a request the loop hands to a worker: its topic and payload,
// in a copy of the packet, as the loop reads the next one into d.in.
type floorJob struct{ topic, payload []byte }

// floorWriter writes to a connection under a mutex. Each packet, and
// over WebSockets each frame, is written in one Write, so the writes of
// the loop and of the workers never interleave.
type floorWriter struct {
	mu   sync.Mutex
	conn io.Writer
}

func (w *floorWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn.Write(p)
}

// connectFloor dials, connects as the identity of connectionString,
// subscribes to methods and starts the device's goroutines; it answers at
// QoS qos, from the loop or, when workers > 0, from that many workers.
func connectFloor(ctx context.Context, webSocket bool, qos byte, workers int, t *Target, connectionString string) (Device, error) {
	cs, password, err := rawIdentity(connectionString)
	if err != nil {
		return nil, err
	}
	port := t.Port("mqtt")
	if webSocket {
		port = t.Port("mqtt-ws")
	}
	if port == 0 {
		port = 8883
		if webSocket {
			port = 443
		}
	}
	address := net.JoinHostPort(cs.HostName, strconv.Itoa(port))
	dialer := tls.Dialer{Config: &tls.Config{RootCAs: t.Roots, ServerName: cs.HostName, MinVersion: tls.VersionTLS12}}
	nc, err := dialer.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("bench: floor device: %w", err)
	}
	d := newFloorMQTT(nc, qos, workers, floorKeepAlive)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) }) // ends the handshake's I/O
	err = d.handshake(webSocket, address, cs.DeviceID, cs.HostName+"/"+cs.DeviceID+"/?api-version="+rawAPIVersion, password)
	if !stop() {
		err = fmt.Errorf("bench: floor device: %w", context.Cause(ctx))
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	d.start()
	return d, nil
}

// newFloorMQTT returns the device on nc, before its handshake, with
// workers goroutines to answer (none: the loop answers).
func newFloorMQTT(nc net.Conn, qos byte, workers int, keepAlive time.Duration) *floorMQTT {
	d := &floorMQTT{
		conn: nc, w: floorWriter{conn: nc}, r: bufio.NewReaderSize(nc, 4096), qos: qos, keepAlive: keepAlive,
		out: make([]byte, floorWSHeaderRoom, 512), done: make(chan error, 1),
	}
	if workers > 0 {
		d.jobs = make(chan floorJob, workers)
	}
	return d
}

// start starts the device's goroutines once the handshake is done.
func (d *floorMQTT) start() {
	d.moveDeadline(time.Now())
	for range cap(d.jobs) {
		d.workers.Go(d.work) // owned by d: ends when the loop closes d.jobs; joined by run
	}
	go d.run() // owned by d: ends when the connection does; joined by Close
}

// handshake opens the WebSocket when asked, sends CONNECT and SUBSCRIBE
// and reads their acknowledgements.
func (d *floorMQTT) handshake(webSocket bool, address, clientID, username, password string) error {
	if webSocket {
		ws, err := openFloorWS(&d.w, d.r, address)
		if err != nil {
			return err
		}
		d.ws = ws
		d.r = bufio.NewReaderSize(ws, 4096)
	}
	var keepAlive [2]byte
	binary.BigEndian.PutUint16(keepAlive[:], uint16(max(d.keepAlive/time.Second, 1)))
	body := appendFloorString(nil, "MQTT")
	body = append(body, 4, 0xC0) // protocol level 3.1.1; user name and password
	body = append(body, keepAlive[:]...)
	body = appendFloorString(body, clientID)
	body = appendFloorString(body, username)
	body = appendFloorString(body, password)
	if err := d.write(floorCONNECT<<4, body); err != nil {
		return err
	}
	typ, ack, err := d.readPacket()
	if err != nil {
		return fmt.Errorf("bench: floor device: read CONNACK: %w", err)
	}
	if typ>>4 != floorCONNACK || len(ack) != 2 {
		return fmt.Errorf("%w: packet %#x instead of CONNACK", errFloorProtocol, typ)
	}
	if ack[1] != 0 {
		return fmt.Errorf("%w: CONNACK refused the connection with code %d", errFloorProtocol, ack[1])
	}
	body = append([]byte{0, 1}, appendFloorString(nil, rawMethodsFilter)...) // packet identifier 1
	body = append(body, 0)                                                   // requests at QoS 0
	if err := d.write(floorSUBSCRIBE<<4|2, body); err != nil {
		return err
	}
	typ, ack, err = d.readPacket()
	if err != nil {
		return fmt.Errorf("bench: floor device: read SUBACK: %w", err)
	}
	if typ>>4 != floorSUBACK || len(ack) != 3 || ack[2] == 0x80 {
		return fmt.Errorf("%w: the subscription was not granted (packet %#x)", errFloorProtocol, typ)
	}
	return nil
}

// appendFloorString appends s with its 2-byte length.
func appendFloorString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// run is the device's loop: it serves until the connection ends or
// Close or a worker stops it, stops the workers and waits for them, says
// goodbye when Close stopped it, and closes the connection.
func (d *floorMQTT) run() {
	err := d.serve()
	d.conn.SetWriteDeadline(time.Now().Add(time.Second)) // bounds the workers' last answers and the goodbye
	if d.jobs != nil {
		close(d.jobs)
		d.workers.Wait()
	}
	if errors.Is(err, errFloorStopped) {
		d.write(floorDISCONNECT<<4, nil)
		err = nil
	}
	d.conn.Close()
	d.done <- err
}

// work is a worker: it answers the requests the loop hands it until the
// loop closes d.jobs. A failed write stops the loop.
func (d *floorMQTT) work() {
	out := make([]byte, floorWSHeaderRoom, 512)
	for job := range d.jobs {
		if err := d.answer(job.topic, job.payload, &out); err != nil {
			d.stop(err)
		}
	}
}

// serve reads packets and answers each request, until an error.
func (d *floorMQTT) serve() error {
	for {
		first, err := d.r.ReadByte()
		if err != nil {
			if !isTimeout(err) {
				return err
			}
			if err := d.stopCause(); err != nil {
				return err
			}
			// Nothing read for half the keep-alive (or Close): ping.
			if err := d.write(floorPINGREQ<<4, nil); err != nil {
				return err
			}
			d.moveDeadline(time.Now())
			continue
		}
		body, err := d.readBody()
		if err != nil {
			return err
		}
		switch first >> 4 {
		case floorPUBLISH:
			if d.jobs != nil {
				body = bytes.Clone(body) // the worker's
			}
			topic, payload, err := d.accept(first, body)
			if err != nil {
				return err
			}
			if d.jobs != nil {
				d.jobs <- floorJob{topic, payload}
			} else if err := d.answer(topic, payload, &d.out); err != nil {
				return err
			}
		case floorPUBACK, floorPINGRESP: // acknowledgements of answers and pings: nothing to do
		default:
			return fmt.Errorf("%w: unexpected packet %#x", errFloorProtocol, first)
		}
		if now := time.Now(); now.Sub(d.moved) > d.keepAlive/4 {
			d.moveDeadline(now)
		}
	}
}

// isTimeout reports whether err is a deadline's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stop has the loop stop for cause, through a read deadline in the past,
// unless it is stopping already.
func (d *floorMQTT) stop(cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cause == nil {
		d.cause = cause
	}
	d.conn.SetReadDeadline(time.Unix(1, 0))
}

// stopCause returns why the loop is to stop, or nil.
func (d *floorMQTT) stopCause() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cause
}

// moveDeadline sets the read deadline to half the keep-alive after now,
// unless stop has set it in the past.
func (d *floorMQTT) moveDeadline(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cause == nil {
		d.moved = now
		d.conn.SetReadDeadline(now.Add(d.keepAlive / 2))
	}
}

// readPacket reads one packet: its first byte and its body.
func (d *floorMQTT) readPacket() (byte, []byte, error) {
	first, err := d.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	body, err := d.readBody()
	return first, body, err
}

// readBody reads the remaining length and the rest of a packet whose
// first byte was read, into d.in.
func (d *floorMQTT) readBody() ([]byte, error) {
	n, shift := 0, 0
	for {
		b, err := d.r.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("bench: floor device: read packet: %w", noTimeout(err))
		}
		n |= int(b&0x7F) << shift
		if b&0x80 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return nil, fmt.Errorf("%w: bad remaining length", errFloorProtocol)
		}
	}
	if n > floorMaxPacket {
		return nil, fmt.Errorf("%w: packet of %d bytes", errFloorProtocol, n)
	}
	if cap(d.in) < n {
		d.in = make([]byte, n)
	}
	d.in = d.in[:n]
	if _, err := io.ReadFull(d.r, d.in); err != nil {
		return nil, fmt.Errorf("bench: floor device: read packet: %w", noTimeout(err))
	}
	return d.in, nil
}

// noTimeout turns a deadline's error, which cuts a packet in two, into
// one the loop does not take for a keep-alive's.
func noTimeout(err error) error {
	if isTimeout(err) {
		return fmt.Errorf("stalled within a packet: %v", err)
	}
	return err
}

// accept splits the PUBLISH whose first byte and body were read into its
// topic and payload, and acknowledges it when it is at QoS 1.
func (d *floorMQTT) accept(first byte, body []byte) (topic, payload []byte, err error) {
	if len(body) < 2 {
		return nil, nil, fmt.Errorf("%w: short PUBLISH", errFloorProtocol)
	}
	topicLen := int(binary.BigEndian.Uint16(body))
	if 2+topicLen > len(body) {
		return nil, nil, fmt.Errorf("%w: short PUBLISH", errFloorProtocol)
	}
	topic, payload = body[2:2+topicLen], body[2+topicLen:]
	if qos := first >> 1 & 3; qos > 0 {
		if len(payload) < 2 {
			return nil, nil, fmt.Errorf("%w: short PUBLISH", errFloorProtocol)
		}
		if err := d.write(floorPUBACK<<4, payload[:2]); err != nil {
			return nil, nil, err
		}
		payload = payload[2:]
	}
	return topic, payload, nil
}

// answer answers the PUBLISH of topic and payload, building the answer in
// *out, past its room for a frame header: 200 and the request's payload
// for EchoMethod, 501 for any other method. A PUBLISH that is not a
// method request is dropped, as no answer can reach its sender.
func (d *floorMQTT) answer(topic, payload []byte, out *[]byte) error {
	name, rid, ok := parseFloorTopic(topic)
	if !ok {
		return nil
	}
	status := "200"
	if string(name) == EchoMethod {
		payload = echoPayload(payload)
	} else {
		status, payload = "501", []byte(`{"error":"unknown method"}`)
	}

	topicLen := len(rawResponsePrefix) + len(status) + len(rawRIDSeparator) + len(rid)
	n := 2 + topicLen + len(payload)
	if d.qos > 0 {
		n += 2
	}
	b := appendFloorHeader((*out)[:floorWSHeaderRoom], floorPUBLISH<<4|d.qos<<1, n)
	b = binary.BigEndian.AppendUint16(b, uint16(topicLen))
	b = append(b, rawResponsePrefix...)
	b = append(b, status...)
	b = append(b, rawRIDSeparator...)
	b = append(b, rid...)
	if d.qos > 0 {
		id := uint16(d.packetID.Add(1))
		if id == 0 {
			id = uint16(d.packetID.Add(1))
		}
		b = binary.BigEndian.AppendUint16(b, id)
	}
	b = append(b, payload...)
	*out = b
	return d.send(b)
}

// parseFloorTopic splits "$iothub/methods/POST/{name}/?$rid={rid}[&…]"
// without allocating.
func parseFloorTopic(topic []byte) (name, rid []byte, ok bool) {
	if len(topic) < len(rawRequestPrefix) || string(topic[:len(rawRequestPrefix)]) != rawRequestPrefix {
		return nil, nil, false
	}
	rest := topic[len(rawRequestPrefix):]
	for i := range rest {
		if rest[i] == '/' {
			name, rest = rest[:i], rest[i:]
			break
		}
	}
	if len(name) == 0 || len(rest) < len(rawRIDSeparator) || string(rest[:len(rawRIDSeparator)]) != rawRIDSeparator {
		return nil, nil, false
	}
	rid = rest[len(rawRIDSeparator):]
	for i := range rid {
		switch rid[i] {
		case '&':
			rid = rid[:i]
		case '/':
			return nil, nil, false
		default:
			continue
		}
		break
	}
	if len(rid) == 0 {
		return nil, nil, false
	}
	return name, rid, true
}

// appendFloorHeader appends a packet's first byte and remaining length.
func appendFloorHeader(b []byte, first byte, n int) []byte {
	b = append(b, first)
	for {
		digit := byte(n & 0x7F)
		if n >>= 7; n > 0 {
			digit |= 0x80
		}
		b = append(b, digit)
		if n == 0 {
			return b
		}
	}
}

// write writes a packet of first byte and body.
func (d *floorMQTT) write(first byte, body []byte) error {
	out := appendFloorHeader(d.out[:floorWSHeaderRoom], first, len(body))
	out = append(out, body...)
	d.out = out
	return d.send(out)
}

// send writes packet, which starts after floorWSHeaderRoom spare bytes,
// in one write: as it is, or as one WebSocket frame.
func (d *floorMQTT) send(packet []byte) error {
	var err error
	if d.ws != nil {
		err = d.ws.writeFrame(floorWSBinary, packet)
	} else {
		_, err = d.w.Write(packet[floorWSHeaderRoom:])
	}
	if err != nil {
		return fmt.Errorf("bench: floor device: write: %w", err)
	}
	return nil
}

// Close stops the loop, which stops the workers, says goodbye and closes
// the connection, and waits for it.
func (d *floorMQTT) Close() error {
	d.stop(errFloorStopped)
	err := <-d.done
	d.done <- err // Close is idempotent
	return err
}
