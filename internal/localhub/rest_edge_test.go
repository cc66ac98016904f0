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

// moduleCall posts an invocation to path with auth and the given
// x-ms-edge-moduleId values, and returns the HTTP status, the hub's error
// code (0 for 200) and the body.
func moduleCall(t *testing.T, h *Hub, path, auth string, callers ...string) (int, int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+h.HostName()+":"+strconv.Itoa(h.HTTPSPort())+path,
		strings.NewReader(`{"methodName":"echo","payload":{"n":1},"responseTimeoutInSeconds":10}`))
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
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, 0, body
	}
	var outer struct{ Message string }
	var inner struct {
		ErrorCode int `json:"errorCode"`
	}
	if json.Unmarshal(body, &outer) != nil || json.Unmarshal([]byte(outer.Message), &inner) != nil {
		t.Fatalf("error body %s is not IoT Hub's", body)
	}
	return resp.StatusCode, inner.ErrorCode, body
}

func TestModuleScopedInvocation(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"edge", "edge/caller", "edge/target", "other/caller"}})
	connectDevice(t, h, "edge/target", deviceOptions{})
	connectDevice(t, h, "edge", deviceOptions{})
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
	for _, tt := range []struct {
		name    string
		path    string
		auth    string
		callers []string
		status  int
		code    int
	}{
		{"module to module", toModule + "?api-version=2021-04-12", caller, []string{"edge/caller"}, 200, 0},
		{"without api-version", toModule, caller, []string{"edge/caller"}, 200, 0},
		{"module to device", "/twins/edge/methods", caller, []string{"edge/caller"}, 200, 0},
		{"another device's module", toModule, otherCaller, []string{"other/caller"}, 200, 0},
		{"unsupported api-version", toModule + "?api-version=2016-11-14", caller, []string{"edge/caller"}, 400, 400001},
		{"no header", toModule + "?api-version=2021-04-12", caller, nil, 401, 401002},
		{"another module's id in the header", toModule, caller, []string{"edge/target"}, 401, 401002},
		{"the target's token", toModule, target, []string{"edge/caller"}, 401, 401002},
		{"header twice", toModule, caller, []string{"edge/caller", "edge/caller"}, 401, 401002},
		{"header names a device", toModule, token("edge"), []string{"edge"}, 401, 401002},
		{"header names nobody", toModule, caller, []string{"edge/nobody"}, 401, 401002},
		{"empty header", toModule, caller, []string{""}, 401, 401002},
		{"no token", toModule, "", []string{"edge/caller"}, 401, 401002},
		{"service token with the header", toModule, service, []string{"edge/caller"}, 401, 401002},
		{"service API unchanged", toModule + "?api-version=2021-04-12", service, nil, 200, 0},
		{"service API still needs api-version", toModule, service, nil, 400, 400001},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, code, body := moduleCall(t, h, tt.path, tt.auth, tt.callers...)
			if status != tt.status || code != tt.code {
				t.Fatalf("answer %d %d %s, want %d %d", status, code, body, tt.status, tt.code)
			}
			if status == 200 {
				var res struct {
					Status  int
					Payload json.RawMessage
				}
				if err := json.Unmarshal(body, &res); err != nil || res.Status != 200 || string(res.Payload) != `{"n":1}` {
					t.Errorf("result %s", body)
				}
			}
		})
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
