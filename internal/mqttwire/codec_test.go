package mqttwire

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// encode returns the bytes of p as paho's codec writes them.
func encode(t testing.TB, p packets.ControlPacket) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadPacket(t *testing.T) {
	publish := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	publish.TopicName = "$iothub/methods/POST/m/?$rid=1"
	publish.Payload = []byte(`{"a":1}`)
	tests := []struct {
		name    string
		in      []byte
		limit   int
		wantErr error // nil: the packet decodes
	}{
		{"publish", encode(t, publish), 1024, nil},
		{"pingresp", []byte{0xd0, 0x00}, 1024, nil},
		{"suback", []byte{0x90, 0x03, 0x00, 0x07, 0x00}, 1024, nil},
		{"suback without return codes", []byte{0x90, 0x02, 0x00, 0x07}, 1024, nil},
		{"connack", []byte{0x20, 0x02, 0x00, 0x05}, 1024, nil},
		{"unsuback", []byte{0xb0, 0x02, 0x00, 0x07}, 1024, nil},
		{"puback", []byte{0x40, 0x02, 0x12, 0x34}, 1024, nil},
		{"over the limit", encode(t, publish), 8, ErrPacketTooLarge},
		{"length of five bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 1024, ErrMalformedPacket},
		{"QoS 3", []byte{0x36, 0x00}, 1024, ErrMalformedPacket},
		{"flags on a PINGRESP", []byte{0xd1, 0x00}, 1024, ErrMalformedPacket},
		{"reserved type 0", []byte{0x00, 0x00}, 1024, ErrMalformedPacket},
		{"trailing bytes", []byte{0xd0, 0x01, 0x00}, 1024, ErrMalformedPacket},
		{"topic past the end", []byte{0x30, 0x03, 0x00, 0x05, 'a'}, 1024, ErrMalformedPacket},
		{"no topic length", []byte{0x30, 0x01, 0x00}, 1024, ErrMalformedPacket},
		{"no packet identifier", []byte{0x32, 0x04, 0x00, 0x01, 'a', 0x00}, 1024, ErrMalformedPacket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ReadPacket(bufio.NewReader(bytes.NewReader(tt.in)), tt.limit)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ReadPacket: %v", err)
				}
				if got := encode(t, p); !bytes.Equal(got, tt.in) {
					t.Errorf("re-encoded %x, read %x", got, tt.in)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ReadPacket = %v, %v; want %v", p, err, tt.wantErr)
			}
		})
	}
}

func TestReadPacketTruncated(t *testing.T) {
	publish := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	publish.TopicName = "t"
	publish.Payload = []byte("xyz")
	b := encode(t, publish)
	_, err := ReadPacket(bufio.NewReader(bytes.NewReader(b[:len(b)-1])), 1024)
	if err == nil || errors.Is(err, ErrMalformedPacket) {
		t.Fatalf("ReadPacket of a cut packet = %v, want an unexpected EOF", err)
	}
}

// FuzzReadPacket feeds arbitrary bytes to the packet reader: it returns a
// packet or an error, never panics, and never reads past the limit.
func FuzzReadPacket(f *testing.F) {
	seeds := [][]byte{
		{0x10, 0x00},
		{0x30, 0x05, 0x00, 0x01, 'a', 'x', 'y'},
		{0x32, 0x06, 0x00, 0x01, 'a', 0x00, 0x01, 'x'},
		{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, '#', 0x01},
		{0xa2, 0x05, 0x00, 0x01, 0x00, 0x01, '#'},
		{0x30, 0xff, 0xff, 0xff, 0x7f},
		{0xc0, 0x00},
	}
	connect := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	connect.ProtocolName, connect.ProtocolVersion, connect.ClientIdentifier = "MQTT", 4, "dev"
	seeds = append(seeds, encode(f, connect))
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ReadPacket(bufio.NewReader(bytes.NewReader(data)), 1024)
		if (p == nil) == (err == nil) {
			t.Errorf("ReadPacket(%x) = %v, %v", data, p, err)
		}
		if pub, ok := p.(*packets.PublishPacket); ok {
			// The PUBLISH fast path reads what paho's codec reads, and
			// WritePublish writes what paho's writes.
			start := 2 // the first byte and the remaining length's
			for data[start-1]&0x80 != 0 {
				start++
			}
			body := data[start : start+pub.RemainingLength]
			want, _ := packets.NewControlPacketWithHeader(pub.FixedHeader)
			if uerr := want.Unpack(bytes.NewReader(body)); uerr == nil {
				w := want.(*packets.PublishPacket)
				if w.TopicName != pub.TopicName || w.MessageID != pub.MessageID || !bytes.Equal(w.Payload, pub.Payload) {
					t.Errorf("PUBLISH %x read as %q %d %x, paho reads %q %d %x", data, pub.TopicName, pub.MessageID, pub.Payload, w.TopicName, w.MessageID, w.Payload)
				}
			}
			var got bytes.Buffer
			bw := bufio.NewWriter(&got)
			if err := WritePublish(bw, pub); err != nil {
				t.Fatalf("WritePublish: %v", err)
			}
			bw.Flush()
			if want := encode(t, pub); !bytes.Equal(got.Bytes(), want) {
				t.Errorf("WritePublish wrote %x, paho writes %x", got.Bytes(), want)
			}
		}
	})
}
