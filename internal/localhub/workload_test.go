package localhub

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directmethods/iotdevice/sas"
)

// workloadCaller calls the hub's workload API as the IoT Edge SDKs do
// (HTTP over its unix socket, "?api-version=…"), and returns the status and
// body of the answer.
type workloadCaller struct {
	t       *testing.T
	http    *http.Client
	version string
}

func newWorkloadCaller(t *testing.T, uri, version string) *workloadCaller {
	t.Helper()
	socket, ok := strings.CutPrefix(uri, "unix://")
	if !ok {
		t.Fatalf("workload URI %q is not unix://", uri)
	}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &workloadCaller{t: t, http: &http.Client{Transport: tr}, version: version}
}

func (c *workloadCaller) call(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, "http://workload"+path+"?api-version="+c.version, r)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, got
}

// sign asks for the HMAC of data under moduleID's key; it returns the
// status and the decoded digest (nil unless 200).
func (c *workloadCaller) sign(moduleID, generationID string, data []byte) (int, []byte) {
	c.t.Helper()
	status, body := c.call(http.MethodPost, "/modules/"+moduleID+"/genid/"+generationID+"/sign",
		map[string]string{"keyId": "primary", "algo": "HMACSHA256", "data": base64.StdEncoding.EncodeToString(data)})
	if status != http.StatusOK {
		return status, nil
	}
	var answer struct{ Digest []byte }
	if err := json.Unmarshal(body, &answer); err != nil {
		c.t.Fatalf("sign answer %q: %v", body, err)
	}
	return status, answer.Digest
}

// trustBundle asks for the CA certificates; it returns the status and the
// PEM (empty unless 200).
func (c *workloadCaller) trustBundle() (int, string) {
	c.t.Helper()
	status, body := c.call(http.MethodGet, "/trust-bundle", nil)
	var answer struct{ Certificate string }
	if status == http.StatusOK {
		if err := json.Unmarshal(body, &answer); err != nil {
			c.t.Fatalf("trust-bundle answer %q: %v", body, err)
		}
	}
	return status, answer.Certificate
}

// shortDir returns a temporary directory with a short path: unix socket
// paths are limited to about 100 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startEdgeHub starts a hub whose workload API listens in a short
// temporary directory.
func startEdgeHub(t *testing.T, devices ...string) *Hub {
	t.Helper()
	return startHub(t, Options{Devices: devices, WorkloadSocket: filepath.Join(shortDir(t), "workload.sock")})
}

func moduleKey(t *testing.T, h *Hub, identity string) []byte {
	t.Helper()
	cs, err := h.ConnectionString(identity)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := sas.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	key, err := sas.DecodeKey(parsed.SharedAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestWorkloadSignsWithEachModulesKey(t *testing.T) {
	h := startEdgeHub(t, "edge-1/mod", "edge-2/mod", "edge-1")
	for _, identity := range []string{"edge-1/mod", "edge-2/mod"} {
		env, err := h.EdgeEnvironment(identity)
		if err != nil {
			t.Fatal(err)
		}
		for _, version := range []string{"2018-06-28", "2019-01-30", "2020-07-07"} {
			c := newWorkloadCaller(t, env["IOTEDGE_WORKLOADURI"], version)
			data := []byte("localhost%2Fdevices%2F" + identity + "\n1700000000")
			status, digest := c.sign(env["IOTEDGE_MODULEID"], env["IOTEDGE_MODULEGENERATIONID"], data)
			if status != http.StatusOK {
				t.Fatalf("%s, %s: sign answered %d", identity, version, status)
			}
			m := hmac.New(sha256.New, moduleKey(t, h, identity))
			m.Write(data)
			if !hmac.Equal(digest, m.Sum(nil)) {
				t.Errorf("%s, %s: digest is not the HMAC under the module's key", identity, version)
			}
			if status, bundle := c.trustBundle(); status != http.StatusOK || bundle != string(h.CACertPEM()) {
				t.Errorf("%s: trust bundle answered %d and is not the hub's CA", version, status)
			}
		}
	}
}

func TestWorkloadRefusals(t *testing.T) {
	h := startEdgeHub(t, "edge-1/mod", "edge-2/mod")
	env, err := h.EdgeEnvironment("edge-1/mod")
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.EdgeEnvironment("edge-2/mod")
	if err != nil {
		t.Fatal(err)
	}
	if env["IOTEDGE_MODULEGENERATIONID"] == other["IOTEDGE_MODULEGENERATIONID"] {
		t.Fatal("two modules share a generation id")
	}
	uri := env["IOTEDGE_WORKLOADURI"]
	for _, tt := range []struct {
		name    string
		version string
		module  string
		genID   string
		sign    bool // else the trust bundle
		status  int
	}{
		{"unknown generation", "2019-01-30", "mod", "0123", true, 404},
		{"unknown module", "2019-01-30", "nobody", env["IOTEDGE_MODULEGENERATIONID"], true, 404},
		{"unsupported version", "2021-12-07", "mod", env["IOTEDGE_MODULEGENERATIONID"], true, 400},
		{"older unsupported version", "2018-12-30", "", "", false, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newWorkloadCaller(t, uri, tt.version)
			var status int
			var body []byte
			if tt.sign {
				status, body = c.call(http.MethodPost, "/modules/"+tt.module+"/genid/"+tt.genID+"/sign",
					map[string]string{"keyId": "primary", "algo": "HMACSHA256", "data": "eA=="})
			} else {
				status, body = c.call(http.MethodGet, "/trust-bundle", nil)
			}
			var answer struct{ Message string }
			if status != tt.status || json.Unmarshal(body, &answer) != nil || answer.Message == "" {
				t.Errorf("answered %d %q, want %d with a message", status, body, tt.status)
			}
		})
	}
	if status, _ := newWorkloadCaller(t, uri, "2019-01-30").sign("mod", env["IOTEDGE_MODULEGENERATIONID"], []byte("x")); status != http.StatusOK {
		t.Errorf("a good request after the refusals answered %d", status)
	}
}

func TestWorkloadSocketPlacement(t *testing.T) {
	t.Run("none without Dir", func(t *testing.T) {
		h := startHub(t, Options{Devices: []string{"d/m"}})
		if uri := h.WorkloadURI(); uri != "" {
			t.Errorf("WorkloadURI = %q, want none", uri)
		}
		if _, err := h.EdgeEnvironment("d/m"); !errors.Is(err, ErrNoWorkload) {
			t.Errorf("EdgeEnvironment error %v, want ErrNoWorkload", err)
		}
	})
	t.Run("in Dir", func(t *testing.T) {
		dir := shortDir(t)
		h := startHub(t, Options{Dir: dir})
		if want := "unix://" + filepath.Join(dir, WorkloadSocketName); h.WorkloadURI() != want {
			t.Errorf("WorkloadURI = %q, want %q", h.WorkloadURI(), want)
		}
		fi, err := os.Stat(filepath.Join(dir, WorkloadSocketName))
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket: %v, %v", fi, err)
		}
		h.Close()
		if _, err := os.Stat(filepath.Join(dir, WorkloadSocketName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left after Close: %v", err)
		}
	})
	t.Run("stale socket replaced", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "w.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		h := startHub(t, Options{WorkloadSocket: path})
		if status, _ := newWorkloadCaller(t, h.WorkloadURI(), "2019-01-30").trustBundle(); status != http.StatusOK {
			t.Errorf("trust bundle answered %d", status)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "file")
		if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Start(t.Context(), Options{WorkloadSocket: path})
		var le *ListenError
		if !errors.As(err, &le) || le.Listener != "workload" {
			t.Fatalf("Start error %v, want a workload ListenError", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep me" {
			t.Error("the file was changed")
		}
	})
}

func TestEdgeEnvironmentErrors(t *testing.T) {
	h := startEdgeHub(t, "dev/mod")
	if _, err := h.EdgeEnvironment("dev"); err == nil {
		t.Error("EdgeEnvironment of a device succeeded")
	}
	if _, err := h.EdgeEnvironment("dev/none"); !errors.Is(err, ErrUnknownIdentity) {
		t.Errorf("EdgeEnvironment of an unknown module: %v, want ErrUnknownIdentity", err)
	}
}
