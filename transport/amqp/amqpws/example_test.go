package amqpws_test

import (
	"context"
	"log"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/transport/amqp"
	"github.com/directmethods/iotdevice/transport/amqp/amqpws"
)

// A device that reaches IoT Hub over AMQP on port 443, as behind a
// firewall that lets only HTTPS out.
func ExampleNewDialer() {
	client, err := device.NewClientFromConnectionString("HostName=example.azure-devices.net;DeviceId=dev-1;SharedAccessKey=c2VjcmV0", &device.ClientOptions{
		Transport: amqpws.NewDialer(&amqp.Options{QueueSize: 64}),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("ping", func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Status: 200, Payload: req.Payload}, nil
	})
	if err := client.Run(context.Background(), mux); err != nil {
		log.Fatal(err)
	}
}
