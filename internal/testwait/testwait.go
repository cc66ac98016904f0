// Package testwait waits, in tests, for a value a goroutine sends, with a
// deadline: a test never sleeps to wait for something, and never waits
// forever.
package testwait

import (
	"testing"
	"time"
)

// Timeout bounds every wait: far longer than anything a test waits for
// takes on a loaded machine, so that reaching it means a bug.
const Timeout = 10 * time.Second

// Receive returns the next value from ch, failing the test, which it
// names what, after Timeout.
func Receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", Timeout, what)
		panic("unreachable")
	}
}
