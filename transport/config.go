package transport

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/directmethods/iotdevice/sas"
)

// Config is what an adapter needs to reach one identity's method channel.
// The client builds it once, validated and defaulted; adapters must not
// modify it.
type Config struct {
	// HostName is the hub's host name, used in the MQTT username, the token
	// resource and, unless GatewayHostName is set, as the network endpoint.
	HostName string
	// GatewayHostName, when set, is the host to connect to (an IoT Edge
	// gateway); the identity and token still name HostName.
	GatewayHostName string
	// Port overrides the protocol's standard port (8883, 5671 or 443).
	Port int
	// DeviceID and ModuleID name the identity; ModuleID is empty for a
	// device.
	DeviceID string
	ModuleID string
	// Credential supplies the token or the client certificate.
	Credential sas.Credential
	// TLSConfig is cloned for each connection. Nil means the system roots;
	// set RootCAs to trust a private CA such as the local hub's.
	TLSConfig *tls.Config
	// KeepAlive is the interval of protocol keep-alives (MQTT PINGREQ, AMQP
	// idle time-out) by which a dead connection is detected.
	KeepAlive time.Duration
	// UserAgent identifies the client software to the hub.
	UserAgent string
	// ModelID is the IoT Plug and Play model ID (a DTMI) the identity
	// announces on each connection; empty announces none. The client has
	// validated it.
	ModelID string
	// Proxy returns the HTTP proxy for a WebSocket connection to target
	// (an https URL), or nil to connect directly; nil means the
	// environment's HTTPS_PROXY and NO_PROXY, as http.ProxyFromEnvironment
	// reads them. It takes the URL rather than an *http.Request so that
	// programs without WebSockets do not link net/http.
	Proxy func(target *url.URL) (*url.URL, error)
	// Logger receives the adapter's logs; never nil once the client built
	// the Config. It already carries the identity (device_id, module_id):
	// adapters add only their own attributes, such as "transport".
	Logger *slog.Logger
	// AnswerLost, when set, is told of each answer that Respond sent (it
	// returned nil) but the hub did not confirm: the connection ended
	// before the acknowledgement came, the hub refused or released the
	// answer, or more answers awaited acknowledgement than the adapter
	// tracks. err says which. It is called at most once per answer, from
	// one of the adapter's goroutines, never with a lock held, and must not
	// block. Adapters that send answers at most once never call it: they
	// cannot tell.
	AnswerLost func(req *MethodRequest, status int, err error)
}

// Endpoint returns the host to connect to: the gateway if set, else the hub.
func (c *Config) Endpoint() string {
	if c.GatewayHostName != "" {
		return c.GatewayHostName
	}
	return c.HostName
}

// Address returns "host:port" for the endpoint, with Port if set, else
// defaultPort.
func (c *Config) Address(defaultPort int) string {
	port := defaultPort
	if c.Port != 0 {
		port = c.Port
	}
	return joinHostPort(c.Endpoint(), port)
}

func joinHostPort(host string, port int) string {
	if len(host) > 0 && host[0] != '[' && containsColon(host) {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// ClientID returns "{device}" or "{device}/{module}".
func (c *Config) ClientID() string {
	if c.ModuleID != "" {
		return c.DeviceID + "/" + c.ModuleID
	}
	return c.DeviceID
}

// Resource returns the resource URI the identity's tokens must cover.
func (c *Config) Resource() string { return sas.Resource(c.HostName, c.DeviceID, c.ModuleID) }

// ClientTLS returns a TLS configuration for one connection: a clone of
// TLSConfig with ServerName set to the endpoint, TLS 1.2 at least, and the
// credential's client certificate if it has one. Verification is never
// disabled here.
func (c *Config) ClientTLS() (*tls.Config, error) {
	var t *tls.Config
	if c.TLSConfig != nil {
		t = c.TLSConfig.Clone()
	} else {
		t = &tls.Config{}
	}
	if t.ServerName == "" {
		t.ServerName = c.Endpoint()
	}
	if t.MinVersion < tls.VersionTLS12 {
		t.MinVersion = tls.VersionTLS12
	}
	if c.Credential == nil {
		return nil, errors.New("transport: config has no credential")
	}
	if cert := c.Credential.ClientCertificate(); cert != nil {
		t.Certificates = []tls.Certificate{*cert}
	}
	return t, nil
}
