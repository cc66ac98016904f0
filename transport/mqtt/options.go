package mqtt

import (
	"time"

	"github.com/directmethods/iotdevice/internal/netdial"
	"github.com/directmethods/iotdevice/transport"
)

// Defaults for Options.
const (
	// DefaultQueueSize is how many requests wait between the network and
	// Receive before new ones are answered 503.
	DefaultQueueSize = 256
	// DefaultQueueBytes is how many payload bytes those requests may hold
	// together: 32 requests of the largest payload IoT Hub carries (128 KB).
	DefaultQueueBytes = 4 << 20
	// defaultKeepAlive applies when the Config leaves KeepAlive at zero.
	defaultKeepAlive = 30 * time.Second
	// defaultConnectTimeout bounds the handshake and the subscription when
	// ctx has no deadline.
	defaultConnectTimeout = 30 * time.Second
	// maxKeepAlive is the longest keep-alive sent. IoT Hub closes a
	// connection that stays silent for 1.5 times the keep-alive, but never
	// waits longer than 1767 s whatever the device asks ("Communicate with
	// an IoT hub using the MQTT protocol", learn.microsoft.com, section
	// "Default keep-alive timeout"). With a keep-alive of at most 1767/1.5
	// seconds the device pings before the hub gives up on it.
	maxKeepAlive = 1178 * time.Second
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
	// PingTimeout is how long a PINGREQ may wait for its PINGRESP, from
	// the moment it is written, before the connection is declared lost. It
	// also bounds every write: each 16 KB of a packet must be taken by the
	// network within it, so a slow link carries large answers as long as it
	// keeps moving. Default: the keep-alive (30 s unless the Config says
	// otherwise), so that a link that stalls for less than the keep-alive
	// costs nothing, and a dead one is noticed within twice the keep-alive.
	PingTimeout time.Duration
	// QueueSize is how many received requests are buffered for Receive;
	// when it is full, new requests are answered 503 at once. Default
	// DefaultQueueSize (256).
	QueueSize int
	// QueueBytes bounds the payload bytes of the buffered requests in the
	// same way (one request is always taken when the queue is empty).
	// Default DefaultQueueBytes (4 MiB).
	QueueBytes int
	// AnswerAtMostOnce publishes answers at QoS 0, as the C and Node SDKs
	// do: one packet less per call and no acknowledgement, so nobody can
	// tell whether an answer reached the hub. By default answers go at
	// QoS 1: Respond returns once the answer is written, and its PUBACK is
	// awaited apart; an answer not acknowledged before the connection ends
	// is reported through transport.Config.AnswerLost. Either way an
	// answer goes only on the connection of its request (IoT Hub numbers
	// request ids per connection), so one lost with its connection is not
	// sent again, and its caller gets 504101.
	AnswerAtMostOnce bool
}

// tlsNetwork is MQTT over TLS on port 8883, the default.
var tlsNetwork = netdial.TLSNetwork(tlsPort)

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Network == nil {
		out.Network = tlsNetwork
	}
	if out.QueueSize <= 0 {
		out.QueueSize = DefaultQueueSize
	}
	if out.QueueBytes <= 0 {
		out.QueueBytes = DefaultQueueBytes
	}
	return out
}
