package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/directmethods/iotdevice/sas"
)

// Errors that adapters wrap (with %w, over the protocol's own error) so that
// the client can act on them.
var (
	// ErrConnLost reports a connection that failed or was closed by the
	// peer. Retriable: dial again.
	ErrConnLost = errors.New("transport: connection lost")
	// ErrThrottled reports that the hub refused for now because of a quota.
	// Retriable, after a longer delay.
	ErrThrottled = errors.New("transport: throttled")
	// ErrServerBusy reports that the hub is unavailable. Retriable.
	ErrServerBusy = errors.New("transport: server busy")
	// ErrUnauthorized reports credentials the hub refused. Fatal: retrying
	// with the same credentials cannot succeed.
	ErrUnauthorized = errors.New("transport: unauthorized")
	// ErrIdentityNotFound reports a device or module that does not exist or
	// is disabled. Fatal.
	ErrIdentityNotFound = errors.New("transport: device or module not found or disabled")
)

// Class says what the client should do about an error.
type Class int

const (
	// Retriable errors lead to a new dial after a backoff delay.
	Retriable Class = iota
	// Throttled errors lead to a new dial after a longer delay.
	Throttled
	// Fatal errors stop the client: configuration or credentials must
	// change first.
	Fatal
	// Canceled errors come from the caller's own context.
	Canceled
)

// String returns the class name.
func (c Class) String() string {
	switch c {
	case Retriable:
		return "retriable"
	case Throttled:
		return "throttled"
	case Fatal:
		return "fatal"
	case Canceled:
		return "canceled"
	}
	return "unknown"
}

// Classify decides whether an error from Dial, Receive or a token refresh
// is worth a retry. Refused credentials, unknown identities, expired fixed
// tokens and certificates that fail verification are fatal; a context's
// cancellation is Canceled (a deadline is not: a dial that timed out is
// worth another try); throttling is Throttled; everything else (network
// errors, lost connections, busy servers, errors of unknown kind) is
// Retriable, because a device should keep trying to come back.
func Classify(err error) Class {
	switch {
	case err == nil:
		return Retriable
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrIdentityNotFound),
		errors.Is(err, sas.ErrTokenExpired), errors.Is(err, sas.ErrWrongResource),
		errors.Is(err, sas.ErrNeedCertificate):
		return Fatal
	case IsCertificateError(err):
		return Fatal
	case errors.Is(err, ErrThrottled):
		return Throttled
	}
	return Retriable
}

// IsCertificateError reports whether err is the failure to verify the
// hub's certificate: an untrusted CA, a wrong host name, an expired
// certificate.
func IsCertificateError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify)
}
