package amqp_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/transport/amqp"
)

// A device on AMQP 1.0 over TLS (port 5671), here
// against a local hub; against IoT Hub, leave out Port and TLSConfig.
func ExampleNewDialer() {
	hub, err := hubtest.Start(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	dev, err := hub.AddDevice("dev-1")
	if err != nil {
		log.Fatal(err)
	}

	client, err := device.NewClientFromConnectionString(dev.ConnectionString(), &device.ClientOptions{
		Transport: amqp.NewDialer(&amqp.Options{QueueSize: 64}),
		Port:      hub.Port(hubtest.AMQP),
		TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("ping", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, "pong over AMQP")
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), mux) }()
	defer func() { client.Close(); <-done }()

	res, err := dev.Invoke(context.Background(), "ping", nil, &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 "pong over AMQP"
}
