package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/edge"
	"github.com/google/go-cmp/cmp"
)

func TestParseTarget(t *testing.T) {
	for _, tt := range []struct {
		in             string
		device, module string
		ok             bool
	}{
		{"edge-1", "edge-1", "", true},
		{"edge-1/mod-a", "edge-1", "mod-a", true},
		{"", "", "", false},
		{"/mod", "", "", false},
		{"edge-1/", "", "", false},
		{"a/b/c", "", "", false},
	} {
		d, m, err := parseTarget(tt.in)
		if d != tt.device || m != tt.module || (err == nil) != tt.ok {
			t.Errorf("parseTarget(%q) = %q, %q, %v", tt.in, d, m, err)
		}
	}
}

func TestMethods(t *testing.T) {
	mux := newModule(func() float64 { return 21.5 }).methods()
	for _, tt := range []struct {
		name, payload, want string
	}{
		{"echo", `{"hi":[1,2]}`, `{"hi":[1,2]}`},
		{"getTemperature", "", `{"celsius":21.5}`},
	} {
		resp, err := mux.ServeMethod(t.Context(), &device.MethodRequest{Name: tt.name, Payload: json.RawMessage(tt.payload)})
		if err != nil || resp.Status != 200 || string(resp.Payload) != tt.want {
			t.Errorf("%s: %+v, %v; want 200 %s", tt.name, resp, err, tt.want)
		}
	}
	if c := newModule(nil).celsius(); c < 19 || c > 23 {
		t.Errorf("simulated temperature %v, want 19 to 23", c)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	for _, tt := range []struct {
		name string
		args []string
		want string // in the error
	}{
		{"not under IoT Edge", nil, "IOTEDGE_WORKLOADURI"},
		{"call not under IoT Edge", []string{"-call", "edge-1/mod-a"}, "IOTEDGE_WORKLOADURI"},
		{"bad target", []string{"-call", "a/b/c"}, "want device or device/module"},
		{"bad payload", []string{"-call", "edge-1", "-payload", "{"}, "not JSON"},
		{"unknown transport", []string{"-transport", "pigeon"}, "unknown transport"},
		{"extra arguments", []string{"x"}, "unexpected arguments"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr, none)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run error %v, want one saying %q", err, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

// fakeEdge is an IoT Edge runtime for module edge-1/mod-b (a workload API
// on a unix socket) and its edge hub on 127.0.0.1 (TLS, trusted through
// the trust bundle), which answers every call with status and body.
type fakeEdge struct {
	env  map[string]string
	seen chan *http.Request
}

func startFakeEdge(t *testing.T, status int, body string) *fakeEdge {
	t.Helper()
	f := &fakeEdge{seen: make(chan *http.Request, 1)}
	hub := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		f.seen <- r
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(hub.Close)
	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hub.Certificate().Raw})
	key := []byte("mod-b's key")
	wl := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/trust-bundle":
			_ = json.NewEncoder(w).Encode(map[string]string{"certificate": string(bundle)})
		case r.URL.Path == "/modules/mod-b/genid/g1/sign":
			var req struct{ Data string }
			_ = json.NewDecoder(r.Body).Decode(&req)
			data, _ := base64.StdEncoding.DecodeString(req.Data)
			m := hmac.New(sha256.New, key)
			m.Write(data)
			_ = json.NewEncoder(w).Encode(map[string]string{"digest": base64.StdEncoding.EncodeToString(m.Sum(nil))})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	dir, err := os.MkdirTemp("", "edgemod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "workload.sock"))
	if err != nil {
		t.Fatal(err)
	}
	wl.Listener = l
	wl.Start()
	t.Cleanup(wl.Close)
	f.env = map[string]string{
		"IOTEDGE_WORKLOADURI": "unix://" + filepath.Join(dir, "workload.sock"), "IOTEDGE_DEVICEID": "edge-1",
		"IOTEDGE_MODULEID": "mod-b", "IOTEDGE_MODULEGENERATIONID": "g1", "IOTEDGE_IOTHUBHOSTNAME": "hub.example",
		"IOTEDGE_GATEWAYHOSTNAME": "127.0.0.1", "IOTEDGE_APIVERSION": "2019-01-30", "IOTEDGE_AUTHSCHEME": "sasToken",
	}
	_, port, _ := net.SplitHostPort(hub.Listener.Addr().String())
	f.env["port"] = port
	return f
}

func (f *fakeEdge) lookup(name string) (string, bool) { v, ok := f.env[name]; return v, ok }

func TestCallPrintsTheAnswer(t *testing.T) {
	f := startFakeEdge(t, 200, `{"status":200,"payload":{"hi":1}}`)
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-call", "edge-1/mod-a", "-method", "echo", "-payload", `{"hi":1}`, "-port", f.env["port"]}, &stdout, &stderr, f.lookup)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if diff := cmp.Diff("{\"status\":200,\"payload\":{\"hi\":1}}\n", stdout.String()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	r := <-f.seen
	got := []string{r.Method, r.URL.Path, r.Header.Get("x-ms-edge-moduleId"), strings.Split(r.Header.Get("Authorization"), " ")[0]}
	if diff := cmp.Diff([]string{"POST", "/twins/edge-1/modules/mod-a/methods", "edge-1/mod-b", "SharedAccessSignature"}, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

func TestCallFailsWithTheHubsError(t *testing.T) {
	f := startFakeEdge(t, 404, `{"Message":"{\"errorCode\":404103,\"message\":\"Timed out waiting for device to connect.\"}","ExceptionMessage":""}`)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-call", "edge-1", "-port", f.env["port"]}, &stdout, &stderr, f.lookup)
	var ie *edge.InvokeError
	if !errors.As(err, &ie) || ie.Code != 404103 {
		t.Fatalf("run error %v, want an InvokeError 404103", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
	if !strings.Contains(err.Error(), "404103") {
		t.Errorf("error %q does not name the code", err)
	}
}
