package hubtest_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/device/provisioning"
)

// A device of a symmetric-key enrollment group knows only the ID scope
// and its key: it registers with the hub's Device Provisioning Service
// (package device/provisioning), learns its hub and device id, connects
// and serves a method, with no cloud involved.
func Example_provisioning() {
	ctx := context.Background()
	hub, err := hubtest.Start(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	group, err := hub.AddEnrollmentGroup("thermostats", nil)
	if err != nil {
		log.Fatal(err)
	}
	// The key the factory derived from the group's for this device.
	key, err := group.DeviceKey("thermostat-7")
	if err != nil {
		log.Fatal(err)
	}
	pc, err := provisioning.NewSymmetricKeyClient(hub.IDScope(), "thermostat-7", key, &provisioning.Options{
		Host: hub.HostName(), Port: hub.Port(hubtest.MQTT), TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
	})
	if err != nil {
		log.Fatal(err)
	}
	state, err := pc.Register(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(state.Status, state.AssignedHub, state.DeviceID)

	dev, err := hub.Device(state.DeviceID)
	if err != nil {
		log.Fatal(err)
	}
	client, err := pc.NewDeviceClient(state, &device.ClientOptions{Port: hub.Port(hubtest.MQTT)})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("getTemperature", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, map[string]float64{"celsius": 21.5})
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx, mux) }()
	res, err := dev.Invoke(ctx, "getTemperature", nil, &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	client.Close()
	<-done
	// Output:
	// assigned localhost thermostat-7
	// 200 {"celsius":21.5}
}
