package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/sas"
	"github.com/google/go-cmp/cmp"
)

func TestInvokeAndAnswer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1", "dev-1/mod-1")
			mux := echoMux()
			mux.HandleFunc("whoami", func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
				return device.JSONResponse(201, map[string]string{"method": r.Name})
			})
			runDevice(t, hub, "dev-1", tr, mux, nil)
			runDevice(t, hub, "dev-1/mod-1", tr, echoMux(), nil)
			waitSubscribed(t, hub, "dev-1")
			waitSubscribed(t, hub, "dev-1/mod-1")
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 30*time.Second)

			tests := []struct {
				name, module string
				call         localhub.MethodCall
				want         localhub.MethodResult
			}{
				{"echo object", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`{"a":[1,"two",null]}`)},
					localhub.MethodResult{Status: 200, Payload: json.RawMessage(`{"a":[1,"two",null]}`)}},
				{"no payload", "", localhub.MethodCall{MethodName: "echo"}, localhub.MethodResult{Status: 200, Payload: json.RawMessage(`null`)}},
				{"status chosen by handler", "", localhub.MethodCall{MethodName: "whoami"},
					localhub.MethodResult{Status: 201, Payload: json.RawMessage(`{"method":"whoami"}`)}},
				{"unknown method", "", localhub.MethodCall{MethodName: "nope"},
					localhub.MethodResult{Status: 501, Payload: json.RawMessage(`{"error":"method not implemented","method":"nope"}`)}},
				{"module", "mod-1", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`"to the module"`)},
					localhub.MethodResult{Status: 200, Payload: json.RawMessage(`"to the module"`)}},
				{"module unknown method", "mod-1", localhub.MethodCall{MethodName: "whoami"},
					localhub.MethodResult{Status: 501, Payload: json.RawMessage(`{"error":"method not implemented","method":"whoami"}`)}},
			}
			for _, tt := range tests {
				begin := time.Now()
				got, err := svc.Invoke(ctx, "dev-1", tt.module, tt.call)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if diff := cmp.Diff(tt.want, *got, cmp.Transformer("compact", compactJSON)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", tt.name, diff)
				}
				if d := time.Since(begin); d > 5*time.Second {
					t.Errorf("%s took %v: an answer must not wait for a timeout", tt.name, d)
				}
			}
		})
	}
}

func compactJSON(r json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, r); err != nil {
		return "invalid JSON: " + string(r)
	}
	return b.String()
}

func TestDeviceOffline(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 30*time.Second)
			_, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "echo"})
			var se *localhub.ServiceError
			if !errors.As(err, &se) || se.HTTPStatus != 404 || se.ErrorCode != 404103 {
				t.Fatalf("invoke while offline = %v, want 404103", err)
			}
			// With a connect timeout, the call waits for the device.
			result := make(chan error, 1)
			go func() {
				res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`1`), ConnectTimeoutInSeconds: 20})
				if err == nil && res.Status != 200 {
					err = fmt.Errorf("status %d", res.Status)
				}
				result <- err
			}()
			runDevice(t, hub, "dev-1", tr, echoMux(), nil)
			if err := <-result; err != nil {
				t.Errorf("invoke within connectTimeoutInSeconds: %v", err)
			}
		})
	}
}

func TestNoAnswerTimesOut(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			release := make(chan struct{})
			mux := device.NewMethodMux()
			mux.HandleFunc("slow", func(ctx context.Context, _ *device.MethodRequest) (*device.MethodResponse, error) {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil, nil
			})
			runDevice(t, hub, "dev-1", tr, mux, func(o *device.ClientOptions) { o.MethodTimeout = time.Minute })
			defer close(release) // before the client closes (cleanups run after defers)
			waitSubscribed(t, hub, "dev-1")
			begin := time.Now()
			_, err := hub.ServiceClient().Invoke(ctxTimeout(t, 30*time.Second), "dev-1", "", localhub.MethodCall{MethodName: "slow", ResponseTimeoutInSeconds: 5})
			var se *localhub.ServiceError
			if !errors.As(err, &se) || se.HTTPStatus != 504 || se.ErrorCode != 504101 {
				t.Fatalf("invoke = %v, want 504101", err)
			}
			if d := time.Since(begin); d < 5*time.Second || d > 10*time.Second {
				t.Errorf("timed out after %v, want about 5s", d)
			}
		})
	}
}

func TestManyDevicesManyCalls(t *testing.T) {
	const devices, calls = 20, 500
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			hub := startHub(t)
			for i := range devices {
				id := fmt.Sprintf("dev-%02d", i)
				if _, err := hub.AddDevice(id); err != nil {
					t.Fatal(err)
				}
				mux := device.NewMethodMux()
				mux.HandleFunc("add", func(_ context.Context, r *device.MethodRequest) (*device.MethodResponse, error) {
					var in struct{ A, B int }
					if err := r.Unmarshal(&in); err != nil {
						return nil, err
					}
					return device.JSONResponse(200, map[string]any{"sum": in.A + in.B, "device": id})
				})
				runDevice(t, hub, id, tr, mux, nil)
			}
			for i := range devices {
				waitSubscribed(t, hub, fmt.Sprintf("dev-%02d", i))
			}
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 60*time.Second)
			var wg sync.WaitGroup
			errs := make(chan error, calls)
			for i := range calls {
				wg.Go(func() {
					id := fmt.Sprintf("dev-%02d", i%devices)
					res, err := svc.Invoke(ctx, id, "", localhub.MethodCall{MethodName: "add", Payload: json.RawMessage(fmt.Sprintf(`{"A":%d,"B":%d}`, i, 1000))})
					if err != nil {
						errs <- fmt.Errorf("call %d: %w", i, err)
						return
					}
					want := fmt.Sprintf(`{"device":%q,"sum":%d}`, id, i+1000)
					if res.Status != 200 || compactJSON(res.Payload) != want {
						errs <- fmt.Errorf("call %d: %d %s, want 200 %s", i, res.Status, res.Payload, want)
					}
				})
			}
			wg.Wait()
			close(errs)
			n := 0
			for err := range errs {
				if n++; n <= 10 {
					t.Error(err)
				}
			}
			if n > 0 {
				t.Errorf("%d of %d calls failed", n, calls)
			}
		})
	}
}

func TestX509Device(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t)
			cert, err := hub.AddX509Device("cert-dev")
			if err != nil {
				t.Fatal(err)
			}
			cs, err := hub.ConnectionString("cert-dev")
			if err != nil {
				t.Fatal(err)
			}
			client, err := device.NewX509ClientFromConnectionString(cs, cert, deviceOptions(t, hub, tr))
			if err != nil {
				t.Fatal(err)
			}
			runClient(t, "cert-dev", client, echoMux())
			waitSubscribed(t, hub, "cert-dev")
			res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 20*time.Second), "cert-dev", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`"signed"`)})
			if err != nil || res.Status != 200 || string(res.Payload) != `"signed"` {
				t.Fatalf("invoke = %+v, %v", res, err)
			}
		})
	}
}

func TestWrongKeyIsFatal(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			cs, _ := hub.ConnectionString("dev-1")
			parsed, err := sas.ParseConnectionString(cs)
			if err != nil {
				t.Fatal(err)
			}
			wrong := strings.Replace(cs, parsed.SharedAccessKey, base64.StdEncoding.EncodeToString([]byte("not the device's key, at all")), 1)
			dials := 0
			opts := deviceOptions(t, hub, tr)
			opts.OnStateChange = func(s device.State, _ error) {
				if s == device.StateConnecting {
					dials++
				}
			}
			client, err := device.NewClientFromConnectionString(wrong, opts)
			if err != nil {
				t.Fatal(err)
			}
			err = client.Run(ctxTimeout(t, 20*time.Second), echoMux())
			var de *device.Error
			if !errors.As(err, &de) || de.Code != device.CodeUnauthorized {
				t.Fatalf("Run = %v, want CodeUnauthorized", err)
			}
			if dials != 1 {
				t.Errorf("%d connection attempts, want 1", dials)
			}
		})
	}
}

func TestMethodsWorkAfterHubDrops(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			reconnected := make(chan struct{}, 10)
			runDevice(t, hub, "dev-1", tr, echoMux(), func(o *device.ClientOptions) {
				o.OnStateChange = func(s device.State, _ error) {
					if s == device.StateConnected {
						reconnected <- struct{}{}
					}
				}
			})
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 60*time.Second)
			for round := range 3 {
				<-reconnected
				waitSubscribed(t, hub, "dev-1")
				res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(fmt.Sprint(round)), ConnectTimeoutInSeconds: 10})
				if err != nil || res.Status != 200 || string(res.Payload) != fmt.Sprint(round) {
					t.Fatalf("round %d: %+v, %v", round, res, err)
				}
				if n := hub.Disconnect("dev-1"); n != 1 {
					t.Fatalf("round %d: Disconnect dropped %d connections", round, n)
				}
			}
		})
	}
}

func TestHubDetachesAMQPMethodLink(t *testing.T) {
	for _, tr := range transports {
		if !strings.HasPrefix(tr, "amqp") {
			continue
		}
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			connected := make(chan struct{}, 10)
			runDevice(t, hub, "dev-1", tr, echoMux(), func(o *device.ClientOptions) {
				o.OnStateChange = func(s device.State, _ error) {
					if s == device.StateConnected {
						connected <- struct{}{}
					}
				}
			})
			<-connected
			waitSubscribed(t, hub, "dev-1")
			if !hub.DetachMethodLink("dev-1") {
				t.Fatal("the hub found no AMQP method link to detach")
			}
			select {
			case <-connected: // the client attached both links again
			case <-ctxTimeout(t, 15*time.Second).Done():
				t.Fatal("the client did not come back after the detach")
			}
			res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 20*time.Second), "dev-1", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`"again"`), ConnectTimeoutInSeconds: 10})
			if err != nil || res.Status != 200 || string(res.Payload) != `"again"` {
				t.Fatalf("invoke after re-attach = %+v, %v", res, err)
			}
		})
	}
}

func TestExpiredTokenIsFatal(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			key := identityKey(t, hub, "dev-1")
			// A token source (such as an HSM) that hands out a token that
			// expired long ago: the hub refuses it and the client stops.
			expired := sas.TokenFunc(func(_ context.Context, resource string) (string, time.Time, error) {
				at := time.Now().Add(-time.Hour)
				return sas.Sign(key, resource, "", at), at.Add(2 * time.Hour), nil
			})
			client, err := device.NewClient(hub.HostName(), "dev-1", expired, deviceOptions(t, hub, tr))
			if err != nil {
				t.Fatal(err)
			}
			err = client.Run(ctxTimeout(t, 20*time.Second), echoMux())
			var de *device.Error
			if !errors.As(err, &de) || de.Code != device.CodeUnauthorized {
				t.Fatalf("Run = %v, want CodeUnauthorized", err)
			}
		})
	}
}

// TestCallableAsSoonAsConnected checks the transport contract end to end:
// Dial returns only once the hub routes methods to the device, so a call
// with no connect timeout succeeds the moment the client says connected,
// after every reconnection.
func TestCallableAsSoonAsConnected(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			connected := make(chan struct{}, 1)
			runDevice(t, hub, "dev-1", tr, echoMux(), func(o *device.ClientOptions) {
				o.Backoff = func(int) time.Duration { return 0 }
				o.OnStateChange = func(s device.State, _ error) {
					if s == device.StateConnected {
						connected <- struct{}{}
					}
				}
			})
			svc := hub.ServiceClient()
			ctx := ctxTimeout(t, 60*time.Second)
			for round := range 20 {
				select {
				case <-connected:
				case <-ctx.Done():
					t.Fatalf("round %d: not connected", round)
				}
				res, err := svc.Invoke(ctx, "dev-1", "", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(fmt.Sprint(round))})
				if err != nil || res.Status != 200 {
					t.Fatalf("round %d: call right after connecting = %+v, %v", round, res, err)
				}
				hub.Disconnect("dev-1")
			}
		})
	}
}
