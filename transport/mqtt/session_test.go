package mqtt

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/transport"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// receiveEnd calls Receive until it fails and returns the request ids it
// got before and the error.
func receiveEnd(t *testing.T, c transport.Conn) ([]string, error) {
	t.Helper()
	ctx := dialCtx(t)
	var ids []string
	for {
		req, err := c.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("Receive did not end within %v", waitTimeout)
			}
			return ids, err
		}
		ids = append(ids, req.RequestID)
	}
}

// TestGarbageFromTheHub: bytes that are not a packet the hub may send end
// the connection with an error that says what was wrong, after the
// requests that came before them.
func TestGarbageFromTheHub(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"remaining length over 256 KB", []byte{0x30, 0x80, 0x80, 0x80, 0x01}, mqttwire.ErrPacketTooLarge},
		{"remaining length of 200 MB", []byte{0x30, 0x80, 0x80, 0x80, 0x64}, mqttwire.ErrPacketTooLarge},
		{"remaining length of five bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, mqttwire.ErrMalformedPacket},
		{"reserved packet type", []byte{0xf0, 0x00}, mqttwire.ErrMalformedPacket},
		{"PUBLISH at QoS 2", []byte{0x34, 0x05, 0x00, 0x01, 't', 0x00, 0x01}, mqttwire.ErrMalformedPacket},
		{"a second CONNACK", []byte{0x20, 0x02, 0x00, 0x00}, mqttwire.ErrMalformedPacket},
		{"a SUBSCRIBE", []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, '#', 0x00}, mqttwire.ErrMalformedPacket},
		{"topic longer than the packet", []byte{0x30, 0x03, 0x00, 0x09, 'x'}, mqttwire.ErrMalformedPacket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := dialed(t, nil)
			s.request(t, "$iothub/methods/POST/m/?$rid=1", []byte(`{}`))
			s.writeRaw(t, tt.raw)
			ids, err := receiveEnd(t, c)
			if len(ids) != 1 || ids[0] != "1" {
				t.Errorf("requests before the garbage = %v, want [1]", ids)
			}
			if !errors.Is(err, transport.ErrConnLost) || !errors.Is(err, tt.want) {
				t.Errorf("Receive = %v, want transport.ErrConnLost and %v", err, tt.want)
			}
			receive(t, s.done, "the connection to close")
		})
	}
}

// TestRequestAtQoS1IsAcknowledged: a request the hub publishes at QoS 1
// (IoT Hub uses QoS 0, but a session may hold one) is delivered and
// acknowledged.
func TestRequestAtQoS1IsAcknowledged(t *testing.T) {
	c, s := dialed(t, nil)
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName = "$iothub/methods/POST/m/?$rid=5"
	p.Qos, p.MessageID = 1, 77
	p.Payload = []byte(`{"x":1}`)
	if err := s.write(p); err != nil {
		t.Fatal(err)
	}
	req, err := c.Receive(dialCtx(t))
	if err != nil || req.RequestID != "5" || string(req.Payload) != `{"x":1}` {
		t.Fatalf("Receive = %+v, %v; want request 5 with its payload", req, err)
	}
	if id := receive(t, s.pubacks, "PUBACK"); id != 77 {
		t.Errorf("PUBACK for packet %d, want 77", id)
	}
}

// TestKeepAlive: a silent connection sends PINGREQ within the keep-alive;
// one whose PINGREQ goes unanswered for the ping timeout is lost.
func TestKeepAlive(t *testing.T) {
	t.Run("answered", func(t *testing.T) {
		h := startHub(t, hubScript{})
		cfg := testConfig(t, h.port(), newCountingCredential(t))
		cfg.KeepAlive = time.Second
		c, err := NewDialer(nil).Dial(dialCtx(t), cfg)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		s := receive(t, h.sessions, "session")
		if s.connect.Keepalive != 1 {
			t.Errorf("CONNECT keep-alive = %d s, want 1", s.connect.Keepalive)
		}
		for range 2 {
			receive(t, s.pings, "PINGREQ")
		}
		// Still connected: a request goes through after the pings.
		s.request(t, "$iothub/methods/POST/m/?$rid=2", nil)
		if req, err := c.Receive(dialCtx(t)); err != nil || req.RequestID != "2" {
			t.Errorf("Receive after pings = %+v, %v", req, err)
		}
	})
	t.Run("unanswered", func(t *testing.T) {
		h := startHub(t, hubScript{noPingresp: true})
		cfg := testConfig(t, h.port(), newCountingCredential(t))
		cfg.KeepAlive = time.Second
		c, err := NewDialer(&Options{PingTimeout: 500 * time.Millisecond}).Dial(dialCtx(t), cfg)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		s := receive(t, h.sessions, "session")
		receive(t, s.pings, "PINGREQ")
		_, err = receiveEnd(t, c)
		if !errors.Is(err, transport.ErrConnLost) || !strings.Contains(err.Error(), "PINGRESP") {
			t.Errorf("Receive = %v, want transport.ErrConnLost naming the missing PINGRESP", err)
		}
		if err := c.Respond(context.Background(), &transport.MethodRequest{RequestID: "x"}, 200, nil); !errors.Is(err, transport.ErrConnLost) {
			t.Errorf("Respond on the lost connection = %v, want transport.ErrConnLost", err)
		}
	})
}

// TestCloseSendsDisconnect: Close writes DISCONNECT and returns once the
// session's goroutines have ended (the leak check of TestMain would see
// them otherwise); Respond afterwards fails with net.ErrClosed.
func TestCloseSendsDisconnect(t *testing.T) {
	c, s := dialed(t, nil)
	c.Close()
	receive(t, s.done, "the hub to read DISCONNECT")
	if !s.disconnected.Load() {
		t.Error("the connection ended without DISCONNECT")
	}
	if err := c.Respond(dialCtx(t), &transport.MethodRequest{RequestID: "x"}, 200, nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Respond after Close = %v, want net.ErrClosed", err)
	}
}
