package mqtt

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/directmethods/iotdevice/transport"
)

// Defaults for Options.
const (
	// DefaultPingTimeout is how long to wait for a PINGRESP. With a 30 s
	// keep-alive, a dead link is noticed in under a minute.
	DefaultPingTimeout = 15 * time.Second
	// DefaultQueueSize is how many requests wait between the network and
	// Receive before new ones are answered 503.
	DefaultQueueSize = 256
	// defaultKeepAlive applies when the Config leaves KeepAlive at zero.
	defaultKeepAlive = 30 * time.Second
	// defaultConnectTimeout bounds the MQTT handshake when ctx has no
	// deadline.
	defaultConnectTimeout = 30 * time.Second
	// maxKeepAlive is the largest keep-alive MQTT can express: 65,535 s.
	maxKeepAlive = 65535 * time.Second
	// disconnectTimeout is how long Close waits for the DISCONNECT packet
	// to be written before it closes the network connection anyway.
	disconnectTimeout = 250 * time.Millisecond
	// tlsPort is the standard port of MQTT over TLS.
	tlsPort = 8883
)

// Options configures a Dialer. The zero value is valid.
type Options struct {
	// Network opens the byte stream MQTT runs over. Nil means TLS on port
	// 8883. Package mqttws supplies MQTT over WebSockets on port 443; it
	// lives apart so that programs which only speak MQTT over TLS do not
	// link an HTTP client and a WebSocket library.
	Network *transport.Network
	// PingTimeout is how long to wait for a PINGRESP before the connection
	// is declared lost; it also bounds each write to the network (an
	// answer of 128 KB needs a link of at least 9 KB/s at the default).
	// Default DefaultPingTimeout (15 s).
	PingTimeout time.Duration
	// QueueSize is how many received requests are buffered for Receive;
	// when it is full, new requests are answered 503 at once. Default
	// DefaultQueueSize (256).
	QueueSize int
	// AnswerAtMostOnce publishes answers at QoS 0, as the C and Node SDKs
	// do: one packet less per call and no acknowledgement to wait for, but
	// Respond cannot tell whether an answer reached the hub. By default
	// answers go at QoS 1: Respond returns once the hub acknowledged the
	// answer, and fails if the connection breaks first. Either way an
	// answer goes only on the connection of its request (IoT Hub numbers
	// request ids per connection), so one lost with its connection is not
	// sent again, and its caller gets 504101.
	AnswerAtMostOnce bool
}

// tlsNetwork is MQTT over TLS on port 8883, the default.
var tlsNetwork = &transport.Network{Name: "tls", DefaultPort: tlsPort, Dial: dialTLS}

// dialTLS is the Dial of tlsNetwork.
func dialTLS(ctx context.Context, address string, tlsConfig *tls.Config, _ *transport.Config) (net.Conn, error) {
	return transport.DialTLS(ctx, address, tlsConfig)
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Network == nil {
		out.Network = tlsNetwork
	}
	if out.PingTimeout <= 0 {
		out.PingTimeout = DefaultPingTimeout
	}
	if out.QueueSize <= 0 {
		out.QueueSize = DefaultQueueSize
	}
	return out
}
