package device

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/device/internal/clientcfg"
	"github.com/directmethods/iotdevice/internal/idcheck"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

// Client is a device or module's connection to the hub's direct methods.
// Build it with NewClient, NewModuleClient or NewClientFromConnectionString,
// serve methods with Run, stop it with Close or by cancelling Run's
// context. A Client runs once. Its methods are safe for concurrent use.
type Client struct {
	cfg  transport.Config // template of every connection's Config
	opts ClientOptions    // with defaults
	log  *slog.Logger

	counters counters

	mu        sync.Mutex
	started   bool
	closed    bool
	cancelRun context.CancelCauseFunc // ends Run; set while it runs
	grace     context.Context         // the first Shutdown's context: how long handlers may finish
	done      chan struct{}           // closed when Run has returned
	live      *origin                 // the live connection, nil between connections
}

// NewClient returns a client for a device identity on the hub hostName,
// authenticated by cred (see package sas). Invalid arguments or options
// fail here, not at Run.
func NewClient(hostName, deviceID string, cred sas.Credential, opts *ClientOptions) (*Client, error) {
	if err := refuseConnectionStringOptions(opts); err != nil {
		return nil, err
	}
	return newClient(hostName, deviceID, "", cred, "", opts)
}

// refuseConnectionStringOptions refuses the options that only a
// connection string gives a meaning to, so that none is silently ignored.
func refuseConnectionStringOptions(opts *ClientOptions) error {
	if opts != nil && opts.TokenLifetime != 0 {
		return fmt.Errorf("%w: TokenLifetime applies to connection strings; set the lifetime in sas.NewKeyCredential", ErrInvalidConfig)
	}
	return nil
}

// NewModuleClient returns a client for the module moduleID of deviceID.
func NewModuleClient(hostName, deviceID, moduleID string, cred sas.Credential, opts *ClientOptions) (*Client, error) {
	if moduleID == "" {
		return nil, fmt.Errorf("%w: empty module id", ErrInvalidConfig)
	}
	if err := refuseConnectionStringOptions(opts); err != nil {
		return nil, err
	}
	return newClient(hostName, deviceID, moduleID, cred, "", opts)
}

// NewClientFromConnectionString returns a client for the identity a device
// or module connection string names (see sas.ParseConnectionString), with
// its SharedAccessKey (tokens live for TokenLifetime) or its
// SharedAccessSignature. A connection string with x509=true takes
// NewX509ClientFromConnectionString.
func NewClientFromConnectionString(connectionString string, opts *ClientOptions) (*Client, error) {
	cs, err := sas.ParseConnectionString(connectionString)
	if err != nil {
		return nil, err
	}
	if cs.X509 {
		return nil, fmt.Errorf("%w: %w: use NewX509ClientFromConnectionString", ErrInvalidConfig, sas.ErrNeedCertificate)
	}
	var lifetime time.Duration
	if opts != nil {
		lifetime = opts.TokenLifetime
	}
	cred, err := cs.Credential(lifetime)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return newClient(cs.HostName, cs.DeviceID, cs.ModuleID, cred, cs.GatewayHostName, opts)
}

// NewX509ClientFromConnectionString returns a client for the X.509
// identity a connection string with x509=true names, authenticated by
// cert, the TLS client certificate whose thumbprint or CA the hub knows.
func NewX509ClientFromConnectionString(connectionString string, cert tls.Certificate, opts *ClientOptions) (*Client, error) {
	cs, err := sas.ParseConnectionString(connectionString)
	if err != nil {
		return nil, err
	}
	if !cs.X509 {
		return nil, fmt.Errorf("%w: the connection string does not say x509=true", ErrInvalidConfig)
	}
	if err := refuseConnectionStringOptions(opts); err != nil {
		return nil, err
	}
	cred, err := sas.NewCertificateCredential(cert)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return newClient(cs.HostName, cs.DeviceID, cs.ModuleID, cred, cs.GatewayHostName, opts)
}

func newClient(host, deviceID, moduleID string, cred sas.Credential, gateway string, opts *ClientOptions) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, fmt.Errorf("%w: nil credential", ErrInvalidConfig)
	}
	if err := idcheck.HostName(host); err != nil {
		return nil, fmt.Errorf("%w: host name: %w", ErrInvalidConfig, err)
	}
	if err := idcheck.ID(deviceID); err != nil {
		return nil, fmt.Errorf("%w: device id: %w", ErrInvalidConfig, err)
	}
	if moduleID != "" {
		if err := idcheck.ID(moduleID); err != nil {
			return nil, fmt.Errorf("%w: module id: %w", ErrInvalidConfig, err)
		}
	}
	if o.GatewayHostName != "" {
		gateway = o.GatewayHostName
	}
	if gateway != "" {
		if err := idcheck.HostName(gateway); err != nil {
			return nil, fmt.Errorf("%w: gateway host name: %w", ErrInvalidConfig, err)
		}
	}
	log := o.Logger.With("device_id", deviceID)
	if moduleID != "" {
		log = log.With("module_id", moduleID)
	}
	o.Logger = log
	c := &Client{
		cfg: transport.Config{
			HostName: host, GatewayHostName: gateway, Port: o.Port,
			DeviceID: deviceID, ModuleID: moduleID, Credential: cred,
			TLSConfig: o.TLSConfig, KeepAlive: o.KeepAlive, UserAgent: o.UserAgent, ModelID: o.ModelID,
			Proxy: o.Proxy, Logger: log,
		},
		opts: o,
		log:  log,
		done: make(chan struct{}),
	}
	c.cfg.AnswerLost = c.answerLost
	return c, nil
}

// Shutdown stops the client gracefully, as http.Server.Shutdown does: it
// stops taking requests (those still arriving are answered 503), lets
// running handlers finish and answers them, closes the connection, and
// returns nil once every goroutine the client started has ended. If ctx
// ends first, the handlers still running are cancelled and answered 503
// on their behalf, their answers get about a second more, and Shutdown
// returns ctx's error once the client's goroutines have ended (a handler
// that ignores its cancelled context is left to finish on its own: Go
// cannot stop it). Run then returns ErrClientClosed. Calling Shutdown or
// Close again waits for the same end.
func (c *Client) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	if c.grace == nil {
		c.grace = ctx
	}
	cancel, started := c.cancelRun, c.started
	c.mu.Unlock()
	if cancel != nil {
		cancel(ErrClientClosed)
	}
	if started {
		<-c.done
	}
	return ctx.Err()
}

// Close is Shutdown with a grace period of ShutdownTimeout; it returns
// nil. It suits a defer; use Shutdown to bound the stop by a context of
// your own.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ShutdownTimeout)
	defer cancel()
	_ = c.Shutdown(ctx)
	return nil
}

// graceContext returns the context the shutdown's grace period lasts
// for: the one given to the first Shutdown, or ShutdownTimeout from now
// (cancel releases it).
func (c *Client) graceContext() (context.Context, context.CancelFunc) {
	c.mu.Lock()
	grace := c.grace
	c.mu.Unlock()
	if grace != nil {
		return grace, func() {}
	}
	return context.WithTimeout(context.Background(), c.opts.ShutdownTimeout)
}

// Stats returns the client's counters. It is safe to call at any time,
// during Run or after.
func (c *Client) Stats() Stats { return c.counters.stats() }

// The settings the client gives its transport, for package edge.
func init() { clientcfg.Of = func(c any) transport.Config { return c.(*Client).cfg } }

// setLive makes o the live connection (nil: none).
func (c *Client) setLive(o *origin) {
	c.mu.Lock()
	c.live = o
	c.mu.Unlock()
}

// liveOrigin returns the live connection, or nil.
func (c *Client) liveOrigin() *origin {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// answerLost counts and logs an answer that went out but that the hub did
// not confirm (transport.Config.AnswerLost). It runs on a transport's
// goroutine and does not block.
func (c *Client) answerLost(req *transport.MethodRequest, status int, err error) {
	c.counters.answersLost.Add(1)
	c.log.Warn("method answer not confirmed by the hub; the caller may get a timeout",
		"method", req.Name, "request_id", req.RequestID, "status", status, "err", err)
}
