package localhub

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWriteConnectionFiles(t *testing.T) {
	h := startHub(t, Options{Devices: []string{"dev", "dev/mod"}})
	dir := filepath.Join(t.TempDir(), "out")
	if err := h.WriteConnectionFiles(dir); err != nil {
		t.Fatalf("WriteConnectionFiles: %v", err)
	}
	want := map[string]string{"ca.pem": string(h.CACertPEM()), "service.txt": h.ServiceConnectionString() + "\n",
		"idscope.txt": h.IDScope() + "\n", "dps.txt": h.DPSConnectionString() + "\n"}
	for _, id := range []string{"dev", "dev/mod"} {
		cs, _ := h.ConnectionString(id)
		want[ConnectionFileName(id)] = cs + "\n"
	}
	got := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = string(b)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if _, ok := got["dev_mod.txt"]; !ok {
		t.Error("no dev_mod.txt for the module")
	}
}

func TestCurlCommand(t *testing.T) {
	tests := []struct {
		hostName    string
		wantResolve bool
	}{
		{"localhost", false},
		{"myhub.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.hostName, func(t *testing.T) {
			h := startHub(t, Options{HostName: tt.hostName, Devices: []string{"dev"}})
			cmd := h.CurlCommand("dev", "getReading", "/tmp/ca dir/ca.pem")
			if !strings.Contains(cmd, `--cacert '/tmp/ca dir/ca.pem'`) {
				t.Errorf("no quoted --cacert in %s", cmd)
			}
			if got := strings.Contains(cmd, "--resolve '"+tt.hostName+":"); got != tt.wantResolve {
				t.Errorf("--resolve present = %v, want %v in %s", got, tt.wantResolve, cmd)
			}
			m := regexp.MustCompile(`'Authorization: ([^']+)'`).FindStringSubmatch(cmd)
			if m == nil {
				t.Fatalf("no Authorization header in %s", cmd)
			}
			if err := h.reg.authorizeService(m[1], tt.hostName+"/devices/dev", time.Now()); err != nil {
				t.Errorf("the curl token does not authorize: %v", err)
			}
			m = regexp.MustCompile(` -d '([^']+)'`).FindStringSubmatch(cmd)
			if m == nil {
				t.Fatalf("no body in %s", cmd)
			}
			if req, rerr := decodeInvokeBody([]byte(m[1])); rerr != nil || req.methodName != "getReading" {
				t.Errorf("curl body %s: %v, %v", m[1], req, rerr)
			}
		})
	}
}

// TestNonResolvingHostName runs a hub whose host name does not resolve:
// devices and the service client reach it by address and verify the
// certificate for the name.
func TestNonResolvingHostName(t *testing.T) {
	h := startHub(t, Options{HostName: "myhub.azure-devices.invalid", Devices: []string{"dev"}})
	for _, ws := range []bool{false, true} {
		d := connectDevice(t, h, "dev", deviceOptions{webSocket: ws})
		got, err := invoke(t, h, "dev", MethodCall{MethodName: "m", Payload: json.RawMessage(`true`)})
		if err != nil {
			t.Fatalf("Invoke (websocket=%v): %v", ws, err)
		}
		if diff := cmp.Diff(&MethodResult{200, json.RawMessage(`true`)}, got); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		d.close()
	}
}

func TestNewServiceClientErrors(t *testing.T) {
	const good = "HostName=hub;SharedAccessKeyName=iothubowner;SharedAccessKey=AAAA"
	tests := []struct{ name, baseURL, cs string }{
		{"http URL", "http://127.0.0.1:1", good},
		{"no host", "https://", good},
		{"missing key name", "https://127.0.0.1:1", "HostName=hub;SharedAccessKey=AAAA"},
		{"bad key", "https://127.0.0.1:1", "HostName=hub;SharedAccessKeyName=p;SharedAccessKey=!!"},
		{"bad host", "https://127.0.0.1:1", "HostName=a b;SharedAccessKeyName=p;SharedAccessKey=AAAA"},
		{"no '='", "https://127.0.0.1:1", "HostName"},
	}
	for _, tt := range tests {
		if _, err := NewServiceClient(tt.baseURL, tt.cs, nil); err == nil {
			t.Errorf("%s: NewServiceClient succeeded", tt.name)
		}
	}
	if _, err := NewServiceClient("https://127.0.0.1:1", good, nil); err != nil {
		t.Errorf("NewServiceClient: %v", err)
	}
	e := &ServiceError{HTTPStatus: 404, ErrorCode: 404103, Name: "DeviceNotOnline", Message: "m"}
	if got, want := e.Error(), "localhub: invoke: HTTP 404: 404103 DeviceNotOnline: m"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
