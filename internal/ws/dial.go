package ws

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/directmethods/iotdevice/transport"
)

// Path is the resource of IoT Hub's WebSocket endpoint.
const Path = "/$iothub/websocket"

// DefaultPort is the port of IoT Hub's WebSocket endpoint (HTTPS).
const DefaultPort = 443

// maxMessageSize bounds one incoming WebSocket message. IoT Hub's largest
// MQTT packet is 256 KB; the bound leaves room for framing while keeping a
// misbehaving server from exhausting memory.
const maxMessageSize = 1 << 20

// closeTimeout bounds the WebSocket closing handshake in Close.
const closeTimeout = time.Second

// ErrSubprotocol reports a server that answered the upgrade without
// selecting the requested subprotocol.
var ErrSubprotocol = errors.New("ws: server did not accept the subprotocol")

// Options configures one Dial.
type Options struct {
	// Subprotocol is the WebSocket subprotocol to request: "mqtt" or
	// "AMQPWSB10". Required.
	Subprotocol string
	// TLSConfig is the client TLS configuration, already prepared by the
	// caller (ServerName, roots, client certificate). Nil means the system
	// roots and the address's host as server name.
	TLSConfig *tls.Config
	// Proxy picks the HTTP proxy for the request; nil means
	// http.ProxyFromEnvironment (HTTPS_PROXY, NO_PROXY).
	Proxy func(*http.Request) (*url.URL, error)
	// Header holds optional extra request headers, such as User-Agent.
	Header http.Header
	// DialContext opens the TCP connection (to the proxy when one
	// applies); nil means a net.Dialer's. Tests use it to give the socket
	// a small send buffer.
	DialContext func(ctx context.Context, network, address string) (net.Conn, error)
}

// Dial opens wss://{address}{Path}, where address is "host:port", through
// the proxy with HTTP CONNECT when one applies. It checks that the server
// accepted opts.Subprotocol (compared case-insensitively) and returns the
// stream of binary messages as a net.Conn. ctx bounds the dial only; the
// returned conn lives until Close.
func Dial(ctx context.Context, address string, opts Options) (net.Conn, error) {
	if opts.Subprotocol == "" {
		return nil, errors.New("ws: no subprotocol given")
	}
	u := url.URL{Scheme: "wss", Host: address, Path: Path}
	target := u.String()

	transport := newHTTPTransport(opts)
	defer transport.CloseIdleConnections()
	c, _, err := websocket.Dial(ctx, target, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: transport},
		HTTPHeader:   opts.Header,
		Subprotocols: []string{opts.Subprotocol},
	})
	if err != nil {
		if ctxErr := context.Cause(ctx); ctxErr != nil && !errors.Is(err, ctxErr) {
			return nil, fmt.Errorf("ws: dial %s: %w (%w)", target, ctxErr, err)
		}
		return nil, fmt.Errorf("ws: dial %s: %w", target, err)
	}
	if got := c.Subprotocol(); !strings.EqualFold(got, opts.Subprotocol) {
		_ = c.CloseNow()
		return nil, fmt.Errorf("%w: asked for %q, server chose %q", ErrSubprotocol, opts.Subprotocol, got)
	}

	lifetime, cancel := context.WithCancel(context.Background())
	nc := NetConn(lifetime, c)
	// NetConn lifts the read limit; restore a bound after it.
	c.SetReadLimit(maxMessageSize)
	return &conn{Conn: nc, cancel: cancel}, nil
}

// newHTTPTransport returns a transport for one upgrade request: HTTP/1.1
// only (WebSocket upgrades need it), the caller's TLS configuration, and
// the proxy.
func newHTTPTransport(opts Options) *http.Transport {
	proxy := opts.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	var tlsConfig *tls.Config
	if opts.TLSConfig != nil {
		tlsConfig = opts.TLSConfig.Clone()
	} else {
		tlsConfig = &tls.Config{}
	}
	tlsConfig.NextProtos = []string{"http/1.1"}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	return &http.Transport{
		Proxy:               proxy,
		DialContext:         opts.DialContext,
		TLSClientConfig:     tlsConfig,
		Protocols:           protocols,
		TLSHandshakeTimeout: 30 * time.Second,
	}
}

// conn is the WebSocket stream as a net.Conn whose Close also ends the
// lifetime context given to websocket.NetConn.
type conn struct {
	net.Conn
	cancel context.CancelFunc
}

// Close performs the WebSocket closing handshake, bounded by closeTimeout,
// and releases the connection.
func (c *conn) Close() error {
	// The timer cancels the lifetime context, which drops the connection,
	// if the peer does not finish the closing handshake in time.
	stop := time.AfterFunc(closeTimeout, c.cancel)
	err := c.Conn.Close()
	stop.Stop()
	c.cancel()
	return err
}

// NewNetwork returns the transport.Network of IoT Hub's WebSocket endpoint
// (wss://{host}:443/$iothub/websocket) with subprotocol, reached through
// Config.Proxy and announcing Config.UserAgent. name is the Network's Name.
func NewNetwork(name, subprotocol string) *transport.Network {
	return &transport.Network{
		Name:        name,
		DefaultPort: DefaultPort,
		Dial: func(ctx context.Context, address string, tlsConfig *tls.Config, cfg *transport.Config) (net.Conn, error) {
			var header http.Header
			if cfg.UserAgent != "" {
				header = http.Header{"User-Agent": {cfg.UserAgent}}
			}
			var proxy func(*http.Request) (*url.URL, error)
			if p := cfg.Proxy; p != nil {
				proxy = func(r *http.Request) (*url.URL, error) { return p(r.URL) }
			}
			return Dial(ctx, address, Options{Subprotocol: subprotocol, TLSConfig: tlsConfig, Proxy: proxy, Header: header})
		},
	}
}
