package device

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

// retryClass says what the client does about an error from a dial, a
// connection or a token renewal.
type retryClass int

const (
	// retriable errors lead to a new dial after a backoff delay.
	retriable retryClass = iota
	// throttled errors lead to a new dial after at least throttledFloor.
	throttled
	// fatal errors stop the client: configuration or credentials must
	// change first.
	fatal
	// canceled errors come from the caller's own context.
	canceled
)

// classify decides whether an error is worth a retry. Refused
// credentials, unknown identities, expired fixed tokens and certificates
// that fail verification are fatal; a context's cancellation is canceled
// (a deadline is not: a dial that timed out is worth another try);
// throttling is throttled; everything else (network errors, lost
// connections, busy servers, errors of unknown kind) is retriable,
// because a device should keep trying to come back. It reads the
// transport package's sentinels, which the adapters wrap.
func classify(err error) retryClass {
	switch {
	case errors.Is(err, context.Canceled):
		return canceled
	case errors.Is(err, transport.ErrUnauthorized), errors.Is(err, transport.ErrIdentityNotFound),
		errors.Is(err, sas.ErrTokenExpired), errors.Is(err, sas.ErrWrongResource),
		errors.Is(err, sas.ErrNeedCertificate), isCertificateError(err):
		return fatal
	case errors.Is(err, transport.ErrThrottled):
		return throttled
	}
	return retriable
}

// isCertificateError reports whether err is the failure to verify the
// hub's certificate: an untrusted CA, a wrong host name, an expired
// certificate.
func isCertificateError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify)
}
