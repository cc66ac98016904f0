// Package transport is the contract between device.Client and the protocol
// adapters (transport/mqtt, transport/amqp), in the spirit of
// database/sql/driver: a small interface that adapters implement and users
// rarely touch.
//
// A Dialer returns a Conn only once it is authenticated and subscribed to
// method requests, so every (re)connection restores method delivery by
// construction. A Conn never reconnects: when it fails, Receive returns an
// error and the client dials again. Optional capabilities, such as renewing
// a token on the live connection, are discovered by type assertion
// (TokenRefresher, Quiescer).
//
// # Errors
//
// Adapters wrap protocol errors with the sentinels of this package
// (ErrConnLost, ErrThrottled, ErrServerBusy, ErrUnauthorized,
// ErrIdentityNotFound), and package device decides from them whether to
// retry: after a backoff delay, after a longer one when throttled, or not
// at all for refused credentials and unknown identities.
//
// # Concurrency
//
// Several goroutines may wait in Receive at once, each request going to one
// of them; Respond may be called from many goroutines at once, and
// concurrently with Receive and Close.
package transport
