package transport

import (
	"context"
	"time"
)

// Dialer opens connections to the hub. The client calls Dial again after
// every failure, so a Dialer keeps no per-connection state.
type Dialer interface {
	// Dial connects, authenticates and subscribes to method requests, and
	// returns only when requests can flow: after the MQTT SUBACK, or once
	// both AMQP method links are attached. It honours ctx for the whole
	// attempt.
	//
	// Token lifetime: a Dial that authenticates with a token obtains
	// exactly one, through cfg.Credential.Token, and presents that one (a
	// certificate credential needs none). The client learns the
	// connection's token expiry from that call, and schedules renewal
	// from it: in band through TokenRefresher, else by dialing again
	// before it expires.
	Dial(ctx context.Context, cfg *Config) (Conn, error)
}

// DialerFunc adapts a function to a Dialer.
type DialerFunc func(ctx context.Context, cfg *Config) (Conn, error)

// Dial calls f.
func (f DialerFunc) Dial(ctx context.Context, cfg *Config) (Conn, error) { return f(ctx, cfg) }

// Conn is one authenticated connection carrying method requests. It never
// reconnects.
type Conn interface {
	// Receive returns the next method request. It blocks until one arrives,
	// ctx is done (returning ctx's error; the Conn stays usable), or the
	// connection fails or is closed (returning an error; the Conn is then
	// unusable). After Close, Receive first returns the requests already
	// received and buffered, then an error wrapping net.ErrClosed, so that
	// a client replacing a connection loses nothing the hub delivered.
	// Several goroutines may wait in Receive at once; each request goes
	// to one of them.
	Receive(ctx context.Context) (*MethodRequest, error)

	// Respond sends the response to req, which this Conn's Receive
	// returned: an answer goes only on the connection its request arrived
	// on, since IoT Hub numbers requests per connection. payload is the
	// JSON body, already validated by the client.
	//
	// Respond returns once the answer is written to the network (or handed
	// to the protocol library's link), not once the hub has acknowledged
	// it: a hub slow to acknowledge never holds the caller. An adapter that
	// asks for acknowledgements (MQTT QoS 1, unsettled AMQP transfers)
	// awaits them apart, with a bound on how many it tracks, and reports
	// each answer the hub did not confirm through Config.AnswerLost.
	//
	// ctx bounds the wait before the answer goes out: an answer that could
	// not be sent before ctx ends is not sent at all, since its caller has
	// given up, and Respond returns ctx's error. A link that gives the
	// answer no room to go out until then (no AMQP credit) is treated as
	// failed.
	Respond(ctx context.Context, req *MethodRequest, status int, payload []byte) error

	// Close ends the connection. It is idempotent and returns once the
	// adapter's goroutines have ended.
	Close() error
}

// MethodRequest is one method invocation as the hub delivered it.
type MethodRequest struct {
	// Name is the method name exactly as the hub wrote it.
	Name string
	// RequestID identifies the invocation: the MQTT $rid, or the AMQP
	// correlation id in its string form. It is echoed in the response.
	RequestID string
	// Payload is the request body, normally JSON; empty means no payload.
	Payload []byte
	// Handle is the adapter's own data for answering, such as the AMQP
	// correlation id in its wire type. Other code must leave it alone.
	Handle any
}

// TokenRefresher is implemented by a Conn that can put a new token on the
// live connection (AMQP's claims-based security). Without it, the client
// renews a token by closing the connection and dialing a new one.
type TokenRefresher interface {
	// RefreshToken obtains exactly one new token from the Config's
	// credential, presents it on the connection and returns its expiry.
	RefreshToken(ctx context.Context) (expiry time.Time, err error)
}

// Quiescer is implemented by a Conn that can stop the hub from sending it
// requests before a deliberate close (MQTT: unsubscribe and wait for the
// UNSUBACK). The client quiesces a connection before replacing it to renew
// a token, so that no request is in flight on it when it closes.
type Quiescer interface {
	// Quiesce stops new requests. Once it has returned nil, Receive
	// returns the requests already received and then an error wrapping
	// ErrQuiesced; Respond still answers them. A request the hub sends
	// after all is answered 503 by the adapter.
	Quiesce(ctx context.Context) error
}

// EndNotifier is implemented by a Conn that can tell when it has ended,
// failed or closed, without a call to Receive. A client takes a request
// only when a handler slot is free, and so may not be in Receive when the
// connection fails; it watches Done to notice at once.
type EndNotifier interface {
	// Done returns a channel closed once the connection has ended.
	Done() <-chan struct{}
}
