package transport

import "errors"

// Errors that adapters wrap (with %w, over the protocol's own error) so that
// the client can act on them. Package device reads them to decide what to
// do: dial again after a backoff delay, wait longer when throttled, or stop.
// An error that wraps none of them (a network error, a dial that timed out)
// is retried like ErrConnLost; a certificate the hub presents that fails
// verification stops the client, and keeps its crypto/x509 error in the
// chain.
var (
	// ErrConnLost reports a connection that failed or was closed by the
	// peer. The client dials again after a backoff delay.
	ErrConnLost = errors.New("transport: connection lost")
	// ErrThrottled reports that the hub refused for now because of a quota.
	// The client dials again after a longer delay than for other errors.
	ErrThrottled = errors.New("transport: throttled")
	// ErrServerBusy reports that the hub is unavailable. The client dials
	// again after a backoff delay.
	ErrServerBusy = errors.New("transport: server busy")
	// ErrUnauthorized reports credentials the hub refused. The client
	// stops: retrying with the same credentials cannot succeed.
	ErrUnauthorized = errors.New("transport: unauthorized")
	// ErrIdentityNotFound reports a device or module that does not exist or
	// is disabled. The client stops: the identity must change first. An
	// adapter wraps it only when the hub says so, as IoT Hub does over
	// AMQP; over MQTT it refuses an unknown identity as it does a wrong
	// key, which is ErrUnauthorized.
	ErrIdentityNotFound = errors.New("transport: device or module not found or disabled")
	// ErrQuiesced ends Receive on a Conn whose Quiesce succeeded, once
	// every request it received has been returned. The connection still
	// answers; the client answers those requests on it, then closes it.
	ErrQuiesced = errors.New("transport: connection quiesced")
)
