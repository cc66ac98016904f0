package amqp

import "time"

// Defaults for Options.
const (
	// DefaultQueueSize is how many requests wait between the network and
	// Receive before new ones are answered 503.
	DefaultQueueSize = 256
	// DefaultPutTokenTimeout bounds one CBS put-token exchange, as the C
	// SDK does (protocol.md §5.2).
	DefaultPutTokenTimeout = 30 * time.Second
)

const (
	// defaultKeepAlive applies when the Config leaves KeepAlive at zero.
	defaultKeepAlive = 30 * time.Second
	// closeTimeout bounds the graceful part of Close (detaching the links
	// and ending the session) before the connection is closed.
	closeTimeout = 5 * time.Second
	// receiverCredit is the link credit of the method receiver; go-amqp
	// tops it up as requests are settled.
	receiverCredit = 100
	// busyQueueSize bounds the 503 answers waiting to be sent when the
	// request queue is full; beyond it requests are dropped (and time out
	// at the hub).
	busyQueueSize = 64
	// standard ports of AMQP over TLS and over WebSockets.
	tlsPort       = 5671
	webSocketPort = 443
	// webSocketSubprotocol is IoT Hub's subprotocol for AMQP over
	// WebSockets (protocol.md §6).
	webSocketSubprotocol = "AMQPWSB10"
)

// Options configures a Dialer. The zero value is valid.
type Options struct {
	// WebSocket selects AMQP over
	// wss://{endpoint}:{port or 443}/$iothub/websocket with subprotocol
	// "AMQPWSB10" instead of AMQP over TLS on port 5671.
	WebSocket bool
	// QueueSize is how many received requests are buffered for Receive;
	// when it is full, new requests are answered 503 at once. Default
	// DefaultQueueSize (256).
	QueueSize int
	// PutTokenTimeout bounds each CBS put-token exchange, at Dial and in
	// RefreshToken, on top of the caller's context. Default
	// DefaultPutTokenTimeout (30 s).
	PutTokenTimeout time.Duration
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.QueueSize <= 0 {
		out.QueueSize = DefaultQueueSize
	}
	if out.PutTokenTimeout <= 0 {
		out.PutTokenTimeout = DefaultPutTokenTimeout
	}
	return out
}

// idleTimeout is the AMQP idle time-out to advertise for a keep-alive
// interval. Peers send empty frames at half the advertised time-out, so
// advertising twice the interval makes the hub's keep-alives arrive every
// interval, and a silent hub is detected after two of them.
func idleTimeout(keepAlive time.Duration) time.Duration {
	if keepAlive <= 0 {
		keepAlive = defaultKeepAlive
	}
	return 2 * keepAlive
}
