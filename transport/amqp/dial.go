package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/internal/netdial"
	"github.com/directmethods/iotdevice/transport"
)

// Dialer connects identities to IoT Hub over AMQP 1.0. It keeps no
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
// puts the frame guard between it and go-amqp (see frameGuard), then
// opens the AMQP connection and session, authenticates, attaches the method
// receiver and sender links and returns once both are attached. With a
// SAS credential it uses SASL ANONYMOUS and a CBS put-token of the one
// token it obtains from cfg.Credential; with a certificate credential the
// TLS client certificate authenticates and there is neither SASL nor CBS.
// ctx bounds the whole attempt; a failure after the connection opened
// closes it before Dial returns.
func (d *Dialer) Dial(ctx context.Context, cfg *transport.Config) (transport.Conn, error) {
	if cfg == nil {
		return nil, errors.New("amqp: nil config")
	}
	network := d.opts.Network
	if err := netdial.Check(network); err != nil {
		return nil, fmt.Errorf("amqp: %w", err)
	}
	tlsConfig, err := cfg.ClientTLS()
	if err != nil {
		return nil, fmt.Errorf("amqp: %w", err)
	}
	x509 := cfg.Credential.ClientCertificate() != nil
	var token string
	if !x509 {
		if token, _, err = cfg.Credential.Token(ctx, cfg.Resource()); err != nil {
			return nil, fmt.Errorf("amqp: get token: %w", err)
		}
		if token == "" {
			return nil, errors.New("amqp: the credential returned neither a token nor a client certificate")
		}
	}

	address := cfg.Address(network.DefaultPort)
	nc, err := dialNetwork(ctx, network, address, tlsConfig, cfg)
	if err != nil {
		return nil, err
	}

	connOpts := &goamqp.ConnOptions{
		ContainerID:  newUUID().String(),
		HostName:     cfg.HostName,
		IdleTimeout:  idleTimeout(cfg.KeepAlive),
		MaxFrameSize: maxFrameSize, // what the guard enforces once the hub has opened
	}
	if !x509 {
		connOpts.SASLType = goamqp.SASLTypeAnonymous()
	}
	c := newConn(cfg, d.opts, nil) // the client is set once go-amqp has opened the connection
	c.guard = newFrameGuard(nc, c.guardHooks())
	client, err := goamqp.NewConn(ctx, c.guard, connOpts) // owns the guard, and so nc, from now on
	if err != nil {
		c.abort()
		if refused := c.guard.Err(); refused != nil {
			err = refused // as the guard said it, rather than go-amqp's report of it
		}
		return nil, fmt.Errorf("amqp: open connection to %s: %w", address, linkFailure(ctx, err))
	}
	c.client = client
	if err := c.setUp(ctx, token); err != nil {
		c.abort()
		return nil, fmt.Errorf("%w (endpoint %s)", err, address)
	}
	c.start()
	c.log.Info("amqp connected", "endpoint", address, "network", network.Name)
	return c, nil
}

// dialNetwork opens the secured byte stream AMQP runs over, keeping the
// cause of a cancelled ctx next to the network's own error.
func dialNetwork(ctx context.Context, network *transport.Network, address string, tlsConfig *tls.Config, cfg *transport.Config) (net.Conn, error) {
	nc, err := network.Dial(ctx, address, tlsConfig, cfg)
	if err != nil {
		if ctxErr := context.Cause(ctx); ctxErr != nil && !errors.Is(err, ctxErr) {
			return nil, fmt.Errorf("amqp: dial %s: %w (%w)", address, ctxErr, err)
		}
		return nil, fmt.Errorf("amqp: dial %s: %w", address, err)
	}
	return nc, nil
}

// setUp begins the session, authenticates with CBS when token is set and
// attaches the method links.
func (c *conn) setUp(ctx context.Context, token string) error {
	session, err := c.client.NewSession(ctx, nil)
	if err != nil {
		return fmt.Errorf("amqp: begin session: %w", linkFailure(ctx, err))
	}
	c.session = session
	if token != "" {
		if c.cbs, err = openCBS(ctx, session); err != nil {
			return fmt.Errorf("amqp: %w", linkFailure(ctx, err))
		}
		if err := c.cbs.putToken(ctx, token, c.cfg.Resource(), c.opts.PutTokenTimeout); err != nil {
			return err
		}
	}
	return c.attachMethodLinks(ctx)
}
