package amqp

import (
	"errors"
	"fmt"
)

// ErrConnClosed is returned by link and delivery operations once the
// connection has stopped.
var ErrConnClosed = errors.New("amqp: connection closed")

// ErrLinkNotAttached is returned when a link operation needs an attached
// link: Send or Receive before Accept, or Accept after Refuse.
var ErrLinkNotAttached = errors.New("amqp: link not attached")

// LinkError says why a link ended. Err is the AMQP error carried by the
// detach (or end, or close) frame, nil for a clean detach; Remote tells
// whether the peer ended it.
type LinkError struct {
	Remote bool
	Err    *Error
}

func (e *LinkError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	if e.Err == nil {
		return "amqp: link detached " + who
	}
	return fmt.Sprintf("amqp: link detached %s: %s", who, e.Err.Error())
}

// Unwrap returns the AMQP error, if any.
func (e *LinkError) Unwrap() error {
	if e.Err == nil {
		return nil
	}
	return e.Err
}

// ConnError says why a connection ended: the AMQP error in the close
// frame, sent (Remote false) or received (Remote true), or the I/O error.
type ConnError struct {
	Remote bool
	Err    *Error
	IOErr  error
}

func (e *ConnError) Error() string {
	switch {
	case e.IOErr != nil:
		return "amqp: connection lost: " + e.IOErr.Error()
	case e.Remote && e.Err != nil:
		return "amqp: connection closed by peer: " + e.Err.Error()
	case e.Err != nil:
		return "amqp: connection closed: " + e.Err.Error()
	}
	return "amqp: connection closed"
}

// Unwrap returns the AMQP error or the I/O error, and ErrConnClosed.
func (e *ConnError) Unwrap() []error {
	errs := []error{ErrConnClosed}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.IOErr != nil {
		errs = append(errs, e.IOErr)
	}
	return errs
}
