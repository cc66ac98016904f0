package device

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/directmethods/iotdevice/transport"
)

// ClientOptions configures a Client. A nil *ClientOptions, and every zero
// field, means the documented default.
type ClientOptions struct {
	// Transport connects to the hub. Default: MQTT over TLS on port 8883
	// (transport/mqtt).
	Transport transport.Dialer

	// GatewayHostName, when set, is the host to connect to (an IoT Edge
	// gateway) while the identity still names the hub. A connection
	// string's GatewayHostName is used when this is empty.
	GatewayHostName string
	// Port overrides the transport's standard port (8883 MQTT, 5671 AMQP,
	// 443 WebSockets), for gateways and the local hub.
	Port int
	// TLSConfig is cloned for every connection. Default: the system's root
	// CAs. To trust a private CA, such as the local hub's, set RootCAs.
	// Verification cannot be turned off through this package.
	TLSConfig *tls.Config
	// Proxy returns the HTTP proxy for a WebSocket connection to target
	// (an https URL), or nil to connect directly. Default: the
	// environment's HTTPS_PROXY and NO_PROXY, as http.ProxyFromEnvironment
	// reads them. For a fixed proxy u:
	//
	//	Proxy: func(*url.URL) (*url.URL, error) { return u, nil }
	Proxy func(target *url.URL) (*url.URL, error)

	// KeepAlive is the protocol keep-alive interval; a dead connection is
	// noticed within about twice this. Default: 30 s.
	KeepAlive time.Duration
	// DialTimeout bounds one connection attempt, authentication and
	// subscription included. Default: 30 s.
	DialTimeout time.Duration
	// TokenLifetime is how long the tokens signed from a connection
	// string's SharedAccessKey (NewClientFromConnectionString) or by the
	// IoT Edge workload API (edge.NewModuleClient) live; they
	// are renewed at about 80 % of it. Default: 1 h. NewClient and
	// NewModuleClient refuse it: their credential sets its own lifetime
	// (sas.NewKeyCredential).
	TokenLifetime time.Duration
	// Backoff returns the delay before reconnection attempt n (1, 2, …).
	// Default: ExponentialBackoff(time.Second, time.Minute). The attempt
	// count restarts after a connection that stayed up for a minute.
	Backoff func(attempt int) time.Duration

	// MethodTimeout is the deadline of each handler's context; a handler
	// still running then is answered 504 on its behalf. The hub's own
	// timeout is chosen by the caller and not sent to the device. Default:
	// 30 s.
	MethodTimeout time.Duration
	// MaxConcurrentMethods caps the handlers running at once. Requests
	// beyond it wait in the transport's queue (mqtt.Options.QueueSize and
	// QueueBytes, amqp.Options.QueueSize: 256 requests, 4 MiB of payload
	// by default), and the transport answers 503 to those beyond the
	// queue. Default: 16.
	MaxConcurrentMethods int
	// ShutdownTimeout is how long Close (or the end of Run) lets running
	// handlers finish before cancelling their contexts. Default: 10 s.
	ShutdownTimeout time.Duration

	// ModelID is the IoT Plug and Play model the device implements, a DTMI
	// such as "dtmi:com:example:TemperatureController;2". It is announced
	// on every connection: in the MQTT username, or on the AMQP method
	// links. Empty announces none. A value that is not a DTMI with a
	// version fails the constructor.
	ModelID string

	// OnStateChange is called on each connection state change, in order,
	// from one goroutine of the client's: never on a network goroutine and
	// never concurrently with itself. err says why for StateDisconnected and
	// StateClosed. It must not block for long: later events wait for it.
	OnStateChange func(state State, err error)
	// UserAgent is appended to the SDK's own user agent.
	UserAgent string
	// Logger receives the client's logs. Default: none. Payloads, keys and
	// tokens are never logged.
	Logger *slog.Logger
}

// Defaults.
const (
	defaultKeepAlive       = 30 * time.Second
	defaultDialTimeout     = 30 * time.Second
	defaultMethodTimeout   = 30 * time.Second
	defaultMaxConcurrent   = 16
	defaultShutdownTimeout = 10 * time.Second
	// stableConnection is how long a connection must last for the backoff
	// attempt count to restart.
	stableConnection = time.Minute
	// throttledFloor is the shortest delay after the hub throttled us.
	throttledFloor = 10 * time.Second
	// userAgent names this SDK to the hub.
	userAgent = "iotdevice-go/0.1"
)

// withDefaults returns a copy of o (nil allowed) with defaults filled in,
// or an error for values that cannot work.
func (o *ClientOptions) withDefaults() (ClientOptions, error) {
	var c ClientOptions
	if o != nil {
		c = *o
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"KeepAlive", c.KeepAlive}, {"DialTimeout", c.DialTimeout}, {"TokenLifetime", c.TokenLifetime},
		{"MethodTimeout", c.MethodTimeout}, {"ShutdownTimeout", c.ShutdownTimeout},
	} {
		if d.v < 0 {
			return c, fmt.Errorf("%w: %s is negative", ErrInvalidConfig, d.name)
		}
	}
	switch {
	case c.Port < 0 || c.Port > 65535:
		return c, fmt.Errorf("%w: Port %d is out of range", ErrInvalidConfig, c.Port)
	case c.MaxConcurrentMethods < 0:
		return c, fmt.Errorf("%w: MaxConcurrentMethods is negative", ErrInvalidConfig)
	case c.KeepAlive > 0 && c.KeepAlive < time.Second:
		return c, fmt.Errorf("%w: KeepAlive %v is under a second", ErrInvalidConfig, c.KeepAlive)
	}
	if err := validateModelID(c.ModelID); err != nil {
		return c, fmt.Errorf("%w: ModelID: %w", ErrInvalidConfig, err)
	}
	if c.TLSConfig != nil && c.TLSConfig.InsecureSkipVerify {
		return c, fmt.Errorf("%w: TLSConfig.InsecureSkipVerify is not supported; trust the hub's CA with RootCAs", ErrInvalidConfig)
	}
	if c.Transport == nil {
		c.Transport = defaultTransport()
	}
	setDefault(&c.KeepAlive, defaultKeepAlive)
	setDefault(&c.DialTimeout, defaultDialTimeout)
	setDefault(&c.MethodTimeout, defaultMethodTimeout)
	setDefault(&c.ShutdownTimeout, defaultShutdownTimeout)
	setDefault(&c.MaxConcurrentMethods, defaultMaxConcurrent)
	if c.Backoff == nil {
		c.Backoff = ExponentialBackoff(time.Second, time.Minute)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.UserAgent == "" {
		c.UserAgent = userAgent
	} else {
		c.UserAgent = userAgent + " " + c.UserAgent
	}
	return c, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
