package transporttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

// errOffline is what the Fake's harness answers for an identity that is
// not connected, as IoT Hub does with connectTimeoutInSeconds 0.
var errOffline = errors.New("transporttest: device not online")

// TestFakeConforms runs the conformance suite on the Fake, with and
// without in-band token renewal, verifying every token it presents.
func TestFakeConforms(t *testing.T) {
	const key = "0123456789abcdef"
	for _, tt := range []struct {
		name   string
		inBand bool
	}{
		{"renewal by redial", false},
		{"in-band renewal", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			TestDialer(t, func(t *testing.T) *Harness {
				fake := NewFake(&FakeOptions{Key: []byte(key), InBandRefresh: tt.inBand, QueueSize: 4})
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
							return 0, nil, errOffline
						}
						return fake.Invoke(ctx, method, payload)
					},
					Drop: func() bool { return fake.Drop(nil) },
				}
			})
		})
	}
}
