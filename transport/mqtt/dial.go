package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/internal/mqttwire"
	"github.com/directmethods/iotdevice/transport"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Dialer connects identities to IoT Hub over MQTT 3.1.1. It keeps no
// per-connection state and is safe for concurrent use.
type Dialer struct {
	opts Options
}

var _ transport.Dialer = (*Dialer)(nil)

// NewDialer returns a Dialer; nil opts means the defaults.
func NewDialer(opts *Options) *Dialer {
	return &Dialer{opts: opts.withDefaults()}
}

// Dial opens the network connection (Options.Network, TLS by default),
// sends CONNECT, subscribes to method requests at QoS 0 and returns once
// the SUBACK granted the subscription. It obtains exactly one token from
// cfg.Credential. ctx bounds the whole attempt; a failure after the
// CONNACK disconnects before Dial returns.
func (d *Dialer) Dial(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
	if cfg == nil {
		return nil, errors.New("mqtt: nil config")
	}
	if err := d.opts.Network.Validate(); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	tlsConfig, err := cfg.ClientTLS()
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	password, _, err := cfg.Credential.Token(ctx, cfg.Resource())
	if err != nil {
		return nil, fmt.Errorf("mqtt: get token: %w", err)
	}

	c := newConn(cfg, &d.opts)
	network := d.opts.Network
	open := &opener{ctx: ctx, released: make(chan struct{}), tls: tlsConfig, cfg: cfg, network: network, address: cfg.Address(network.DefaultPort)}
	c.released = open.released

	opts := paho.NewClientOptions()
	// paho only names the server in its own logs: open dials it.
	opts.Servers = []*url.URL{{Scheme: "ssl", Host: open.address}}
	opts.SetCustomOpenConnectionFn(open.open)
	opts.SetProtocolVersion(4)
	opts.SetClientID(cfg.ClientID())
	opts.SetUsername(mqttwire.Username(cfg))
	opts.SetPassword(password)
	opts.SetCleanSession(false)
	opts.SetKeepAlive(keepAlive(cfg.KeepAlive))
	opts.SetPingTimeout(d.opts.PingTimeout)
	// A write that cannot finish within the ping timeout means the link is
	// gone, as a missing PINGRESP would. Without this bound paho lets a
	// Publish that raced a connection loss wait 30 s for a writer that has
	// stopped, holding back its answer and Close.
	opts.SetWriteTimeout(d.opts.PingTimeout)
	opts.SetConnectTimeout(connectTimeout(ctx))
	opts.SetAutoReconnect(false)
	opts.SetConnectRetry(false)
	opts.SetResumeSubs(false)
	opts.SetOrderMatters(true)
	opts.SetDefaultPublishHandler(c.onMessage) // requests of a persisted session may precede the SUBACK
	opts.SetConnectionLostHandler(c.onConnectionLost)
	c.client = paho.NewClient(opts)

	if err := c.connect(ctx, open); err != nil {
		return nil, fmt.Errorf("%w (endpoint %s)", err, open.address)
	}
	if err := c.subscribe(ctx); err != nil {
		c.shutdown()
		return nil, err
	}
	c.log.Info("mqtt connected", "endpoint", open.address, "network", network.Name)
	return c, nil
}

// connect waits for the CONNACK, or for ctx, in which case it aborts the
// network connection and waits for paho's connect goroutine to end.
func (c *conn) connect(ctx context.Context, open *opener) error {
	tok := c.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		open.abort()
		<-tok.Done()
		if tok.Error() == nil {
			c.shutdown()
		}
		return fmt.Errorf("mqtt: connect: %w", context.Cause(ctx))
	}
	if err := tok.Error(); err != nil {
		if code := tok.(*paho.ConnectToken).ReturnCode(); code != packets.Accepted && code != packets.ErrNetworkError {
			return connackError(code, err)
		}
		if ctxErr := context.Cause(ctx); ctxErr != nil && !errors.Is(err, ctxErr) {
			return fmt.Errorf("mqtt: connect: %w (%w)", ctxErr, err)
		}
		return fmt.Errorf("mqtt: connect: %w", err)
	}
	return nil
}

// subscribe subscribes to method requests and waits for the SUBACK.
func (c *conn) subscribe(ctx context.Context) error {
	tok := c.client.Subscribe(mqttwire.MethodsFilter, 0, c.onMessage)
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("mqtt: subscribe: %w", context.Cause(ctx))
	case <-c.inbox.Done():
		return fmt.Errorf("mqtt: subscribe: %w", c.inbox.Err())
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqtt: subscribe: %w: %w", transport.ErrConnLost, err)
	}
	granted, ok := tok.(*paho.SubscribeToken).Result()[mqttwire.MethodsFilter]
	if !ok || granted == subackFailure {
		return fmt.Errorf("mqtt: subscription to %s refused", mqttwire.MethodsFilter)
	}
	return nil
}

// subackFailure is the SUBACK return code of a refused subscription.
const subackFailure = 0x80

func keepAlive(d time.Duration) time.Duration {
	if d <= 0 {
		return defaultKeepAlive
	}
	// MQTT counts keep-alive in whole seconds; zero would disable it.
	return max(d.Round(time.Second), time.Second)
}

func connectTimeout(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return max(time.Until(deadline), time.Millisecond)
	}
	return defaultConnectTimeout
}

// opener opens the network connection for paho, honouring the Dial ctx
// (paho's hook has no ctx parameter, so the opener closes over it).
type opener struct {
	ctx     context.Context
	tls     *tls.Config
	cfg     *transport.Config
	network *transport.Network
	address string

	mu       sync.Mutex
	aborted  bool
	conn     net.Conn
	released chan struct{} // closed when paho closes the connection
}

// open is paho's OpenConnectionFunc; paho calls it once per Connect, on its
// connect goroutine.
func (o *opener) open(*url.URL, paho.ClientOptions) (net.Conn, error) {
	nc, err := o.network.Dial(o.ctx, o.address, o.tls, o.cfg)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.aborted {
		_ = nc.Close()
		return nil, fmt.Errorf("mqtt: dial %s: %w", o.address, context.Cause(o.ctx))
	}
	o.conn = &trackedConn{Conn: nc, released: o.released}
	return o.conn, nil
}

// abort closes the connection opened so far, or the next one to be opened,
// so that paho's handshake fails at once.
func (o *opener) abort() {
	o.mu.Lock()
	o.aborted = true
	nc := o.conn
	o.mu.Unlock()
	if nc != nil {
		_ = nc.Close()
	}
}

// trackedConn reports through released when paho has closed it.
type trackedConn struct {
	net.Conn
	once     sync.Once
	released chan struct{}
}

func (t *trackedConn) Close() error {
	err := t.Conn.Close()
	t.once.Do(func() { close(t.released) })
	return err
}
