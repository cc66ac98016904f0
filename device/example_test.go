package device_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/amqp"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

func ExampleNewClientFromConnectionString() {
	// The portal or the local hub prints this; keep it out of source code.
	cs := "HostName=myhub.azure-devices.net;DeviceId=fan-1;SharedAccessKey=" + testKeyB64
	client, err := device.NewClientFromConnectionString(cs, nil) // MQTT over TLS, system roots
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	fmt.Println("client ready")
	// Output: client ready
}

// A device against a local hub in the same process (package hubtest),
// trusting the hub's CA: never InsecureSkipVerify.
func ExampleNewClientFromConnectionString_localHub() {
	hub, err := hubtest.Start(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	dev, err := hub.AddDevice("thermostat-1")
	if err != nil {
		log.Fatal(err)
	}

	client, err := device.NewClientFromConnectionString(dev.ConnectionString(), &device.ClientOptions{
		Port:      hub.Port(hubtest.MQTT),               // IoT Hub uses the standard port
		TLSConfig: &tls.Config{RootCAs: hub.CertPool()}, // the local hub's CA
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("getTemperature", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, map[string]float64{"celsius": 21.5})
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), mux) }()
	defer func() { client.Close(); <-done }()

	res, err := dev.Invoke(context.Background(), "getTemperature", nil, &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 {"celsius":21.5}
}

// A module identity (an IoT Edge module or a module of a device's own
// software) with its own key; methods reach it by
// POST /twins/{device}/modules/{module}/methods.
func ExampleNewModuleClient() {
	hub, err := hubtest.Start(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	mod, err := hub.AddModule("gateway-1", "telemetry")
	if err != nil {
		log.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(mod.ConnectionString())
	if err != nil {
		log.Fatal(err)
	}
	cred, err := sas.NewKeyCredential(cs.SharedAccessKey, "", time.Hour)
	if err != nil {
		log.Fatal(err)
	}

	client, err := device.NewModuleClient(hub.HostName(), "gateway-1", "telemetry", cred, &device.ClientOptions{
		Port:      hub.Port(hubtest.MQTT),
		TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("flush", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, map[string]int{"flushed": 12})
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), mux) }()
	defer func() { client.Close(); <-done }()

	res, err := mod.Invoke(context.Background(), "flush", nil, &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 {"flushed":12}
}

// An X.509 device: it authenticates with its client certificate in the
// TLS handshake, and needs no token. hubtest registers a self-signed one
// by its thumbprint, as the Azure portal does.
func ExampleNewClient_x509() {
	hub, err := hubtest.Start(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	dev, err := hub.AddX509Device("camera-1")
	if err != nil {
		log.Fatal(err)
	}
	// On a device: tls.LoadX509KeyPair("device.pem", "device.key").
	cred, err := sas.NewCertificateCredential(*dev.Certificate())
	if err != nil {
		log.Fatal(err)
	}

	client, err := device.NewClient(hub.HostName(), "camera-1", cred, &device.ClientOptions{
		Transport: amqp.NewDialer(nil), // or any other transport
		Port:      hub.Port(hubtest.AMQP),
		TLSConfig: &tls.Config{RootCAs: hub.CertPool()},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("snapshot", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, map[string]string{"file": "snap-0001.jpg"})
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), mux) }()
	defer func() { client.Close(); <-done }()

	res, err := dev.Invoke(context.Background(), "snapshot", nil, &hubtest.InvokeOptions{ConnectTimeout: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 {"file":"snap-0001.jpg"}
}

func ExampleMethodMux_HandleFunc() {
	mux := device.NewMethodMux()
	mux.HandleFunc("setSpeed", func(ctx context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		var args struct {
			Speed int `json:"speed"`
		}
		if err := req.Unmarshal(&args); err != nil {
			return nil, err // answered 400 with the reason
		}
		if args.Speed < 1 || args.Speed > 3 {
			return nil, device.Errorf(400, "speed must be 1, 2 or 3, not %d", args.Speed)
		}
		return device.JSONResponse(200, map[string]int{"speed": args.Speed})
	})

	// Try it through the fake transport, as a unit test would.
	fake := transporttest.NewFake(nil)
	client, _ := device.NewClientFromConnectionString("HostName=h.example;DeviceId=fan-1;SharedAccessKey="+testKeyB64,
		&device.ClientOptions{Transport: fake})
	go client.Run(context.Background(), mux)
	defer client.Close()
	for _, payload := range []string{`{"speed":2}`, `{"speed":9}`, ``} {
		var p []byte
		if payload != "" {
			p = []byte(payload)
		}
		status, body, _ := fake.Invoke(context.Background(), "setSpeed", p)
		fmt.Println(status, string(body))
	}
	status, body, _ := fake.Invoke(context.Background(), "reboot", nil)
	fmt.Println(status, string(body))
	// Output:
	// 200 {"speed":2}
	// 400 {"error":"speed must be 1, 2 or 3, not 9"}
	// 400 {"error":"the method needs a payload"}
	// 501 {"error":"method not implemented","method":"reboot"}
}

func ExampleClient_Run() {
	fake := transporttest.NewFake(nil)
	var states []device.State // written by the client's notifier goroutine, read after Run returns
	client, err := device.NewClientFromConnectionString("HostName=h.example;DeviceId=dev-1;SharedAccessKey="+testKeyB64,
		&device.ClientOptions{
			Transport:     fake,
			OnStateChange: func(s device.State, err error) { states = append(states, s) },
		})
	if err != nil {
		log.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("ping", func(context.Context, *device.MethodRequest) (*device.MethodResponse, error) {
		return device.JSONResponse(200, "pong")
	})
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), mux) }()

	status, body, _ := fake.Invoke(context.Background(), "ping", nil)
	fmt.Println(status, string(body))
	client.Close()
	fmt.Println("run:", <-done)
	fmt.Println("states:", states)
	// Output:
	// 200 "pong"
	// run: device: client closed
	// states: [connecting connected closed]
}

func ExampleMethodMux_HandleCommand() {
	// A device announces its IoT Plug and Play model and serves the
	// commands of its components; the hub calls them as the methods
	// "thermostat1*getMaxMinReport" and "thermostat2*getMaxMinReport".
	opts := &device.ClientOptions{ModelID: "dtmi:com:example:TemperatureController;2"}
	_ = opts // passed to NewClientFromConnectionString
	mux := device.NewMethodMux()
	report := func(ctx context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
		component, command := req.Command()
		return device.JSONResponse(200, map[string]string{"component": component, "command": command})
	}
	mux.HandleCommandFunc("thermostat1", "getMaxMinReport", report)
	mux.HandleCommandFunc("thermostat2", "getMaxMinReport", report)
	mux.HandleCommandFunc("", "reboot", report) // the default component: the method "reboot"

	resp, _ := mux.ServeMethod(context.Background(), &device.MethodRequest{Name: "thermostat2*getMaxMinReport"})
	fmt.Println(resp.Status, string(resp.Payload))
	// Output: 200 {"command":"getMaxMinReport","component":"thermostat2"}
}
