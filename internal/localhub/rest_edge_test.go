package localhub

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// edgeCallBody is the body of the module calls below.
const edgeCallBody = `{"methodName":"echo","payload":{"n":1},"responseTimeoutInSeconds":10}`

// moduleCall posts body to path with auth and the given
// x-ms-edge-moduleId values, and returns the HTTP status and the body.
func moduleCall(t *testing.T, h *Hub, path, body, auth string, callers ...string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+h.HostName()+":"+strconv.Itoa(h.HTTPSPort())+path,
		strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for _, c := range callers {
		req.Header.Add("x-ms-edge-moduleId", c)
	}
	resp, err := h.ServiceClient().client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// errorForm tells the two error bodies apart: IoT Hub's, two levels deep
// with an error code, and the edge hub's, {"message": …} alone. It returns
// IoT Hub's code, or 0 and the edge hub's message.
func errorForm(t *testing.T, body []byte) (code int, edgeMessage string) {
	t.Helper()
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		t.Fatalf("error body %s is not JSON", body)
	}
	if raw, ok := outer["message"]; ok && len(outer) == 1 {
		var m string
		if err := json.Unmarshal(raw, &m); err != nil || m == "" {
			t.Fatalf("edge error body %s has no message", body)
		}
		return 0, m
	}
	var message string
	var inner struct {
		ErrorCode int `json:"errorCode"`
	}
	if json.Unmarshal(outer["Message"], &message) != nil || json.Unmarshal([]byte(message), &inner) != nil || inner.ErrorCode == 0 {
		t.Fatalf("error body %s is neither IoT Hub's nor the edge hub's", body)
	}
	return inner.ErrorCode, ""
}

// TestModuleScopedInvocation checks calls made as a module through its
// edge hub: who may call, which targets the edge hub reaches, and the
// edge hub's own error answers.
func TestModuleScopedInvocation(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"edge", "edge/caller", "edge/target", "edge/idle", "edge/silent", "leaf", "stranger", "other/caller"}})
	if err := h.SetParent("leaf", "edge"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"edge/target", "edge", "leaf", "stranger"} {
		connectDevice(t, h, id, deviceOptions{})
	}
	connectDevice(t, h, "edge/silent", deviceOptions{answer: func(string, []byte) (int, []byte, bool) { return 0, nil, false }})
	token := func(identity string) string {
		cs, err := h.ConnectionString(identity)
		if err != nil {
			t.Fatal(err)
		}
		return deviceToken(t, cs, time.Now().Add(time.Hour))
	}
	caller, target, otherCaller := token("edge/caller"), token("edge/target"), token("other/caller")
	service := h.ServiceClient().Token(time.Hour)
	const toModule = "/twins/edge/modules/target/methods"
	const shortResponse = `{"methodName":"echo","responseTimeoutInSeconds":5}`
	for _, tt := range []struct {
		name     string
		path     string
		body     string
		auth     string
		callers  []string
		status   int
		code     int  // IoT Hub's error code, for IoT Hub's error form
		edgeForm bool // the edge hub's error form
	}{
		{"module to module", toModule + "?api-version=2021-04-12", edgeCallBody, caller, []string{"edge/caller"}, 200, 0, false},
		{"without api-version", toModule, edgeCallBody, caller, []string{"edge/caller"}, 200, 0, false},
		{"module to its leaf device", "/twins/leaf/methods", edgeCallBody, caller, []string{"edge/caller"}, 200, 0, false},
		{"module to its own edge device", "/twins/edge/methods", edgeCallBody, caller, []string{"edge/caller"}, 404, 0, true},
		{"module to a device outside its edge", "/twins/stranger/methods", edgeCallBody, caller, []string{"edge/caller"}, 404, 0, true},
		{"another device's module", toModule, edgeCallBody, otherCaller, []string{"other/caller"}, 404, 0, true},
		{"offline module", "/twins/edge/modules/idle/methods", edgeCallBody, caller, []string{"edge/caller"}, 404, 0, true},
		{"no answer", "/twins/edge/modules/silent/methods", shortResponse, caller, []string{"edge/caller"}, 504, 0, true},
		{"unsupported api-version", toModule + "?api-version=2016-11-14", edgeCallBody, caller, []string{"edge/caller"}, 400, 400001, false},
		{"no header", toModule + "?api-version=2021-04-12", edgeCallBody, caller, nil, 401, 401002, false},
		{"another module's id in the header", toModule, edgeCallBody, caller, []string{"edge/target"}, 401, 0, true},
		{"the target's token", toModule, edgeCallBody, target, []string{"edge/caller"}, 401, 0, true},
		{"header twice", toModule, edgeCallBody, caller, []string{"edge/caller", "edge/caller"}, 400, 0, true},
		{"header names a device", toModule, edgeCallBody, token("edge"), []string{"edge"}, 400, 0, true},
		{"header names nobody", toModule, edgeCallBody, caller, []string{"edge/nobody"}, 401, 0, true},
		{"empty header", toModule, edgeCallBody, caller, []string{""}, 400, 0, true},
		{"no token", toModule, edgeCallBody, "", []string{"edge/caller"}, 401, 0, true},
		{"service token with the header", toModule, edgeCallBody, service, []string{"edge/caller"}, 401, 0, true},
		{"service API unchanged", toModule + "?api-version=2021-04-12", edgeCallBody, service, nil, 200, 0, false},
		{"service API still needs api-version", toModule, edgeCallBody, service, nil, 400, 400001, false},
		{"service API reaches any device", "/twins/stranger/methods?api-version=2021-04-12", edgeCallBody, service, nil, 200, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, body := moduleCall(t, h, tt.path, tt.body, tt.auth, tt.callers...)
			if status != tt.status {
				t.Fatalf("answer %d %s, want %d", status, body, tt.status)
			}
			if status == 200 {
				var res struct {
					Status  int
					Payload json.RawMessage
				}
				if err := json.Unmarshal(body, &res); err != nil || res.Status != 200 || string(res.Payload) != `{"n":1}` {
					t.Errorf("result %s", body)
				}
				return
			}
			code, edgeMessage := errorForm(t, body)
			if code != tt.code || (edgeMessage != "") != tt.edgeForm {
				t.Errorf("error body %s: code %d, edge form %v; want code %d, edge form %v", body, code, edgeMessage != "", tt.code, tt.edgeForm)
			}
		})
	}
}

// TestEdgeCallOutsideWaitsConnectTimeout checks that a target the edge hub
// does not reach fails only after the connect timeout, as a client that
// never connects to the edge hub does: being online on the hub is not
// being connected to the edge hub.
func TestEdgeCallOutsideWaitsConnectTimeout(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"edge/caller", "stranger"}})
	cs, err := h.ConnectionString("edge/caller")
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+h.HostName()+":"+strconv.Itoa(h.HTTPSPort())+"/twins/stranger/methods",
		strings.NewReader(`{"methodName":"echo","connectTimeoutInSeconds":60}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", deviceToken(t, cs, time.Now().Add(time.Hour)))
	req.Header.Set("x-ms-edge-moduleId", "edge/caller")
	done := make(chan int, 1)
	go func() { // joined below
		resp, err := h.ServiceClient().client.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	connectDevice(t, h, "stranger", deviceOptions{})
	// A full call through the service API: had the edge call been routed
	// to the device when it subscribed, it would have ended by now.
	if _, err := h.ServiceClient().Invoke(t.Context(), "stranger", "", MethodCall{MethodName: "echo", ResponseTimeoutInSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	select {
	case status := <-done:
		t.Fatalf("the edge call ended with %d before its connect timeout", status)
	default:
	}
	h.Close() // ends the wait
	if status := <-done; status != http.StatusServiceUnavailable && status != 0 {
		t.Errorf("the edge call ended with %d at the hub's close, want 503 or a closed connection", status)
	}
}

func FuzzParseEdgeCaller(f *testing.F) {
	for _, s := range []string{"edge/mod", "edge", "edge/", "/mod", "a/b/c", "", "é/m", "d/m%2F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, m, ok := parseEdgeCaller(v)
		if !ok {
			if d != "" || m != "" {
				t.Fatalf("refused %q but returned %q, %q", v, d, m)
			}
			return
		}
		if d == "" || m == "" || d+"/"+m != v || strings.Contains(m, "/") {
			t.Fatalf("parseEdgeCaller(%q) = %q, %q", v, d, m)
		}
	})
}

func FuzzWorkloadSign(f *testing.F) {
	for _, s := range []string{`{"keyId":"primary","algo":"HMACSHA256","data":"aGk="}`, `{"keyId":"secondary"}`, `{`, ``, `{"data":"***"}`} {
		f.Add(s, "2019-01-30")
	}
	h, err := Start(context.Background(), Options{Devices: []string{"d/m"}})
	if err != nil {
		f.Fatal(err)
	}
	defer h.Close()
	id, _ := h.reg.lookup("d/m")
	path := "/modules/m/genid/" + generationID(id) + "/sign?api-version="
	handler := h.workloadHandler()
	f.Fuzz(func(t *testing.T, body, version string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, path+url.QueryEscape(version), strings.NewReader(body))
		handler.ServeHTTP(rec, req)
		var answer map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("answer %d %q is not JSON", rec.Code, rec.Body.String())
		}
		switch rec.Code {
		case http.StatusOK:
			if answer["digest"] == "" {
				t.Fatalf("200 without a digest: %v", answer)
			}
		case http.StatusBadRequest:
			if answer["message"] == "" {
				t.Fatalf("400 without a message: %v", answer)
			}
		default:
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
	})
}

// TestSetParent checks the leaf-device relation: its refusals, and that a
// hub with a directory keeps it across restarts.
func TestSetParent(t *testing.T) {
	dir := t.TempDir()
	h, err := Start(t.Context(), Options{Dir: dir, Devices: []string{"edge", "leaf"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ leaf, parent string }{{"ghost", "edge"}, {"leaf", "ghost"}, {"leaf", "leaf"}} {
		if err := h.SetParent(tt.leaf, tt.parent); err == nil {
			t.Errorf("SetParent(%q, %q) succeeded", tt.leaf, tt.parent)
		}
	}
	if err := h.SetParent("leaf", "edge"); err != nil {
		t.Fatal(err)
	}
	h.Close()
	h, err = Start(t.Context(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := h.reg.parent("leaf"); got != "edge" {
		t.Errorf("after a restart, the parent of leaf is %q, want edge", got)
	}
}
