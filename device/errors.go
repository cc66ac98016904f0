package device

import (
	"errors"
	"fmt"

	"github.com/directmethods/iotdevice/transport"
)

var (
	// ErrClientClosed is returned by Run after Close.
	ErrClientClosed = errors.New("device: client closed")
	// ErrAlreadyRunning is returned by a second call of Run: a client runs
	// once.
	ErrAlreadyRunning = errors.New("device: Run called more than once")
	// ErrInvalidConfig is wrapped by constructor errors about options and
	// identities.
	ErrInvalidConfig = errors.New("device: invalid configuration")
)

// ErrorCode says why a client stopped for good.
type ErrorCode int

const (
	// CodeUnauthorized: the hub refused the credentials, or a fixed token
	// expired. New credentials are needed. Over MQTT it is also how an
	// identity the hub does not know ends: IoT Hub refuses both with
	// CONNACK 5, and the error's text names both causes.
	CodeUnauthorized ErrorCode = iota + 1
	// CodeIdentityNotFound: the hub does not know the device or module.
	// Over AMQP only, where IoT Hub answers its put-token 404.
	CodeIdentityNotFound
	// CodeTLS: the hub's certificate failed verification (wrong host name or
	// untrusted CA).
	CodeTLS
)

// String returns the code's name.
func (c ErrorCode) String() string {
	switch c {
	case CodeUnauthorized:
		return "unauthorized"
	case CodeIdentityNotFound:
		return "identity not found"
	case CodeTLS:
		return "tls verification failed"
	}
	return fmt.Sprintf("ErrorCode(%d)", int(c))
}

// Error is the error Run returns when retrying cannot help. Code is part of
// the API; the text is not.
type Error struct {
	Code ErrorCode
	Err  error
}

func (e *Error) Error() string { return "device: " + e.Code.String() + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// fatalError wraps a fatal transport error in an *Error with its code.
func fatalError(err error) *Error {
	code := CodeUnauthorized
	switch {
	case errors.Is(err, transport.ErrIdentityNotFound):
		code = CodeIdentityNotFound
	case isCertificateError(err):
		code = CodeTLS
	}
	return &Error{Code: code, Err: err}
}
