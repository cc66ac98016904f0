package localhub

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// endedSession is a session that ended just after the router chose it:
// every delivery fails as on a closed connection.
type endedSession struct{}

func (endedSession) deliver(context.Context, methodRequest) (*pendingCall, error) {
	return nil, net.ErrClosed
}
func (endedSession) forget(*pendingCall) {}
func (endedSession) drop(string)         {}

// TestInvokeOnEndedSession checks that a session ending between the
// router's choice and the delivery makes the call wait for the device
// again, as if it had been offline, rather than fail some other way.
func TestInvokeOnEndedSession(t *testing.T) {
	r := newRouter()
	var s endedSession
	r.attach("dev-1", s, true)
	r.setSubscribed("dev-1", s, true, 0)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	_, err := r.invoke(ctx, "dev-1", "m", nil, 0, time.Minute)
	if !errors.Is(err, ErrDeviceNotOnline) {
		t.Errorf("invoke = %v, want ErrDeviceNotOnline", err)
	}
}
