package sas

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/directmethods/iotdevice/internal/sastoken"
)

// DefaultTokenLifetime is how long a KeyCredential's tokens live unless told
// otherwise. The client renews them at about 80 % of it.
const DefaultTokenLifetime = time.Hour

// ErrNeedCertificate reports an X.509 identity configured without its
// certificate.
var ErrNeedCertificate = errors.New("sas: x509 authentication needs a client certificate")

// Credential authenticates one device or module identity. Transports call
// Token when they connect (and, where the protocol allows, to renew in-band)
// and present ClientCertificate during the TLS handshake.
//
// Implementations must be safe for concurrent use.
type Credential interface {
	// Token returns a SAS token granting access to resource (a decoded URI
	// such as Resource returns) and the time it expires. A credential that
	// authenticates by certificate returns "" and the zero time.
	Token(ctx context.Context, resource string) (token string, expiry time.Time, err error)
	// ClientCertificate returns the TLS client certificate to present, or
	// nil.
	ClientCertificate() *tls.Certificate
}

// KeyCredential signs a fresh token from a shared access key each time one
// is needed, so it can be renewed for as long as the key is valid.
type KeyCredential struct {
	key      []byte
	keyName  string
	lifetime time.Duration
}

// NewKeyCredential returns a credential for a base64 shared access key.
// keyName is the policy name for a policy key (SharedAccessKeyName), empty
// for a device or module key. lifetime is how long each token lives; zero
// means DefaultTokenLifetime.
func NewKeyCredential(key, keyName string, lifetime time.Duration) (*KeyCredential, error) {
	k, err := DecodeKey(key)
	if err != nil {
		return nil, err
	}
	if lifetime < 0 {
		return nil, fmt.Errorf("sas: negative token lifetime %v", lifetime)
	}
	if lifetime == 0 {
		lifetime = DefaultTokenLifetime
	}
	return &KeyCredential{key: k, keyName: keyName, lifetime: lifetime}, nil
}

// Token signs a token for resource that expires one lifetime from now,
// rounded up to a whole second.
func (c *KeyCredential) Token(_ context.Context, resource string) (string, time.Time, error) {
	expiry := time.Now().Add(c.lifetime + time.Second - 1).Truncate(time.Second)
	return Sign(c.key, resource, c.keyName, expiry), expiry, nil
}

// ClientCertificate returns nil.
func (c *KeyCredential) ClientCertificate() *tls.Certificate { return nil }

// String describes the credential without its key. It and GoString have
// value receivers so that neither a KeyCredential nor a pointer to one
// ever prints its fields.
func (c KeyCredential) String() string {
	return fmt.Sprintf("sas.KeyCredential{keyName: %q, lifetime: %v, key: REDACTED}", c.keyName, c.lifetime)
}

// GoString is String: %#v would otherwise print the key.
func (c KeyCredential) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without the key.
func (c KeyCredential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", "key"), slog.String("key_name", c.keyName), slog.Duration("lifetime", c.lifetime))
}

// TokenCredential presents one fixed token. It cannot be renewed: once the
// token has expired, Token returns an error wrapping ErrTokenExpired and the
// client stops with an authentication error instead of retrying.
type TokenCredential struct {
	token  string
	parsed *sastoken.Token
}

// NewTokenCredential parses token and returns a credential that presents it.
func NewTokenCredential(token string) (*TokenCredential, error) {
	t, err := sastoken.Parse(token)
	if err != nil {
		return nil, err
	}
	return &TokenCredential{token: token, parsed: t}, nil
}

// Token returns the fixed token, or an error if it has expired or does not
// cover resource.
func (c *TokenCredential) Token(_ context.Context, resource string) (string, time.Time, error) {
	if c.parsed == nil {
		return "", time.Time{}, fmt.Errorf("%w: TokenCredential not made by NewTokenCredential", ErrMalformedToken)
	}
	if !c.parsed.Covers(resource) {
		return "", time.Time{}, fmt.Errorf("%w: token for %q presented for %q", ErrWrongResource, c.parsed.Resource, resource)
	}
	if !time.Now().Before(c.parsed.Expiry) {
		return "", time.Time{}, fmt.Errorf("%w at %s; a fixed token cannot be renewed", ErrTokenExpired, c.parsed.Expiry.UTC().Format(time.RFC3339))
	}
	return c.token, c.parsed.Expiry, nil
}

// ClientCertificate returns nil.
func (c *TokenCredential) ClientCertificate() *tls.Certificate { return nil }

// String describes the credential without its signature.
func (c TokenCredential) String() string {
	if c.parsed == nil {
		return "sas.TokenCredential{}"
	}
	return "sas.TokenCredential{" + c.parsed.String() + "}"
}

// GoString is String: %#v would otherwise print the token.
func (c TokenCredential) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without the signature.
func (c TokenCredential) LogValue() slog.Value {
	if c.parsed == nil {
		return slog.GroupValue(slog.String("kind", "token"))
	}
	return slog.GroupValue(slog.String("kind", "token"), slog.Time("expiry", c.parsed.Expiry))
}

// TokenFunc adapts a function that obtains tokens elsewhere (a hardware
// security module, a signing service) to a Credential. It must return a
// token covering resource and its expiry.
type TokenFunc func(ctx context.Context, resource string) (token string, expiry time.Time, err error)

// Token calls f.
func (f TokenFunc) Token(ctx context.Context, resource string) (string, time.Time, error) {
	return f(ctx, resource)
}

// ClientCertificate returns nil.
func (f TokenFunc) ClientCertificate() *tls.Certificate { return nil }

// CertificateCredential authenticates with an X.509 client certificate
// during the TLS handshake; no token is sent.
type CertificateCredential struct {
	cert tls.Certificate
}

// NewCertificateCredential returns a credential presenting cert, which must
// hold a certificate and its private key.
func NewCertificateCredential(cert tls.Certificate) (*CertificateCredential, error) {
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, fmt.Errorf("%w: the certificate or its private key is missing", ErrNeedCertificate)
	}
	return &CertificateCredential{cert: cert}, nil
}

// Token returns "" and the zero time: the certificate authenticates.
func (c *CertificateCredential) Token(context.Context, string) (string, time.Time, error) {
	return "", time.Time{}, nil
}

// ClientCertificate returns the certificate.
func (c *CertificateCredential) ClientCertificate() *tls.Certificate { return &c.cert }

// String describes the credential without its private key.
func (c CertificateCredential) String() string { return "sas.CertificateCredential{}" }

// GoString is String: %#v would otherwise print the certificate's fields.
func (c CertificateCredential) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without the private key.
func (c CertificateCredential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", "x509"))
}
