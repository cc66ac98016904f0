package provisioning_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/device/provisioning"
)

// A device of a symmetric-key enrollment group knows only the ID scope,
// its registration ID and the key derived from its group's: it registers,
// learns its hub and device ID, connects and serves a method. Here the
// local hub plays both the Device Provisioning Service and the IoT hub;
// against Azure, leave out Host, Port and TLSConfig.
func Example() {
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
	key, err := group.DeviceKey("thermostat-7") // sas.DeriveDeviceKey, at the factory
	if err != nil {
		log.Fatal(err)
	}

	pc, err := provisioning.NewSymmetricKeyClient(hub.IDScope(), "thermostat-7", key, &provisioning.Options{
		Host:      hub.HostName(),
		Port:      hub.Port(hubtest.MQTT),
		TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
		ModelID:   "dtmi:com:example:Thermostat;1",
	})
	if err != nil {
		log.Fatal(err)
	}
	result, err := pc.Register(ctx)
	if err != nil {
		log.Fatal(err)
	}
	cached, _ := json.Marshal(result) // keep it, to skip registering on the next boot
	_ = cached
	fmt.Println(result.Status, result.AssignedHub, result.DeviceID)

	client, err := pc.NewDeviceClient(result, &device.ClientOptions{Port: hub.Port(hubtest.MQTT)})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("getTemperature", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, map[string]float64{"celsius": 21.5})
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx, mux) }()

	dev, err := hub.Device(result.DeviceID)
	if err != nil {
		log.Fatal(err)
	}
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
