package hubtest_test

import (
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/hubtest"
	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// wait bounds each wait of a test.
const wait = 30 * time.Second

// echo answers every method with its payload, or {} without one.
func echo(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
	payload := req.Payload
	if len(payload) == 0 {
		payload = []byte(`{}`)
	}
	return &device.MethodResponse{Status: 200, Payload: payload}, nil
}

// serve runs client with handler until the test ends, and joins it.
func serve(t *testing.T, client *device.Client, handler device.MethodHandler) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), handler) }()
	t.Cleanup(func() {
		client.Close()
		if err := <-done; !errors.Is(err, device.ErrClientClosed) {
			t.Errorf("Run = %v, want ErrClientClosed", err)
		}
	})
}

func TestInvokeEveryTransport(t *testing.T) {
	hub := hubtest.New(t, nil)
	for _, tr := range hubtest.Transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			tests := []struct {
				name string
				add  func() (*hubtest.Identity, error)
			}{
				{"device", func() (*hubtest.Identity, error) { return hub.AddDevice("dev-" + tr.String()) }},
				{"module", func() (*hubtest.Identity, error) { return hub.AddModule("edge-"+tr.String(), "mod") }},
				{"x509", func() (*hubtest.Identity, error) { return hub.AddX509Device("x509-" + tr.String()) }},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					id, err := tt.add()
					if err != nil {
						t.Fatal(err)
					}
					client, err := id.NewClient(tr, nil)
					if err != nil {
						t.Fatal(err)
					}
					mux := device.NewMethodMux()
					mux.HandleFunc("echo", echo)
					serve(t, client, mux)
					if err := id.WaitConnected(ctx); err != nil {
						t.Fatal(err)
					}
					res, err := id.Invoke(ctx, "echo", []byte(`{"n":1}`), nil)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(&hubtest.Result{Status: 200, Payload: []byte(`{"n":1}`)}, res); diff != "" {
						t.Errorf("echo (-want +got):\n%s", diff)
					}
					res, err = id.Invoke(ctx, "reboot", nil, nil)
					if err != nil {
						t.Fatal(err)
					}
					if res.Status != 501 {
						t.Errorf("unknown method: status %d, want 501", res.Status)
					}
				})
			}
		})
	}
}

// TestInvokeErrors checks that the hub's refusals come back as *Error with
// IoT Hub's codes.
func TestInvokeErrors(t *testing.T) {
	hub := hubtest.New(t, nil)
	offline, err := hub.AddDevice("offline")
	if err != nil {
		t.Fatal(err)
	}
	silent, err := hub.AddDevice("silent")
	if err != nil {
		t.Fatal(err)
	}
	client, err := silent.NewClient(hubtest.MQTT, nil)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	serve(t, client, device.MethodHandlerFunc(func(ctx context.Context, _ *device.MethodRequest) (*device.MethodResponse, error) {
		select { // never answers in time: the hub gives up first
		case <-release:
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	}))
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := silent.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		id       *hubtest.Identity
		payload  []byte
		opts     *hubtest.InvokeOptions
		wantCode int
	}{
		{"offline", offline, nil, nil, 404103},
		{"no answer", silent, nil, &hubtest.InvokeOptions{ResponseTimeout: 5 * time.Second}, 504101},
		{"response timeout out of range", silent, nil, &hubtest.InvokeOptions{ResponseTimeout: 301 * time.Second}, 400004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.id.Invoke(ctx, "anything", tt.payload, tt.opts)
			var hubErr *hubtest.Error
			if !errors.As(err, &hubErr) {
				t.Fatalf("Invoke = %v, want a *hubtest.Error", err)
			}
			if hubErr.Code != tt.wantCode {
				t.Errorf("Invoke = %v, want code %d", err, tt.wantCode)
			}
		})
	}
}

// TestConnectTimeoutWaitsForDevice checks the cloud's connect timeout: a
// call made before the device connects reaches it once it does.
func TestConnectTimeoutWaitsForDevice(t *testing.T) {
	hub := hubtest.New(t, nil)
	id, err := hub.AddDevice("late")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	type outcome struct {
		res *hubtest.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := id.Invoke(ctx, "echo", nil, &hubtest.InvokeOptions{ConnectTimeout: wait})
		done <- outcome{res, err}
	}()
	client, err := id.NewClient(hubtest.AMQP, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("echo", echo)
	serve(t, client, mux)
	got := <-done
	if got.err != nil || got.res.Status != 200 {
		t.Fatalf("Invoke = %+v, %v; want status 200", got.res, got.err)
	}
}

// TestDisconnectAndReconnect checks that a dropped client comes back by
// itself and is reachable again.
func TestDisconnectAndReconnect(t *testing.T) {
	hub := hubtest.New(t, nil)
	id, err := hub.AddDevice("flaky")
	if err != nil {
		t.Fatal(err)
	}
	states := make(chan device.State, 16)
	client, err := id.NewClient(hubtest.MQTT, &device.ClientOptions{
		Backoff:       func(int) time.Duration { return 10 * time.Millisecond },
		OnStateChange: func(s device.State, _ error) { states <- s },
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := device.NewMethodMux()
	mux.HandleFunc("echo", echo)
	serve(t, client, mux)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	waitState := func(want device.State) {
		t.Helper()
		for {
			select {
			case s := <-states:
				if s == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %v state: %v", want, ctx.Err())
			}
		}
	}
	waitState(device.StateConnected)
	if n := id.Disconnect(); n != 1 {
		t.Fatalf("Disconnect dropped %d connections, want 1", n)
	}
	waitState(device.StateDisconnected)
	waitState(device.StateConnected)
	if res, err := id.Invoke(ctx, "echo", nil, &hubtest.InvokeOptions{ConnectTimeout: wait}); err != nil || res.Status != 200 {
		t.Fatalf("Invoke after reconnect = %+v, %v", res, err)
	}
}

// TestWaitDisconnected checks that WaitDisconnected waits while the
// device is connected and returns once its client has closed.
func TestWaitDisconnected(t *testing.T) {
	hub := hubtest.New(t, nil)
	id, err := hub.AddDevice("restarting")
	if err != nil {
		t.Fatal(err)
	}
	client, err := id.NewClient(hubtest.MQTT, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), device.NewMethodMux()) }() // joined below
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := id.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	connected, stop := context.WithCancel(ctx)
	stop() // already over: the device is still connected, so it fails
	if err := id.WaitDisconnected(connected); err == nil {
		t.Error("WaitDisconnected returned nil while the device was connected")
	}
	client.Close()
	if err := <-done; !errors.Is(err, device.ErrClientClosed) {
		t.Errorf("Run = %v, want ErrClientClosed", err)
	}
	if err := id.WaitDisconnected(ctx); err != nil {
		t.Errorf("WaitDisconnected after Close: %v", err)
	}
}

// TestTLSIsVerified checks that the hub is reached only by trusting its
// CA: with the system roots, Run fails for good on the hub's certificate.
func TestTLSIsVerified(t *testing.T) {
	hub := hubtest.New(t, nil)
	id, err := hub.AddDevice("strict")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := id.ClientOptions(hubtest.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	opts.TLSConfig = nil // the system roots
	client, err := device.NewClientFromConnectionString(id.ConnectionString(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	err = client.Run(ctx, device.NewMethodMux())
	var unknownAuthority x509.UnknownAuthorityError
	if !errors.As(err, &unknownAuthority) {
		t.Errorf("Run = %v, want an unknown-authority error", err)
	}
}

// TestInvokeRefusesPayloadNotJSON checks that a payload the REST API
// would refuse fails before it is sent, with a clear error.
func TestInvokeRefusesPayloadNotJSON(t *testing.T) {
	hub := hubtest.New(t, nil)
	id, err := hub.AddDevice("dev")
	if err != nil {
		t.Fatal(err)
	}
	_, err = id.Invoke(t.Context(), "set", []byte(`{nope`), nil)
	if !errors.Is(err, hubtest.ErrPayloadNotJSON) {
		t.Errorf("Invoke = %v, want ErrPayloadNotJSON", err)
	}
}

func TestUnknownTransport(t *testing.T) {
	hub := hubtest.New(t, nil)
	id, err := hub.AddDevice("dev")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.NewClient(hubtest.Transport("pigeon"), nil); err == nil {
		t.Error("NewClient with an unknown transport succeeded")
	}
}

// TestPlugAndPlay checks the model ID a device announces and its commands
// called through the Digital Twins API, on every transport.
func TestPlugAndPlay(t *testing.T) {
	const model = "dtmi:com:example:TemperatureController;2"
	hub := hubtest.New(t, nil)
	for _, tr := range hubtest.Transports {
		t.Run(tr.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			id, err := hub.AddDevice("pnp-" + tr.String())
			if err != nil {
				t.Fatal(err)
			}
			client, err := id.NewClient(tr, &device.ClientOptions{ModelID: model})
			if err != nil {
				t.Fatal(err)
			}
			mux := device.NewMethodMux()
			mux.HandleCommandFunc("thermostat1", "getMaxMinReport", func(_ context.Context, req *device.MethodRequest) (*device.MethodResponse, error) {
				component, command := req.Command()
				return device.JSONResponse(200, []string{component, command})
			})
			mux.HandleCommandFunc("", "reboot", echo)
			serve(t, client, mux)
			if err := id.WaitConnected(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := id.ModelID(ctx)
			if err != nil || got != model {
				t.Errorf("ModelID = %q, %v; want %q", got, err, model)
			}
			tests := []struct {
				component, command string
				want               *hubtest.Result
			}{
				{"thermostat1", "getMaxMinReport", &hubtest.Result{Status: 200, Payload: []byte(`["thermostat1","getMaxMinReport"]`)}},
				{"", "reboot", &hubtest.Result{Status: 200, Payload: []byte(`{"delay":5}`)}},
			}
			for _, tt := range tests {
				res, err := id.InvokeCommand(ctx, tt.component, tt.command, []byte(`{"delay":5}`), nil)
				if err != nil {
					t.Fatalf("%s/%s: %v", tt.component, tt.command, err)
				}
				if diff := cmp.Diff(tt.want, res); diff != "" {
					t.Errorf("%s/%s (-want +got):\n%s", tt.component, tt.command, diff)
				}
			}
			res, err := id.InvokeCommand(ctx, "thermostat9", "getMaxMinReport", nil, nil)
			if err != nil || res.Status != 501 {
				t.Errorf("unknown component = %+v, %v; want 501", res, err)
			}
		})
	}
}
