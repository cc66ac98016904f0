package transporttest_test

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

// A unit test of a method handler, with no network: the fake plays the
// hub, Invoke plays the cloud application.
func ExampleFake() {
	fake := transporttest.NewFake(nil)
	cred, _ := sas.NewKeyCredential(base64.StdEncoding.EncodeToString([]byte("test-key")), "", 0)
	client, _ := device.NewClient("hub.example", "fan-1", cred, &device.ClientOptions{Transport: fake})
	mux := device.NewMethodMux()
	mux.HandleFunc("turnOnFan", func(ctx context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, map[string]bool{"on": true})
	})
	go client.Run(context.Background(), mux)
	defer client.Close()

	status, payload, err := fake.Invoke(context.Background(), "turnOnFan", nil)
	fmt.Println(status, string(payload), err)

	// Simulate a network failure: the client reconnects by itself.
	fake.Drop(nil)
	status, payload, err = fake.Invoke(context.Background(), "turnOnFan", nil)
	fmt.Println(status, string(payload), err)
	// Output:
	// 200 {"on":true} <nil>
	// 200 {"on":true} <nil>
}
