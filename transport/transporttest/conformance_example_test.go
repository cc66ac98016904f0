package transporttest_test

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

// TestFakeConforms is the example of TestDialer's documentation: the
// Fake tested against its own hub side.
func TestFakeConforms(t *testing.T) {
	transporttest.TestDialer(t, func(t *testing.T) *transporttest.Harness {
		fake := transporttest.NewFake(&transporttest.FakeOptions{QueueSize: 4})
		cred, err := sas.NewKeyCredential(base64.StdEncoding.EncodeToString([]byte("test-key")), "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return &transporttest.Harness{
			Dialer:    fake,
			Config:    &transport.Config{HostName: "hub.example", DeviceID: "dev-1", Credential: cred},
			QueueSize: 4,
			Invoke: func(ctx context.Context, method string, payload []byte) (int, []byte, error) {
				if !fake.Connected() {
					return 0, nil, errors.New("device not online")
				}
				return fake.Invoke(ctx, method, payload)
			},
			Drop: func() bool { return fake.Drop(nil) },
		}
	})
}
