package amqp

import (
	"context"
	"errors"
	"fmt"

	goamqp "github.com/Azure/go-amqp"
	"github.com/directmethods/iotdevice/transport"
)

// Error conditions IoT Hub uses beyond those of the AMQP specification.
const (
	condTimeout           goamqp.ErrCond = "com.microsoft:timeout"
	condServerBusy        goamqp.ErrCond = "com.microsoft:server-busy"
	condContainerThrottle goamqp.ErrCond = "com.microsoft:device-container-throttled"
)

// errNoCredit says why a Conn failed when an answer could not go out
// before its deadline: the hub gave the answer link no credit.
var errNoCredit = errors.New("amqp: the hub granted the answer link no credit before the answer's deadline")

// linkFailure wraps an error of go-amqp with the transport sentinel that
// tells the client what to do: the peer's AMQP error condition decides
// where it names throttling, a busy server or refused access; any other
// AMQP error, a connection, session or link that ended, and input the
// frame guard refused wrap transport.ErrConnLost. When ctx has ended, its cause is wrapped as well,
// so a cancelled dial is recognised as such.
func linkFailure(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := context.Cause(ctx); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w (%w)", ctxErr, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var amqpErr *goamqp.Error
	if errors.As(err, &amqpErr) {
		switch amqpErr.Condition {
		case goamqp.ErrCondUnauthorizedAccess:
			return fmt.Errorf("%w: %w", transport.ErrUnauthorized, err)
		case goamqp.ErrCondResourceLimitExceeded, condContainerThrottle:
			return fmt.Errorf("%w: %w", transport.ErrThrottled, err)
		case condTimeout, condServerBusy:
			return fmt.Errorf("%w: %w", transport.ErrServerBusy, err)
		}
	}
	if isEnded(err) || errors.As(err, &amqpErr) || errors.Is(err, errRefused) {
		return fmt.Errorf("%w: %w", transport.ErrConnLost, err)
	}
	return err
}

// attachFailure is linkFailure for the method links, where amqp:not-found
// means that the identity does not exist or is disabled.
func attachFailure(ctx context.Context, err error) error {
	var amqpErr *goamqp.Error
	if context.Cause(ctx) == nil && errors.As(err, &amqpErr) && amqpErr.Condition == goamqp.ErrCondNotFound {
		return fmt.Errorf("%w: %w", transport.ErrIdentityNotFound, err)
	}
	return linkFailure(ctx, err)
}

// isEnded reports whether err says that the connection, a session or a
// link has ended.
func isEnded(err error) bool {
	var (
		connErr    *goamqp.ConnError
		sessionErr *goamqp.SessionError
		linkErr    *goamqp.LinkError
	)
	return errors.As(err, &connErr) || errors.As(err, &sessionErr) || errors.As(err, &linkErr)
}
