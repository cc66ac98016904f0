package localhub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/directmethods/iotdevice/sas"
)

// restAnswer is what a raw REST call returned.
type restAnswer struct {
	HTTPStatus int
	Header     string // iothub-errorcode
	ErrorCode  int
	Message    string
	Info       map[string]string
}

// postRaw sends a POST to the hub's HTTPS port with exactly the given
// Authorization header and body.
func postRaw(t *testing.T, h *Hub, path, auth, body string) restAnswer {
	t.Helper()
	a, _, _ := requestRaw(t, h, http.MethodPost, path, auth, body)
	return a
}

// requestRaw sends a request to the hub's HTTPS port with exactly the given
// method, Authorization header and body, and header's name-value pairs,
// and returns the answer, its headers and its body.
func requestRaw(t *testing.T, h *Hub, method, path, auth, body string, header ...string) (restAnswer, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+h.HostName()+":"+strconv.Itoa(h.HTTPSPort())+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.ServiceClient().client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := restAnswer{HTTPStatus: resp.StatusCode, Header: resp.Header.Get("iothub-errorcode")}
	if resp.StatusCode == http.StatusOK {
		return a, resp.Header, b
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	var outer struct{ Message, ExceptionMessage *string }
	if err := json.Unmarshal(b, &outer); err != nil || outer.Message == nil || outer.ExceptionMessage == nil {
		t.Fatalf("error body %s: want Message and ExceptionMessage (%v)", b, err)
	}
	var inner struct {
		ErrorCode    int               `json:"errorCode"`
		TrackingID   string            `json:"trackingId"`
		Message      string            `json:"message"`
		Info         map[string]string `json:"info"`
		TimestampUTC string            `json:"timestampUtc"`
	}
	if err := json.Unmarshal([]byte(*outer.Message), &inner); err != nil {
		t.Fatalf("inner error body %q: %v", *outer.Message, err)
	}
	if inner.TrackingID == "" {
		t.Errorf("no trackingId in %s", *outer.Message)
	}
	if _, err := time.Parse(time.RFC3339Nano, inner.TimestampUTC); err != nil {
		t.Errorf("timestampUtc %q: %v", inner.TimestampUTC, err)
	}
	a.ErrorCode, a.Message, a.Info = inner.ErrorCode, inner.Message, inner.Info
	return a, resp.Header, b
}

func TestRESTErrors(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev", "dev/mod", "idle"}})
	connectDevice(t, h, "idle", deviceOptions{noSubscribe: true})
	svc := h.ServiceClient()
	good := svc.Token(time.Hour)
	devCS, _ := h.ConnectionString("dev")
	otherKey := []byte("0123456789abcdef0123456789abcdef")
	serviceKey, _ := sas.DecodeKey(h.reg.serviceKey)
	const path = "/twins/dev/methods?api-version=2021-04-12"
	const body = `{"methodName":"m"}`
	big := `{"methodName":"m","payload":"` + strings.Repeat("x", maxMethodPayload) + `"}`
	huge := `{"methodName":"m","payload":"` + strings.Repeat("x", 2*maxMethodPayload) + `"}`

	unauthorized := restAnswer{401, "IotHubUnauthorizedAccess", 401002, "Unauthorized", map[string]string{}}
	invalid := func() restAnswer { return restAnswer{400, "ArgumentInvalid", 400004, "", map[string]string{}} }
	tooLarge := restAnswer{413, "MessageTooLarge", 413001, "", map[string]string{}}
	badVersion := restAnswer{400, "InvalidProtocolVersion", 400001, "", map[string]string{}}
	noResource := restAnswer{404, "InvalidOperation", 400003, "", map[string]string{}}
	tests := []struct {
		name       string
		path, auth string
		body       string
		want       restAnswer
	}{
		{"missing token", path, "", body, unauthorized},
		{"forged token", path, sas.Sign(otherKey, "localhost", ServicePolicy, time.Now().Add(time.Hour)), body, unauthorized},
		{"expired token", path, sas.Sign(serviceKey, "localhost", ServicePolicy, time.Now().Add(-time.Hour)), body, unauthorized},
		{"device token", path, deviceToken(t, devCS, time.Now().Add(time.Hour)), body, unauthorized},
		{"unknown policy", path, sas.Sign(serviceKey, "localhost", "registryRead", time.Now().Add(time.Hour)), body, unauthorized},
		{"token for another hub", path, sas.Sign(serviceKey, "otherhub", ServicePolicy, time.Now().Add(time.Hour)), body, unauthorized},
		{"token for another device", path, sas.Sign(serviceKey, "localhost/devices/other", ServicePolicy, time.Now().Add(time.Hour)), body, unauthorized},
		{"not a token", path, "Bearer abc", body, unauthorized},
		{"missing api-version", "/twins/dev/methods", good, body, badVersion},
		{"empty api-version", "/twins/dev/methods?api-version=", good, body, badVersion},
		{"unknown api-version", "/twins/dev/methods?api-version=2099-01-01", good, body, badVersion},
		{"api-version not a date", "/twins/dev/methods?api-version=1", good, body, badVersion},
		{"api-version in another case", "/twins/dev/methods?API-VERSION=2021-04-12", good, body, badVersion},
		{"api-version twice", "/twins/dev/methods?api-version=2021-04-12&api-version=2020-09-30", good, body, badVersion},
		{"bad api-version before a bad token", "/twins/dev/methods?api-version=x", "", body, badVersion},
		{"malformed JSON", path, good, `{"methodName":`, invalid()},
		{"not an object", path, good, `[]`, invalid()},
		{"trailing data", path, good, body + `{}`, invalid()},
		{"missing methodName", path, good, `{"payload":1}`, invalid()},
		{"empty methodName", path, good, `{"methodName":""}`, invalid()},
		{"methodName with slash", path, good, `{"methodName":"a/b"}`, invalid()},
		{"methodName with space", path, good, `{"methodName":"a b"}`, invalid()},
		{"methodName with dollar", path, good, `{"methodName":"$a"}`, invalid()},
		{"methodName with wildcard", path, good, `{"methodName":"a#"}`, invalid()},
		{"methodName too long", path, good, `{"methodName":"` + strings.Repeat("a", 129) + `"}`, invalid()},
		{"methodName not a string", path, good, `{"methodName":5}`, invalid()},
		{"responseTimeout too small", path, good, `{"methodName":"m","responseTimeoutInSeconds":4}`, invalid()},
		{"responseTimeout too large", path, good, `{"methodName":"m","responseTimeoutInSeconds":301}`, invalid()},
		{"responseTimeout not integer", path, good, `{"methodName":"m","responseTimeoutInSeconds":5.5}`, invalid()},
		{"connectTimeout negative", path, good, `{"methodName":"m","connectTimeoutInSeconds":-1}`, invalid()},
		{"connectTimeout too large", path, good, `{"methodName":"m","connectTimeoutInSeconds":301}`, invalid()},
		{"payload over 128 KB", path, good, big, tooLarge},
		{"body over the limit", path, good, huge, tooLarge},
		{"unknown device", "/twins/nobody/methods?api-version=2021-04-12", good, body,
			restAnswer{404, "DeviceNotFound", 404001, "", map[string]string{}}},
		{"unknown module", "/twins/dev/modules/nomod/methods?api-version=2021-04-12", good, body,
			restAnswer{404, "ModuleNotFound", 404010, "", map[string]string{}}},
		{"unknown module of unknown device", "/twins/nobody/modules/mod/methods?api-version=2021-04-12", good, body,
			restAnswer{404, "DeviceNotFound", 404001, "", map[string]string{}}},
		{"device offline", path, good, body,
			restAnswer{404, "DeviceNotOnline", 404103, "Timed out waiting for device to connect.", map[string]string{"timeout": "00:00:00"}}},
		{"module offline", "/twins/dev/modules/mod/methods?api-version=2021-04-12", good, body,
			restAnswer{404, "DeviceNotOnline", 404103, "Timed out waiting for device to connect.", map[string]string{"timeout": "00:00:00"}}},
		{"device connected but not subscribed", "/twins/idle/methods?api-version=2021-04-12", good, body,
			restAnswer{404, "DeviceNotOnline", 404103, "Timed out waiting for device to connect.", map[string]string{"timeout": "00:00:00"}}},
		{"device path with trailing slash", "/twins/nobody/methods/?api-version=2021-04-12", good, body,
			restAnswer{404, "DeviceNotFound", 404001, "", map[string]string{}}},
		{"module path with trailing slash", "/twins/dev/modules/nomod/methods/?api-version=2021-04-12", good, body,
			restAnswer{404, "ModuleNotFound", 404010, "", map[string]string{}}},
		{"trailing slash without api-version", "/twins/dev/methods/", good, body, badVersion},
		{"unknown path", "/twins/dev/twin?api-version=2021-04-12", good, body, noResource},
		{"path with extra segment", "/twins/dev/methods/x?api-version=2021-04-12", good, body, noResource},
		{"two trailing slashes", "/twins/dev/methods//?api-version=2021-04-12", good, body, noResource},
		{"root", "/", good, body, noResource},
		{"unknown path without api-version or token", "/nothing", "", body, noResource},
	}
	ignoreMessage := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Message" }, cmp.Ignore())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := postRaw(t, h, tt.path, tt.auth, tt.body)
			var opts []cmp.Option
			if tt.want.Message == "" {
				opts = append(opts, ignoreMessage)
			}
			if tt.want.Info == nil {
				got.Info = nil
			}
			if diff := cmp.Diff(tt.want, got, opts...); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRESTAPIVersions checks that every api-version the official service
// SDKs send is accepted: the request gets past the version check to the
// registry, which does not know the device.
func TestRESTAPIVersions(t *testing.T) {
	h := startHub(t, Options{})
	token := h.ServiceClient().Token(time.Hour)
	if !slices.Contains(supportedAPIVersions, serviceAPIVersion) {
		t.Errorf("ServiceClient sends api-version %s, which the hub does not accept", serviceAPIVersion)
	}
	for _, v := range []string{"2018-06-30", "2020-03-13", "2020-09-30", "2021-04-12"} {
		t.Run(v, func(t *testing.T) {
			got := postRaw(t, h, "/twins/nobody/methods?api-version="+v, token, `{"methodName":"m"}`)
			want := restAnswer{404, "DeviceNotFound", 404001, "", map[string]string{}}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(restAnswer{}, "Message")); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWebSocketIgnoresAPIVersion checks that the WebSocket upgrade does not
// require an api-version: device SDKs do not always send one there.
func TestWebSocketIgnoresAPIVersion(t *testing.T) {
	h := startHub(t, Options{})
	for _, query := range []string{"", "?iothub-no-client-cert=true", "?api-version=2099-01-01"} {
		t.Run(query, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "wss://localhost:"+strconv.Itoa(h.HTTPSPort())+"/$iothub/websocket"+query, &websocket.DialOptions{
				HTTPClient:   h.ServiceClient().client,
				Subprotocols: []string{"mqtt"},
			})
			if err != nil {
				t.Fatalf("websocket dial: %v", err)
			}
			defer c.CloseNow()
			if c.Subprotocol() != "mqtt" {
				t.Errorf("subprotocol = %q, want mqtt", c.Subprotocol())
			}
		})
	}
}

// TestRESTMethodNotAllowed checks that a method path asked with another
// HTTP method gets 405 with an Allow header and the hub's error form.
func TestRESTMethodNotAllowed(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev", "dev/mod"}})
	token := h.ServiceClient().Token(time.Hour)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		for _, path := range []string{"/twins/dev/methods", "/twins/dev/methods/", "/twins/dev/modules/mod/methods"} {
			t.Run(method+" "+path, func(t *testing.T) {
				got, header, _ := requestRaw(t, h, method, path+"?api-version=2021-04-12", token, "")
				want := restAnswer{405, "InvalidOperation", 400003, "The requested resource does not support http method '" + method + "'.", map[string]string{}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
				if allow := header.Get("Allow"); allow != http.MethodPost {
					t.Errorf("Allow = %q, want POST", allow)
				}
			})
		}
	}
}

// TestRESTAnswerBody checks the exact body of a successful invocation: the
// device's status, and its answer bytes spliced in unchanged (null for
// none), JSON or not, as IoT Hub does (azure-iot-sdk-node issue #736).
func TestRESTAnswerBody(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev"}})
	connectDevice(t, h, "dev", deviceOptions{answer: func(name string, _ []byte) (int, []byte, bool) {
		return 201, []byte(deviceAnswers[name]), true
	}})
	token := h.ServiceClient().Token(time.Hour)
	tests := []struct{ method, want string }{
		{"empty", `{"status":201,"payload":null}`},
		{"notjson", `{"status":201,"payload":not json}`},
		{"quotes", `{"status":201,"payload":{'filename': 'logs.zip'}}`},
		{"spaced", `{"status":201,"payload": {"a": 1} }`},
		{"breakout", `{"status":201,"payload":1,"status":500}`},
		{"binary", "{\"status\":201,\"payload\":\xff\x00\x01}"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			got, header, body := requestRaw(t, h, http.MethodPost, "/twins/dev/methods?api-version=2021-04-12", token, `{"methodName":"`+tt.method+`"}`)
			if got.HTTPStatus != http.StatusOK {
				t.Fatalf("answer = %+v, want 200", got)
			}
			if ct := header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if string(body) != tt.want {
				t.Errorf("body = %q, want %q", body, tt.want)
			}
		})
	}
}

// TestServiceErrorType checks that ServiceClient reports errors as
// *ServiceError with the header name and the body code.
func TestServiceErrorType(t *testing.T) {
	h := startHub(t, Options{})
	_, err := invoke(t, h, "nobody", MethodCall{MethodName: "m"})
	var se *ServiceError
	if !errors.As(err, &se) {
		t.Fatalf("Invoke error = %v, want *ServiceError", err)
	}
	want := &ServiceError{HTTPStatus: 404, ErrorCode: 404001, Name: "DeviceNotFound", Message: "Device nobody not registered"}
	if diff := cmp.Diff(want, se); diff != "" {
		t.Errorf("ServiceError (-want +got):\n%s", diff)
	}
}

// TestConnectTimeoutWaitsForDevice starts a call to an offline device with
// a connect timeout, then connects the device: the call succeeds.
func TestConnectTimeoutWaitsForDevice(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"late"}})
	type result struct {
		res *MethodResult
		err error
	}
	done := make(chan result, 1)
	go func() { // owned by the test: ends when the invocation returns
		res, err := invoke(t, h, "late", MethodCall{MethodName: "m", Payload: json.RawMessage(`{"a":1}`), ConnectTimeoutInSeconds: 30})
		done <- result{res, err}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := h.WaitCallsWaiting(ctx, "late", 1); err != nil {
		t.Fatalf("the call never waited for the device: %v", err)
	}
	connectDevice(t, h, "late", deviceOptions{})
	r := <-done
	if r.err != nil {
		t.Fatalf("Invoke: %v", r.err)
	}
	if diff := cmp.Diff(&MethodResult{200, json.RawMessage(`{"a":1}`)}, r.res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

// TestResponseTimeout invokes a device that never answers (the one slow
// test: it waits the minimum response timeout of 5 s).
func TestResponseTimeout(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{Devices: []string{"mute"}})
	connectDevice(t, h, "mute", deviceOptions{answer: func(string, []byte) (int, []byte, bool) { return 0, nil, false }})
	got := postRaw(t, h, "/twins/mute/methods?api-version=2021-04-12", h.ServiceClient().Token(time.Hour),
		`{"methodName":"m","responseTimeoutInSeconds":5}`)
	want := restAnswer{504, "GatewayTimeout", 504101, "Timed out waiting for the response from device.", map[string]string{"timeout": "00:00:05"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
}
