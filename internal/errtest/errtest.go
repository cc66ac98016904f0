// Package errtest checks, in the adapters' tests, which of package
// transport's sentinels an error wraps: they decide what package device
// does about it (retry, wait longer, stop).
package errtest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/directmethods/iotdevice/transport"
)

// outcomes are the errors that decide what package device does about an
// adapter's error: the sentinels of package transport and the caller's
// cancellation.
var outcomes = []error{transport.ErrConnLost, transport.ErrThrottled, transport.ErrServerBusy, transport.ErrUnauthorized, transport.ErrIdentityNotFound, context.Canceled}

// WantOnly checks that err wraps every error of want (nil entries stand
// for none) and no other sentinel, nor context.Canceled.
func WantOnly(t testing.TB, err error, want ...error) {
	t.Helper()
	for _, w := range want {
		if w != nil && !errors.Is(err, w) {
			t.Errorf("error %v does not wrap %v", err, w)
		}
	}
	for _, other := range outcomes {
		if !slices.Contains(want, other) && errors.Is(err, other) {
			t.Errorf("error %v wraps %v unexpectedly", err, other)
		}
	}
}

// WantRetried checks that err wraps neither a sentinel on which package
// device stops or waits longer (ErrUnauthorized, ErrIdentityNotFound,
// ErrThrottled) nor context.Canceled: the client dials again after a
// backoff delay.
func WantRetried(t testing.TB, err error) {
	t.Helper()
	for _, target := range []error{transport.ErrUnauthorized, transport.ErrIdentityNotFound, transport.ErrThrottled, context.Canceled} {
		if errors.Is(err, target) {
			t.Errorf("error %v wraps %v, want one the client retries", err, target)
		}
	}
}
