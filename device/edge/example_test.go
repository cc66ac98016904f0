package edge_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/edge"
	"github.com/directmethods/iotdevice/device/hubtest"
)

// Two modules of one IoT Edge device, run offline against the public test
// hub playing the IoT Edge runtime: "filter" serves a method, and
// "controller" calls it through the edge hub.
func ExampleNewMethodInvoker() {
	ctx := context.Background()
	hub, err := hubtest.Start(ctx, &hubtest.Options{Edge: true})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	opts := &device.ClientOptions{Port: hub.Port(hubtest.MQTT)}

	// In each module's main, the runtime's environment gives the client:
	// edge.NewModuleClient(ctx, nil).
	filter, err := moduleClient(ctx, hub, "filter", opts)
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("setThreshold", func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Status: 200, Payload: req.Payload}, nil
	})
	done := make(chan error, 1)
	go func() { done <- filter.Run(ctx, mux) }()
	defer func() { filter.Close(); <-done }()

	controller, err := moduleClient(ctx, hub, "controller", opts)
	if err != nil {
		log.Fatal(err)
	}
	defer controller.Close()
	invoker, err := edge.NewMethodInvoker(controller, &edge.MethodInvokerOptions{Port: hub.HTTPSPort()})
	if err != nil {
		log.Fatal(err)
	}
	defer invoker.Close()
	res, err := invoker.Invoke(ctx, "gateway-1", "filter", edge.MethodCall{
		Name: "setThreshold", Payload: []byte(`{"celsius":30}`), ConnectTimeout: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 {"celsius":30}
}

// moduleClient registers module on the device gateway-1 and builds its
// client from the environment the runtime would give it.
func moduleClient(ctx context.Context, hub *hubtest.Hub, module string, opts *device.ClientOptions) (*device.Client, error) {
	id, err := hub.AddModule("gateway-1", module)
	if err != nil {
		return nil, err
	}
	env, err := id.EdgeEnvironment()
	if err != nil {
		return nil, err
	}
	return edge.NewModuleClientFromLookup(ctx, func(name string) (string, bool) { v, ok := env[name]; return v, ok }, opts)
}
