package amqp

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
	// DefaultPutTokenTimeout bounds one CBS put-token exchange, as the C
	// SDK does (DEFAULT_CBS_REQUEST_TIMEOUT_SECS in azure-iot-sdk-c,
	// iothub_client/src/iothubtransport_amqp_common.c).
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
	// busyAnswerTimeout bounds how long a 503 answer waits for link
	// credit; the link is treated as failed after it.
	busyAnswerTimeout = 10 * time.Second
	// tlsPort is the standard port of AMQP over TLS.
	tlsPort = 5671
)

// Options configures a Dialer. The zero value is valid.
type Options struct {
	// Network opens the byte stream AMQP runs over. Nil means TLS on port
	// 5671. Package amqpws supplies AMQP over WebSockets on port 443; it
	// lives apart so that programs which only speak AMQP over TLS do not
	// link an HTTP client and a WebSocket library.
	Network *transport.Network
	// QueueSize is how many received requests are buffered for Receive;
	// when it is full, new requests are answered 503 at once. Default
	// DefaultQueueSize (256).
	QueueSize int
	// PutTokenTimeout bounds each CBS put-token exchange, at Dial and in
	// RefreshToken, on top of the caller's context. Default
	// DefaultPutTokenTimeout (30 s).
	PutTokenTimeout time.Duration
	// AnswerAtMostOnce sends answers pre-settled, as the C# SDK does: the
	// hub sends no disposition, so the adapter cannot tell whether an
	// answer reached the hub, and tracks nothing. By default answers go
	// unsettled, as the C SDK sends them, and the hub's disposition of
	// each is awaited apart: an answer the hub rejects, releases or
	// modifies, or that the connection loses first, is reported through
	// Config.AnswerLost. Either way Respond returns once the answer is
	// written, and an answer goes only on the link pair of its request,
	// so one lost with its connection is not sent again, and its caller
	// gets 504101.
	AnswerAtMostOnce bool

	// maxUnsettledAnswers bounds the answers awaiting the hub's
	// disposition (a test hook). Default defaultMaxUnsettledAnswers.
	maxUnsettledAnswers int
}

// tlsNetwork is AMQP over TLS on port 5671, the default.
var tlsNetwork = netdial.TLSNetwork(tlsPort)

// logName is the value of the transport attribute of a connection's logs.
// Connections over the default network log transport=amqp, those over any
// other transport=amqp-{Name} (amqpws's is "ws": transport=amqp-ws).
func logName(n *transport.Network) string {
	if n == tlsNetwork || n.Name == "" {
		return "amqp"
	}
	return "amqp-" + n.Name
}

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
	if out.PutTokenTimeout <= 0 {
		out.PutTokenTimeout = DefaultPutTokenTimeout
	}
	if out.maxUnsettledAnswers <= 0 {
		out.maxUnsettledAnswers = defaultMaxUnsettledAnswers
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
