package hubtest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
)

// setSpeed is the handler under test.
func setSpeed(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
	var args struct {
		Speed int `json:"speed"`
	}
	if err := req.Unmarshal(&args); err != nil {
		return nil, err
	}
	if args.Speed < 1 || args.Speed > 3 {
		return nil, device.Errorf(400, "speed must be 1, 2 or 3")
	}
	return device.JSONResponse(200, map[string]int{"speed": args.Speed})
}

// A test of a handler, over MQTT and AMQP, against a hub in the test's own
// process. In a test, hubtest.New(t, nil) starts the hub and closes it
// when the test ends.
func Example() {
	ctx := context.Background()
	hub, err := hubtest.Start(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	mux := device.NewMethodMux()
	mux.HandleFunc("setSpeed", setSpeed)
	for _, tr := range []hubtest.Transport{hubtest.MQTT, hubtest.AMQP} {
		fan, err := hub.AddDevice("fan-" + tr.String())
		if err != nil {
			log.Fatal(err)
		}
		client, err := fan.NewClient(tr, nil)
		if err != nil {
			log.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- client.Run(ctx, mux) }()

		// Called as a cloud application calls it; the connect timeout
		// covers the device's start.
		for _, payload := range []string{`{"speed":2}`, `{"speed":7}`} {
			res, err := fan.Invoke(ctx, "setSpeed", []byte(payload), &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println(tr, res.Status, string(res.Payload))
		}
		client.Close()
		<-done
	}
	// Output:
	// mqtt 200 {"speed":2}
	// mqtt 400 {"error":"speed must be 1, 2 or 3"}
	// amqp 200 {"speed":2}
	// amqp 400 {"error":"speed must be 1, 2 or 3"}
}

// A call to a device that is not connected fails with IoT Hub's error
// code.
func ExampleIdentity_Invoke_offline() {
	hub, err := hubtest.Start(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	dev, err := hub.AddDevice("sleepy")
	if err != nil {
		log.Fatal(err)
	}
	_, err = dev.Invoke(context.Background(), "wake", nil, nil)
	var hubErr *hubtest.Error
	if errors.As(err, &hubErr) {
		fmt.Println(hubErr.Code, hubErr.Name)
	}
	// Output: 404103 DeviceNotOnline
}
