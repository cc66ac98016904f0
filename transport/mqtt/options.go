package mqtt

import "time"

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
	// disconnectQuiesce is how long Close waits for the DISCONNECT packet
	// to be written, in milliseconds.
	disconnectQuiesce = 250
	// releaseTimeout bounds how long Close waits for the network
	// connection to be released after the disconnect.
	releaseTimeout = 5 * time.Second
	// standard ports of MQTT over TLS and over WebSockets.
	tlsPort       = 8883
	webSocketPort = 443
)

// Options configures a Dialer. The zero value is valid.
type Options struct {
	// WebSocket selects MQTT over wss://{endpoint}:{port or 443}/$iothub/websocket
	// with subprotocol "mqtt" instead of MQTT over TLS on port 8883.
	WebSocket bool
	// PingTimeout is how long to wait for a PINGRESP before the connection
	// is declared lost. Default DefaultPingTimeout (15 s).
	PingTimeout time.Duration
	// QueueSize is how many received requests are buffered for Receive;
	// when it is full, new requests are answered 503 at once. Default
	// DefaultQueueSize (256).
	QueueSize int
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.PingTimeout <= 0 {
		out.PingTimeout = DefaultPingTimeout
	}
	if out.QueueSize <= 0 {
		out.QueueSize = DefaultQueueSize
	}
	return out
}
