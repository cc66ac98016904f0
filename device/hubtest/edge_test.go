package hubtest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/edge"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/google/go-cmp/cmp"
)

// lookupIn reads variables from env, for NewModuleClientFromLookup.
func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := env[name]; return v, ok }
}

// TestEdgeModules runs a module from its IoT Edge environment, trusting
// the hub only through the workload API's trust bundle, and calls it, a
// leaf device and a device outside the edge from another module.
func TestEdgeModules(t *testing.T) {
	hub := hubtest.New(t, &hubtest.Options{Edge: true})
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	modA, err := hub.AddModule("edge-1", "mod-a")
	if err != nil {
		t.Fatal(err)
	}
	modB, err := hub.AddModule("edge-1", "mod-b")
	if err != nil {
		t.Fatal(err)
	}
	edgeDevice, err := hub.AddDevice("edge-1")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := hub.AddDevice("leaf-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.SetParent(edgeDevice); err != nil {
		t.Fatal(err)
	}
	stranger, err := hub.AddDevice("stranger")
	if err != nil {
		t.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("echo", echo)
	for _, id := range []*hubtest.Identity{leaf, stranger} {
		client, err := id.NewClient(hubtest.AMQP, nil)
		if err != nil {
			t.Fatal(err)
		}
		serve(t, client, mux)
	}

	envA, err := modA.EdgeEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	// No TLSConfig: the workload API's trust bundle is the only way the
	// module can trust the hub.
	moduleA, err := edge.NewModuleClientFromLookup(ctx, lookupIn(envA), &device.ClientOptions{Port: hub.Port(hubtest.MQTT)})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, moduleA, mux)
	for _, id := range []*hubtest.Identity{modA, leaf, stranger} {
		if err := id.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
	}

	envB, err := modB.EdgeEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	moduleB, err := edge.NewModuleClientFromLookup(ctx, lookupIn(envB), &device.ClientOptions{Port: hub.Port(hubtest.MQTT)})
	if err != nil {
		t.Fatal(err)
	}
	defer moduleB.Close()
	invoker, err := edge.NewMethodInvoker(moduleB, &edge.MethodInvokerOptions{Port: hub.HTTPSPort()})
	if err != nil {
		t.Fatal(err)
	}
	defer invoker.Close()
	for _, target := range []struct{ device, module string }{{"edge-1", "mod-a"}, {"leaf-1", ""}} {
		res, err := invoker.Invoke(ctx, target.device, target.module, edge.MethodCall{Name: "echo", Payload: []byte(`{"n":1}`)})
		if err != nil {
			t.Fatalf("%s/%s: %v", target.device, target.module, err)
		}
		if diff := cmp.Diff(&edge.MethodResult{Status: 200, Payload: []byte(`{"n":1}`)}, res); diff != "" {
			t.Errorf("%s/%s (-want +got):\n%s", target.device, target.module, diff)
		}
	}
	_, err = invoker.Invoke(ctx, "stranger", "", edge.MethodCall{Name: "echo"})
	var ie *edge.InvokeError
	if !errors.As(err, &ie) || ie.HTTPStatus != 404 {
		t.Errorf("call outside the edge = %v, want the edge hub's 404", err)
	}
}

func TestEdgeEnvironmentNeedsEdgeAndModule(t *testing.T) {
	plain := hubtest.New(t, nil)
	mod, err := plain.AddModule("edge-1", "mod-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mod.EdgeEnvironment(); err == nil {
		t.Error("EdgeEnvironment on a hub without Options.Edge succeeded")
	}
	edgeHub := hubtest.New(t, &hubtest.Options{Edge: true})
	dev, err := edgeHub.AddDevice("edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.EdgeEnvironment(); err == nil {
		t.Error("EdgeEnvironment of a device succeeded")
	}
}

// An IoT Edge module tested offline: it starts from the environment the
// IoT Edge runtime would give it, and the cloud calls it. (Package edge's
// example has another module call it through the edge hub.)
func ExampleIdentity_EdgeEnvironment() {
	ctx := context.Background()
	hub, err := hubtest.Start(ctx, &hubtest.Options{Edge: true})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	filter, err := hub.AddModule("gateway-1", "filter")
	if err != nil {
		log.Fatal(err)
	}
	env, err := filter.EdgeEnvironment() // IOTEDGE_WORKLOADURI, IOTEDGE_MODULEID, …
	if err != nil {
		log.Fatal(err)
	}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	// In the module's main: edge.NewModuleClient(ctx, nil).
	client, err := edge.NewModuleClientFromLookup(ctx, lookup, &device.ClientOptions{Port: hub.Port(hubtest.MQTT)})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("setThreshold", func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		return &device.MethodResponse{Status: 200, Payload: req.Payload}, nil
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx, mux) }()
	defer func() { client.Close(); <-done }()

	// The cloud calls it, as it would any module.
	res, err := filter.Invoke(ctx, "setThreshold", []byte(`{"celsius":30}`), &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 {"celsius":30}
}
