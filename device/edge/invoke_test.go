package edge

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/internal/testcert"
	"github.com/directmethods/iotdevice/sas"
	"github.com/google/go-cmp/cmp"
)

// seenRequest is what the fake edge hub saw of an invocation.
type seenRequest struct {
	Method, Path, Query, ModuleHeader, ContentType string
	Body                                           map[string]any
	TokenResource                                  string
}

// startFakeEdgeHub serves answer on TLS for 127.0.0.1 and records the
// requests; it returns a module client of edge-1/mod-a that uses it as
// its gateway.
func startFakeEdgeHub(t *testing.T, answer func(w http.ResponseWriter)) (*device.Client, int, chan seenRequest) {
	t.Helper()
	cert, pool, err := testcert.Server()
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan seenRequest, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		s := seenRequest{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			ModuleHeader: r.Header.Get("x-ms-edge-moduleId"), ContentType: r.Header.Get("Content-Type")}
		_ = json.Unmarshal(raw, &s.Body)
		if tok, err := sastoken.Parse(r.Header.Get("Authorization")); err == nil && tok.Verify([]byte("module-key"), time.Now()) == nil {
			s.TokenResource = tok.Resource
		}
		seen <- s
		answer(w)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, portText, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)
	cred, err := sas.NewKeyCredential("bW9kdWxlLWtleQ==", "", 0) // "module-key"
	if err != nil {
		t.Fatal(err)
	}
	c, err := device.NewModuleClient("hub.example", "edge-1", "mod-a", cred, &device.ClientOptions{GatewayHostName: "127.0.0.1", TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	return c, port, seen
}

func TestMethodInvokerInvokes(t *testing.T) {
	c, port, seen := startFakeEdgeHub(t, func(w http.ResponseWriter) {
		_, _ = w.Write([]byte(`{"status":201,"payload":{"echo":[1,2]}}`))
	})
	inv, err := NewMethodInvoker(c, &MethodInvokerOptions{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	for _, tt := range []struct {
		name     string
		module   string
		call     MethodCall
		wantPath string
		wantBody map[string]any
	}{
		{"module", "mod b", MethodCall{Name: "echo", Payload: json.RawMessage(`{"a":1}`), ResponseTimeout: 1500 * time.Millisecond, ConnectTimeout: 2 * time.Second},
			"/twins/edge-1/modules/mod%20b/methods", map[string]any{"methodName": "echo", "payload": map[string]any{"a": 1.0}, "responseTimeoutInSeconds": 2.0, "connectTimeoutInSeconds": 2.0}},
		{"device", "", MethodCall{Name: "reboot"},
			"/twins/edge-1/methods", map[string]any{"methodName": "reboot"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := inv.Invoke(t.Context(), "edge-1", tt.module, tt.call)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != 201 || string(res.Payload) != `{"echo":[1,2]}` {
				t.Errorf("result %d %s", res.Status, res.Payload)
			}
			want := seenRequest{Method: "POST", Path: tt.wantPath, Query: "api-version=2021-04-12", ModuleHeader: "edge-1/mod-a",
				ContentType: "application/json; charset=utf-8", Body: tt.wantBody, TokenResource: "hub.example/devices/edge-1/modules/mod-a"}
			if diff := cmp.Diff(want, <-seen); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMethodInvokerErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		header string
		body   string
		want   InvokeError
	}{
		{"IoT Hub's two levels", 404, "DeviceNotOnline", `{"Message":"{\"errorCode\":404103,\"trackingId\":\"x\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{}}","ExceptionMessage":""}`,
			InvokeError{HTTPStatus: 404, Code: 404103, Name: "DeviceNotOnline", Message: "Timed out waiting for device to connect."}},
		{"flat", 401, "", `{"errorCode":401002,"message":"Unauthorized"}`,
			InvokeError{HTTPStatus: 401, Code: 401002, Message: "Unauthorized"}},
		{"message only", 500, "", `{"Message":"boom"}`, InvokeError{HTTPStatus: 500, Message: "boom"}},
		{"text", 502, "", "bad gateway\n", InvokeError{HTTPStatus: 502, Message: "bad gateway"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, port, _ := startFakeEdgeHub(t, func(w http.ResponseWriter) {
				if tt.header != "" {
					w.Header().Set("iothub-errorcode", tt.header)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			inv, err := NewMethodInvoker(c, &MethodInvokerOptions{Port: port})
			if err != nil {
				t.Fatal(err)
			}
			defer inv.Close()
			_, err = inv.Invoke(t.Context(), "edge-1", "mod-b", MethodCall{Name: "echo"})
			var ie *InvokeError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v, want *InvokeError", err)
			}
			if diff := cmp.Diff(tt.want, *ie); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMethodInvokerRefusesBadUse(t *testing.T) {
	cred, err := sas.NewKeyCredential("bW9kdWxlLWtleQ==", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	deviceClient, _ := device.NewClient("hub.example", "edge-1", cred, &device.ClientOptions{GatewayHostName: "gw"})
	noGateway, _ := device.NewModuleClient("hub.example", "edge-1", "mod-a", cred, nil)
	module, _ := device.NewModuleClient("hub.example", "edge-1", "mod-a", cred, &device.ClientOptions{GatewayHostName: "gw"})
	for name, build := range map[string]func() (*MethodInvoker, error){
		"device client": func() (*MethodInvoker, error) { return NewMethodInvoker(deviceClient, nil) },
		"no gateway":    func() (*MethodInvoker, error) { return NewMethodInvoker(noGateway, nil) },
		"bad port":      func() (*MethodInvoker, error) { return NewMethodInvoker(module, &MethodInvokerOptions{Port: 70000}) },
	} {
		if _, err := build(); !errors.Is(err, device.ErrInvalidConfig) {
			t.Errorf("%s: error %v, want device.ErrInvalidConfig", name, err)
		}
	}
	inv, err := NewMethodInvoker(module, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]MethodCall{
		"no name":          {},
		"negative timeout": {Name: "m", ResponseTimeout: -1},
		"payload not JSON": {Name: "m", Payload: json.RawMessage("{")},
	} {
		if _, err := inv.Invoke(t.Context(), "edge-1", "", call); !errors.Is(err, device.ErrInvalidConfig) {
			t.Errorf("%s: error %v, want device.ErrInvalidConfig", name, err)
		}
	}
	if _, err := inv.Invoke(t.Context(), "", "", MethodCall{Name: "m"}); !errors.Is(err, device.ErrInvalidConfig) {
		t.Errorf("empty device: error %v, want device.ErrInvalidConfig", err)
	}
}

func FuzzParseInvokeError(f *testing.F) {
	for _, s := range []string{`{"Message":"{\"errorCode\":404103,\"message\":\"m\"}"}`, `{"errorCode":1,"message":"x"}`, `{"Message":"x"}`, "text", `{"Message":"{\"errorCode\":\"x\"}"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e := parseInvokeError(400, "", []byte(body))
		if e.HTTPStatus != 400 || len(e.Message) > 200+len("…") {
			t.Fatalf("error %+v", e)
		}
		_ = e.Error()
	})
}
