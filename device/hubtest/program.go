package hubtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device/deviceflag"
)

// programTimeout bounds a program's start (until it is subscribed) and its
// stop.
const programTimeout = 30 * time.Second

// Flags returns the command-line flags that make a program built on
// deviceflag reach the hub as the identity over tr: its connection string,
// the transport, the hub's port, and the hub's CA in a file in the test's
// temporary directory.
func (id *Identity) Flags(tb testing.TB, tr Transport) deviceflag.Flags {
	tb.Helper()
	caFile := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, id.hub.CACertPEM(), 0o600); err != nil {
		tb.Fatalf("hubtest: write the CA file: %v", err)
	}
	return deviceflag.Flags{ConnectionString: id.connectionString, Transport: tr.String(), CAFile: caFile, Port: id.hub.Port(tr)}
}

// StartProgram runs a device program's main loop, run, in a goroutine
// with the identity's Flags for tr, and waits until the program is
// connected and subscribed. The returned stop cancels run's context, as a
// signal would, and returns what run returned; it is called at the end of
// the test if the test does not call it, and may be called more than once.
func (id *Identity) StartProgram(tb testing.TB, tr Transport, run func(ctx context.Context, flags deviceflag.Flags) error) (stop func() error) {
	tb.Helper()
	flags := id.Flags(tb, tr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, flags) }() // ends on cancel; joined by stop
	var result error
	stopped := false
	stop = func() error {
		tb.Helper()
		if stopped {
			return result
		}
		cancel()
		timer := time.NewTimer(programTimeout)
		defer timer.Stop()
		select {
		case result = <-done:
			stopped = true
			return result
		case <-timer.C:
			tb.Fatalf("hubtest: the program did not stop within %v", programTimeout)
			return errors.New("hubtest: the program did not stop")
		}
	}
	tb.Cleanup(func() { stop() })

	waitCtx, cancelWait := context.WithTimeout(tb.Context(), programTimeout)
	defer cancelWait()
	connected := make(chan error, 1)
	go func() { connected <- id.WaitConnected(waitCtx) }() // joined below
	select {
	case err := <-done:
		done <- err // for stop
		cancelWait()
		<-connected
		tb.Fatalf("hubtest: the program ended before it connected: %v", err)
	case err := <-connected:
		if err != nil {
			stop()
			tb.Fatalf("hubtest: the program did not connect: %v", err)
		}
	}
	return stop
}
