package amqp

import (
	"testing"

	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/internal/testhub"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

// TestConformance runs the transport conformance suite against the local
// hub, with answers sent unsettled (the default) and pre-settled.
func TestConformance(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"answers at least once", Options{}},
		{"answers at most once", Options{AnswerAtMostOnce: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			transporttest.TestDialer(t, testhub.Harness(t, func(queueSize int) transport.Dialer {
				opts := tt.opts
				opts.QueueSize = queueSize
				return NewDialer(&opts)
			}, (*localhub.Hub).AMQPPort))
		})
	}
}
