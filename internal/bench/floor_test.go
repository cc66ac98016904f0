package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFloorTopicAgreesWithRaw(t *testing.T) {
	for _, topic := range []string{
		"$iothub/methods/POST/echo/?$rid=1", "$iothub/methods/POST/reboot/?$rid=abc&$.x=1",
		"$iothub/methods/POST//?$rid=1", "$iothub/methods/POST/a/b/?$rid=1", "$iothub/methods/POST/echo/?$rid=",
		"$iothub/methods/POST/echo/?$rid=a/b", "$iothub/methods/POST/echo/?$rid=a&b/c", "$iothub/methods/POST/echo",
		"$iothub/twin/res/200/?$rid=1", "",
	} {
		checkFloorTopic(t, topic)
	}
}

func FuzzParseFloorTopic(f *testing.F) {
	for _, seed := range []string{"$iothub/methods/POST/echo/?$rid=1", "$iothub/methods/POST/x/?$rid=2&a=b", "$iothub/methods/POST/", "/?$rid="} {
		f.Add(seed)
	}
	f.Fuzz(checkFloorTopic)
}

// checkFloorTopic checks that the floor device reads topic as the raw
// device does.
func checkFloorTopic(t *testing.T, topic string) {
	name, rid, ok := parseFloorTopic([]byte(topic))
	wantName, wantRID, wantOK := parseMethodTopic(topic)
	if string(name) != wantName || string(rid) != wantRID || ok != wantOK {
		t.Errorf("parseFloorTopic(%q) = %q, %q, %v; want %q, %q, %v", topic, name, rid, ok, wantName, wantRID, wantOK)
	}
}

// floorHub is the hub's end of a floor device's connection, on a pipe:
// it writes whole packets, framed when over a WebSocket, and a goroutine
// of its own reads what the device writes, so that the device never
// blocks on a write (a pipe has no buffer, unlike TCP).
type floorHub struct {
	t       *testing.T
	c       net.Conn
	ws      bool
	packets chan floorRead
}

// floorRead is a frame's opcode (0 over TCP) and its payload, which is one
// packet: the device writes each packet in one frame.
type floorRead struct {
	opcode byte
	packet []byte
	err    error
}

// startFloorOnPipe starts a floor device with workers (none: the plain
// floor), past its handshake, on one end of a pipe and returns the hub's
// end and the device.
func startFloorOnPipe(t *testing.T, qos byte, ws bool, workers int, keepAlive time.Duration) (*floorHub, *floorMQTT) {
	t.Helper()
	deviceEnd, hubEnd := net.Pipe()
	d := newFloorMQTT(deviceEnd, qos, workers, keepAlive)
	if ws {
		d.ws = &floorWS{conn: &d.w, br: d.r}
		d.r = bufio.NewReader(d.ws)
	}
	d.start()
	h := &floorHub{t: t, c: hubEnd, ws: ws, packets: make(chan floorRead, 100)}
	go func() { // owned by the test: ends when the pipe closes; joined by the cleanup
		defer close(h.packets)
		br := bufio.NewReader(hubEnd)
		for {
			r := readFloorPacket(br, ws)
			h.packets <- r
			if r.err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		hubEnd.Close()
		for range h.packets { // until the goroutine ends
		}
		d.Close() // joins the device's goroutines, which the closed pipe ended
	})
	return h, d
}

// floorVariants are the floor devices the pipe tests run: the plain
// floor and the handoff floor, over TCP and WebSockets.
var floorVariants = []struct {
	name    string
	workers int
	ws      bool
}{
	{"floor/tcp", 0, false}, {"floor/ws", 0, true},
	{"handoff/tcp", floorHandoffWorkers, false}, {"handoff/ws", floorHandoffWorkers, true},
}

// write sends one packet, in a frame of opcode when over a WebSocket.
func (h *floorHub) write(packet []byte, opcode byte) {
	h.t.Helper()
	if h.ws {
		header := []byte{0x80 | opcode, 0}
		switch n := len(packet); {
		case n > 0xFFFF:
			header[1] = 127
			header = binary.BigEndian.AppendUint64(header, uint64(n))
		case n > 125:
			header[1] = 126
			header = binary.BigEndian.AppendUint16(header, uint16(n))
		default:
			header[1] = byte(n)
		}
		packet = append(header, packet...)
	}
	if _, err := h.c.Write(packet); err != nil {
		h.t.Fatal(err)
	}
}

// read returns the next frame's opcode and packet. PINGREQs are skipped
// unless pings is set.
func (h *floorHub) read(pings bool) (opcode byte, packet []byte) {
	h.t.Helper()
	timeout := time.NewTimer(10 * time.Second) // fails a stuck test rather than hanging it
	defer timeout.Stop()
	for {
		select {
		case r, ok := <-h.packets:
			if !ok || r.err != nil {
				h.t.Fatalf("hub read: %v", r.err)
			}
			if pings || r.opcode > floorWSBinary || !bytes.Equal(r.packet, []byte{floorPINGREQ << 4, 0}) {
				return r.opcode, r.packet
			}
		case <-timeout.C:
			h.t.Fatal("hub read: nothing from the device in 10 s")
		}
	}
}

// readFloorPacket reads one packet, or one frame over a WebSocket.
func readFloorPacket(br *bufio.Reader, ws bool) floorRead {
	if !ws {
		first, err := br.ReadByte()
		if err != nil {
			return floorRead{err: err}
		}
		n, shift, packet := 0, 0, []byte{first}
		for {
			b, err := br.ReadByte()
			if err != nil {
				return floorRead{err: err}
			}
			packet = append(packet, b)
			n |= int(b&0x7F) << shift
			shift += 7
			if b&0x80 == 0 {
				break
			}
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return floorRead{err: err}
		}
		return floorRead{packet: append(packet, body...)}
	}
	var head [2]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return floorRead{err: err}
	}
	if head[0]&0x80 == 0 || head[1]&0x80 == 0 {
		return floorRead{err: fmt.Errorf("frame header %x: want FIN and a mask", head)}
	}
	n := uint64(head[1] & 0x7F)
	var ext [8]byte
	switch n {
	case 126:
		if _, err := io.ReadFull(br, ext[:2]); err != nil {
			return floorRead{err: err}
		}
		n = uint64(binary.BigEndian.Uint16(ext[:2]))
	case 127:
		if _, err := io.ReadFull(br, ext[:8]); err != nil {
			return floorRead{err: err}
		}
		n = binary.BigEndian.Uint64(ext[:8])
	}
	var mask [4]byte
	if _, err := io.ReadFull(br, mask[:]); err != nil {
		return floorRead{err: err}
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return floorRead{err: err}
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return floorRead{opcode: head[0] & 0x0F, packet: payload}
}

// floorPublish is a PUBLISH of topic and payload at qos, with packet id
// when qos > 0.
func floorPublish(qos byte, id uint16, topic string, payload []byte) []byte {
	body := appendFloorString(nil, topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, id)
	}
	body = append(body, payload...)
	return append(appendFloorHeader(nil, floorPUBLISH<<4|qos<<1, len(body)), body...)
}

func TestFloorLoop(t *testing.T) {
	for _, v := range floorVariants {
		for _, qos := range []byte{0, 1} {
			t.Run(fmt.Sprintf("%s/qos%d", v.name, qos), func(t *testing.T) {
				t.Parallel()
				testFloorLoop(t, qos, v.ws, v.workers)
			})
		}
	}
}

func testFloorLoop(t *testing.T, qos byte, ws bool, workers int) {
	// The device's read deadline is half the keep-alive, and one that
	// passes in the middle of a packet ends the device, so the keep-alive
	// must outlast any stall of a loaded machine while the hub writes the
	// 70 KB request below, yet be short enough to wait for its PINGREQ.
	hub, d := startFloorOnPipe(t, qos, ws, workers, time.Second)
	frame := byte(0)
	if ws {
		frame = floorWSBinary
	}

	// Nothing to read for half the keep-alive: a PINGREQ.
	if _, got := hub.read(true); !bytes.Equal(got, []byte{floorPINGREQ << 4, 0}) {
		t.Fatalf("first packet %x, want PINGREQ", got)
	}
	hub.write([]byte{floorPINGRESP << 4, 0}, floorWSBinary)

	if ws { // a ping from the hub gets its pong
		hub.write([]byte("hi"), floorWSPing)
		if op, got := hub.read(false); op != floorWSPong || string(got) != "hi" {
			t.Fatalf("answer to a ping: opcode %#x %q, want a pong with %q", op, got, "hi")
		}
	}

	var id uint16
	answer := func(status, rid string, payload []byte) []byte {
		if qos > 0 {
			id++
		}
		return floorPublish(qos, id, "$iothub/methods/res/"+status+"/?$rid="+rid, payload)
	}
	for _, tt := range []struct {
		name     string
		request  []byte
		want     [][]byte
		wantNone bool
	}{
		{"echo", floorPublish(0, 0, "$iothub/methods/POST/echo/?$rid=7&x=1", []byte(`{"a":1}`)), [][]byte{answer("200", "7", []byte(`{"a":1}`))}, false},
		{"no payload", floorPublish(0, 0, "$iothub/methods/POST/echo/?$rid=8", nil), [][]byte{answer("200", "8", []byte("null"))}, false},
		{"300 bytes", floorPublish(0, 0, "$iothub/methods/POST/echo/?$rid=9", Payload(300)), [][]byte{answer("200", "9", Payload(300))}, false},
		{"70 KB", floorPublish(0, 0, "$iothub/methods/POST/echo/?$rid=10", Payload(70<<10)), [][]byte{answer("200", "10", Payload(70<<10))}, false},
		{"unknown method at QoS 1", floorPublish(1, 0x0902, "$iothub/methods/POST/reboot/?$rid=11", []byte("1")),
			[][]byte{{floorPUBACK << 4, 2, 9, 2}, answer("501", "11", []byte(`{"error":"unknown method"}`))}, false},
		{"not a request", floorPublish(0, 0, "$iothub/twin/res/200/?$rid=12", []byte("{}")), nil, true},
		{"after it", floorPublish(0, 0, "$iothub/methods/POST/echo/?$rid=13", []byte("2")), [][]byte{answer("200", "13", []byte("2"))}, false},
	} {
		hub.write(tt.request, floorWSBinary)
		for _, want := range tt.want {
			op, got := hub.read(false)
			if op != frame {
				t.Fatalf("%s: frame opcode %#x, want %#x", tt.name, op, frame)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("%s: answer (-want +got):\n%s", tt.name, diff)
			}
		}
		if qos > 0 && len(tt.want) > 0 { // the hub acknowledges; the device reads on
			hub.write([]byte{floorPUBACK << 4, 2, byte(id >> 8), byte(id)}, floorWSBinary)
		}
	}

	closed := make(chan error, 1)
	go func() { closed <- d.Close() }() // joined below
	if _, got := hub.read(false); !bytes.Equal(got, []byte{floorDISCONNECT << 4, 0}) {
		t.Errorf("last packet %x, want DISCONNECT", got)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFloorLoopEndsOnProtocolErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		packet []byte
		want   error
	}{
		{"SUBACK", []byte{floorSUBACK << 4, 3, 0, 1, 0}, errFloorProtocol},
		{"short PUBLISH", []byte{floorPUBLISH << 4, 1, 0}, errFloorProtocol},
		{"topic beyond the packet", []byte{floorPUBLISH << 4, 3, 0, 9, 'a'}, errFloorProtocol},
		{"remaining length of 5 bytes", []byte{floorPUBLISH << 4, 0xFF, 0xFF, 0xFF, 0xFF, 1}, errFloorProtocol},
		{"end of stream", nil, io.EOF},
	} {
		for _, workers := range []int{0, floorHandoffWorkers} {
			t.Run(fmt.Sprintf("%s/workers=%d", tt.name, workers), func(t *testing.T) {
				t.Parallel()
				hub, d := startFloorOnPipe(t, 0, false, workers, time.Hour)
				hub.c.Write(tt.packet) // fails once the device stops reading
				hub.c.Close()
				if err := d.Close(); !errors.Is(err, tt.want) {
					t.Errorf("Close after %s: %v, want %v", tt.name, err, tt.want)
				}
			})
		}
	}
}

func TestFloorFailedWriteEndsLoop(t *testing.T) {
	for _, v := range floorVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			hub, d := startFloorOnPipe(t, 0, v.ws, v.workers, time.Hour)
			d.conn.SetWriteDeadline(time.Unix(1, 0)) // the answer's write fails
			hub.write(floorPublish(0, 0, "$iothub/methods/POST/echo/?$rid=1", []byte("1")), floorWSBinary)
			for r := range hub.packets { // until the device closes the connection
				if r.err == nil {
					t.Errorf("the device wrote %x after its write failed", r.packet)
				}
			}
			if err := d.Close(); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Close after a failed write: %v, want the write's error", err)
			}
		})
	}
}

func TestFloorHandoffAnswersConcurrently(t *testing.T) {
	for _, ws := range []bool{false, true} {
		for _, qos := range []byte{0, 1} {
			t.Run(fmt.Sprintf("ws=%v/qos%d", ws, qos), func(t *testing.T) {
				t.Parallel()
				testFloorHandoffAnswersConcurrently(t, qos, ws)
			})
		}
	}
}

// testFloorHandoffAnswersConcurrently sends requests back to back, so
// that the workers answer them at once, and checks that every answer
// arrives whole, each at QoS 1 with a packet identifier of its own.
func testFloorHandoffAnswersConcurrently(t *testing.T, qos byte, ws bool) {
	hub, d := startFloorOnPipe(t, qos, ws, floorHandoffWorkers, time.Hour)
	const n = 64 // fewer than the hub's reader buffers
	want, ids := map[string]bool{}, map[uint16]bool{}
	for i := range n {
		rid := strconv.Itoa(i)
		want[rid] = true
		hub.write(floorPublish(0, 0, "$iothub/methods/POST/echo/?$rid="+rid, Payload(i+2)), floorWSBinary)
	}
	for range n {
		_, packet := hub.read(false)
		first, body := packet[0], packet[1:]
		for body[0]&0x80 != 0 { // the remaining length
			body = body[1:]
		}
		body = body[1:]
		topicLen := int(binary.BigEndian.Uint16(body))
		topic, rest := string(body[2:2+topicLen]), body[2+topicLen:]
		if first != floorPUBLISH<<4|qos<<1 {
			t.Fatalf("answer %x: first byte %#x", packet, first)
		}
		if qos > 0 {
			ids[binary.BigEndian.Uint16(rest)] = true
			rest = rest[2:]
		}
		rid, ok := strings.CutPrefix(topic, "$iothub/methods/res/200/?$rid=")
		i, err := strconv.Atoi(rid)
		if !ok || err != nil || !want[rid] || !bytes.Equal(rest, Payload(i+2)) {
			t.Fatalf("answer %q with payload of %d bytes: not the answer to one of the requests not yet answered", topic, len(rest))
		}
		delete(want, rid)
	}
	if qos > 0 && (len(ids) != n || ids[0]) {
		t.Errorf("%d distinct packet identifiers (0 among them: %v), want %d", len(ids), ids[0], n)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestFloorWebSocketRejects(t *testing.T) {
	for _, tt := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"masked frame", []byte{0x82, 0x81, 1, 2, 3, 4, 5}, "masked"},
		{"long ping", append([]byte{0x89, 126, 0, 200}, make([]byte, 200)...), "control frame"},
		{"opcode 3", []byte{0x83, 0}, "opcode"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub, d := startFloorOnPipe(t, 0, true, 0, time.Hour)
			hub.c.Write(tt.frame) // fails once the device stops reading
			hub.c.Close()
			if err := d.Close(); !errors.Is(err, errFloorWS) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Close after a %s: %v, want errFloorWS about %q", tt.name, err, tt.want)
			}
		})
	}
}
