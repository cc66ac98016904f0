package provisioning

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/idcheck"
	"github.com/directmethods/iotdevice/internal/netdial"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

// Defaults for Options.
const (
	// DefaultHost is DPS's global device endpoint.
	DefaultHost = "global.azure-devices-provisioning.net"
	// DefaultTimeout bounds a Register whose context has no deadline.
	DefaultTimeout = 5 * time.Minute
	// DefaultPollInterval is the wait between polls when DPS's answer gives
	// no retry-after, as the C# SDK waits.
	DefaultPollInterval = 2 * time.Second
	// tlsPort is MQTT over TLS.
	tlsPort = 8883
	// keepAlive is the MQTT keep-alive of a registration's connection,
	// which lasts seconds.
	keepAlive = 30 * time.Second
	// userAgent names this SDK to DPS.
	userAgent = "iotdevice-go/0.1"
)

// ErrInvalidConfig reports arguments or options a Client cannot work with.
var ErrInvalidConfig = errors.New("provisioning: invalid configuration")

// Options configures a Client. A nil *Options, and every zero field, means
// the documented default.
type Options struct {
	// Host is DPS's device endpoint. Default: DefaultHost.
	Host string
	// Port overrides the network's standard port (8883 for MQTT over TLS,
	// 443 over WebSockets), for the local hub.
	Port int
	// Network opens the byte stream MQTT runs over. Nil means TLS on port
	// 8883; mqttws.Network() is MQTT over WebSockets on port 443, which
	// links an HTTP client and a WebSocket library into the program.
	Network *transport.Network
	// TLSConfig is cloned for each connection, and is the default of the
	// device client NewDeviceClient builds. Default: the system's root
	// CAs; to trust a private CA, such as the local hub's, set RootCAs.
	// Verification cannot be turned off through this package.
	TLSConfig *tls.Config
	// Proxy returns the HTTP proxy for a WebSocket connection to target;
	// nil means the environment's HTTPS_PROXY and NO_PROXY.
	Proxy func(target *url.URL) (*url.URL, error)
	// Payload is custom JSON sent with the registration, for a custom
	// allocation policy to read. Nil sends none.
	Payload json.RawMessage
	// ModelID is the device's IoT Plug and Play model, announced in the
	// registration payload as {"modelId": …}, as IoT Central expects;
	// with Payload, Payload must be a JSON object and gets the field too.
	ModelID string
	// TokenLifetime is how long the tokens signed from a symmetric key
	// live, at DPS and, through NewDeviceClient, at the hub. Default: 1 h.
	TokenLifetime time.Duration
	// Backoff returns the delay before attempt n (1, 2, …) after a
	// connection failure or a 5xx answer. Default:
	// device.ExponentialBackoff(time.Second, time.Minute).
	Backoff func(attempt int) time.Duration
	// UserAgent is appended to the SDK's own user agent.
	UserAgent string
	// Logger receives the client's logs. Default: none. Keys, tokens and
	// payloads are never logged.
	Logger *slog.Logger
}

// Client registers one device with DPS. Build it with
// NewSymmetricKeyClient or NewX509Client.
type Client struct {
	idScope        string
	registrationID string
	key            string           // the device's symmetric key, base64; empty for X.509
	cred           sas.Credential   // what Register presents to DPS
	cert           *tls.Certificate // for X.509
	payload        json.RawMessage  // the registration's payload, modelId merged in
	opts           Options
	log            *slog.Logger
	nextRID        atomic.Uint64
}

// NewSymmetricKeyClient returns a client that registers registrationID in
// the ID scope idScope with the device's symmetric key (base64): an
// individual enrollment's key, or the key sas.DeriveDeviceKey derives
// from a group's.
func NewSymmetricKeyClient(idScope, registrationID, key string, opts *Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cred, err := sas.NewKeyCredential(key, sas.ProvisioningKeyName, o.TokenLifetime)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrInvalidConfig, err)
	}
	return newClient(idScope, registrationID, key, cred, nil, o)
}

// NewX509Client returns a client that registers the device cert
// authenticates, in the ID scope idScope: its registration ID is the
// certificate's subject common name.
func NewX509Client(idScope string, cert tls.Certificate, opts *Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cred, err := sas.NewCertificateCredential(cert)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: certificate: %w", ErrInvalidConfig, err)
		}
	}
	return newClient(idScope, leaf.Subject.CommonName, "", cred, &cert, o)
}

func newClient(idScope, registrationID, key string, cred sas.Credential, cert *tls.Certificate, o Options) (*Client, error) {
	if err := validateScope(idScope); err != nil {
		return nil, err
	}
	if err := validateRegistrationID(registrationID); err != nil {
		return nil, err
	}
	payload, err := registrationPayload(o.Payload, o.ModelID)
	if err != nil {
		return nil, err
	}
	return &Client{
		idScope: idScope, registrationID: registrationID, key: key, cred: cred, cert: cert,
		payload: payload, opts: o,
		log: o.Logger.With("registration_id", registrationID),
	}, nil
}

// RegistrationID returns the registration ID the client registers.
func (c *Client) RegistrationID() string { return c.registrationID }

// NewDeviceClient returns the device client of the identity r assigns,
// authenticated with the client's own credential: the same symmetric key
// (its tokens now for the hub) or the same certificate. Nil opts, or a nil
// opts.TLSConfig, takes the provisioning client's TLSConfig.
func (c *Client) NewDeviceClient(r *Result, opts *device.ClientOptions) (*device.Client, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil result", ErrInvalidConfig)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	var o device.ClientOptions
	if opts != nil {
		o = *opts
	}
	if o.TLSConfig == nil {
		o.TLSConfig = c.opts.TLSConfig
	}
	var cred sas.Credential
	var err error
	if c.cert != nil {
		cred, err = sas.NewCertificateCredential(*c.cert)
	} else {
		cred, err = sas.NewKeyCredential(c.key, "", c.opts.TokenLifetime)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return device.NewClient(r.AssignedHub, r.DeviceID, cred, &o)
}

// withDefaults returns a copy of o (nil allowed) with defaults filled in.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	switch {
	case c.Port < 0 || c.Port > 65535:
		return c, fmt.Errorf("%w: Port %d is out of range", ErrInvalidConfig, c.Port)
	case c.TokenLifetime < 0:
		return c, fmt.Errorf("%w: TokenLifetime is negative", ErrInvalidConfig)
	case c.TLSConfig != nil && c.TLSConfig.InsecureSkipVerify:
		return c, fmt.Errorf("%w: TLSConfig.InsecureSkipVerify is not supported; trust DPS's CA with RootCAs", ErrInvalidConfig)
	case c.Network != nil && c.Network.Dial == nil:
		return c, fmt.Errorf("%w: Network has no Dial function", ErrInvalidConfig)
	}
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if err := idcheck.HostName(c.Host); err != nil {
		return c, fmt.Errorf("%w: Host: %w", ErrInvalidConfig, err)
	}
	if c.Network == nil {
		c.Network = tlsNetwork
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = time.Hour
	}
	if c.Backoff == nil {
		c.Backoff = device.ExponentialBackoff(time.Second, time.Minute)
	}
	if c.UserAgent == "" {
		c.UserAgent = userAgent
	} else {
		c.UserAgent = userAgent + " " + c.UserAgent
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// tlsNetwork is MQTT over TLS on port 8883, the default.
var tlsNetwork = netdial.TLSNetwork(tlsPort)

// validateScope checks an ID scope: DPS's are "0ne" and 8 hex digits, but
// any non-empty run of letters and digits is taken, for other clouds.
func validateScope(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%w: ID scope %q: want letters and digits, such as 0ne00000000", ErrInvalidConfig, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return fmt.Errorf("%w: ID scope %q: want letters and digits, such as 0ne00000000", ErrInvalidConfig, s)
		}
	}
	return nil
}

// validateRegistrationID checks a registration ID as DPS does: 1 to 128
// lowercase letters, digits and the characters - . _ : (Azure DPS
// documentation, "Symmetric key attestation": "alphanumeric, lowercase,
// and may contain hyphens"; the REST API accepts '.', '_' and ':' too).
func validateRegistrationID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%w: registration id must be 1 to 128 characters", ErrInvalidConfig)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':') {
			return fmt.Errorf("%w: registration id %q: only lowercase letters, digits, '-', '.', '_' and ':' are allowed", ErrInvalidConfig, id)
		}
	}
	return nil
}
