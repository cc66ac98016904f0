package transporttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

// TestFakeConformsWithInBandRenewal runs the conformance suite on a Fake
// whose connections renew tokens in band, as AMQP's do, and which
// verifies every token presented.
func TestFakeConformsWithInBandRenewal(t *testing.T) {
	TestDialer(t, func(t *testing.T) *Harness {
		fake := NewFake(&FakeOptions{Key: []byte("0123456789abcdef"), InBandRefresh: true, QueueSize: 4})
		cred, err := sas.NewKeyCredential("MDEyMzQ1Njc4OWFiY2RlZg==", "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return &Harness{
			Dialer:    fake,
			Config:    &transport.Config{HostName: "hub.example", DeviceID: "dev-1", Credential: cred},
			QueueSize: 4,
			Invoke: func(ctx context.Context, method string, payload []byte) (int, []byte, error) {
				if !fake.Connected() {
					return 0, nil, errors.New("transporttest: device not online")
				}
				return fake.Invoke(ctx, method, payload)
			},
			Drop: func() bool { return fake.Drop(nil) },
		}
	})
}
