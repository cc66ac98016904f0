package edge

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/edge/internal/workload"
	"github.com/directmethods/iotdevice/device/internal/clientcfg"
	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

// edgeEnv returns a complete IoT Edge environment with workloadURI.
func edgeEnv(workloadURI string) map[string]string {
	return map[string]string{
		"IOTEDGE_WORKLOADURI":        workloadURI,
		"IOTEDGE_DEVICEID":           "edge-1",
		"IOTEDGE_MODULEID":           "mod-a",
		"IOTEDGE_MODULEGENERATIONID": "gen-1",
		"IOTEDGE_IOTHUBHOSTNAME":     "hub.example",
		"IOTEDGE_GATEWAYHOSTNAME":    "127.0.0.1",
		"IOTEDGE_APIVERSION":         "2019-01-30",
		"IOTEDGE_AUTHSCHEME":         "sasToken",
	}
}

func lookupIn(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

func TestReadEdgeEnvironment(t *testing.T) {
	full := edgeEnv("unix:///run/workload.sock")
	without := func(names ...string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			m[k] = v
		}
		for _, n := range names {
			delete(m, n)
		}
		return m
	}
	with := func(name, value string) map[string]string {
		m := without()
		m[name] = value
		return m
	}
	for _, tt := range []struct {
		name    string
		env     map[string]string
		want    *edgeEnvironment
		errText []string // substrings of the error; nil: no error
	}{
		{"complete", full, &edgeEnvironment{
			workloadURI: "unix:///run/workload.sock", deviceID: "edge-1", moduleID: "mod-a", generationID: "gen-1",
			hubHostName: "hub.example", gatewayHostName: "127.0.0.1", apiVersion: "2019-01-30",
		}, nil},
		{"no gateway, no api version", without("IOTEDGE_GATEWAYHOSTNAME", "IOTEDGE_APIVERSION"), &edgeEnvironment{
			workloadURI: "unix:///run/workload.sock", deviceID: "edge-1", moduleID: "mod-a", generationID: "gen-1",
			hubHostName: "hub.example", apiVersion: "2018-06-28",
		}, nil},
		{"nothing set", map[string]string{}, nil, []string{"IOTEDGE_WORKLOADURI", "IOTEDGE_AUTHSCHEME", "EdgeHubConnectionString"}},
		{"missing two", without("IOTEDGE_MODULEID", "IOTEDGE_MODULEGENERATIONID"), nil, []string{"IOTEDGE_MODULEID, IOTEDGE_MODULEGENERATIONID not set"}},
		{"blank is missing", with("IOTEDGE_DEVICEID", "  "), nil, []string{"IOTEDGE_DEVICEID not set"}},
		{"unknown auth scheme", with("IOTEDGE_AUTHSCHEME", "x509"), nil, []string{`IOTEDGE_AUTHSCHEME is "x509"`, "sasToken"}},
		{"auth scheme is case-sensitive", with("IOTEDGE_AUTHSCHEME", "SASTOKEN"), nil, []string{"only sasToken"}},
		{"simulator form", map[string]string{"EdgeHubConnectionString": "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=a2V5;GatewayHostName=g", "EdgeModuleCACertificateFile": "/ca.pem", "IOTEDGE_MODULEID": "ignored"},
			&edgeEnvironment{connectionString: "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=a2V5;GatewayHostName=g", caFile: "/ca.pem"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readEdgeEnvironment(lookupIn(tt.env))
			if tt.errText == nil {
				if err != nil {
					t.Fatal(err)
				}
				if *got != *tt.want {
					t.Errorf("got %+v, want %+v", *got, *tt.want)
				}
				return
			}
			if !errors.Is(err, device.ErrInvalidConfig) {
				t.Fatalf("error %v, want device.ErrInvalidConfig", err)
			}
			for _, s := range tt.errText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// fakeWorkload is a workload API for module mod-a at generation gen-1
// whose trust bundle is the test CA; status, when set, answers every sign
// call with that HTTP status instead.
type fakeWorkload struct {
	key    []byte
	caPEM  []byte
	status atomic.Int32
	signs  atomic.Int32
}

func (f *fakeWorkload) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/trust-bundle":
		_ = json.NewEncoder(w).Encode(map[string]string{"certificate": string(f.caPEM)})
	case "/modules/mod-a/genid/gen-1/sign":
		f.signs.Add(1)
		if s := f.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			_, _ = w.Write([]byte(`{"message":"refused"}`))
			return
		}
		var req struct{ Data string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		data, _ := base64.StdEncoding.DecodeString(req.Data)
		m := hmac.New(sha256.New, f.key)
		m.Write(data)
		_ = json.NewEncoder(w).Encode(map[string]string{"digest": base64.StdEncoding.EncodeToString(m.Sum(nil))})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// startFakeWorkload serves a fakeWorkload on a unix socket and returns it
// with its URI.
func startFakeWorkload(t *testing.T) (*fakeWorkload, string) {
	t.Helper()
	f := &fakeWorkload{key: []byte("the module's key"), caPEM: testCAPEM(t)}
	dir, err := os.MkdirTemp("", "wl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "w.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f, "unix://" + filepath.Join(dir, "w.sock")
}

// testCAPEM returns a PEM certificate (a self-signed one of httptest's).
func testCAPEM(t *testing.T) []byte {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func TestWorkloadCredentialSignsModuleTokens(t *testing.T) {
	f, uri := startFakeWorkload(t)
	c, err := NewModuleClientFromLookup(t.Context(), lookupIn(edgeEnv(uri)), &device.ClientOptions{TokenLifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if clientcfg.Of(c).HostName != "hub.example" || clientcfg.Of(c).GatewayHostName != "127.0.0.1" || clientcfg.Of(c).DeviceID != "edge-1" || clientcfg.Of(c).ModuleID != "mod-a" {
		t.Errorf("config %+v", clientcfg.Of(c))
	}
	before := time.Now()
	tok, expiry, err := clientcfg.Of(c).Credential.Token(t.Context(), resourceOf(c))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := sastoken.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Verify(f.key, time.Now()); err != nil {
		t.Errorf("token does not verify with the module key: %v", err)
	}
	if !parsed.Covers("hub.example/devices/edge-1/modules/mod-a") || !parsed.Expiry.Equal(expiry) {
		t.Errorf("token for %q until %v; expiry returned %v", parsed.Resource, parsed.Expiry, expiry)
	}
	if life := expiry.Sub(before); life < 10*time.Minute || life > 10*time.Minute+2*time.Second {
		t.Errorf("token lives %v, want TokenLifetime", life)
	}
	// The trust bundle is among the roots.
	if clientcfg.Of(c).TLSConfig == nil || clientcfg.Of(c).TLSConfig.RootCAs == nil {
		t.Fatal("no RootCAs")
	}
	block, _ := pem.Decode(f.caPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: clientcfg.Of(c).TLSConfig.RootCAs, DNSName: "example.com"}); err != nil {
		t.Errorf("the trust bundle's certificate is not trusted: %v", err)
	}
}

// TestWorkloadSignErrorsClassified: a signature the runtime refuses (4xx)
// wraps transport.ErrUnauthorized, which stops the client with
// CodeUnauthorized; a failing runtime (5xx) does not, so it is retried.
func TestWorkloadSignErrorsClassified(t *testing.T) {
	f, uri := startFakeWorkload(t)
	c, err := NewModuleClientFromLookup(t.Context(), lookupIn(edgeEnv(uri)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		status       int
		unauthorized bool
	}{{http.StatusNotFound, true}, {http.StatusBadRequest, true}, {http.StatusInternalServerError, false}} {
		f.status.Store(int32(tt.status))
		_, _, err := clientcfg.Of(c).Credential.Token(t.Context(), resourceOf(c))
		var we *workload.Error
		if !errors.As(err, &we) || we.Call != workload.CallSign || we.StatusCode != tt.status {
			t.Errorf("status %d: error %v, want a sign *workload.Error with that status", tt.status, err)
		}
		if got := errors.Is(err, transport.ErrUnauthorized); got != tt.unauthorized {
			t.Errorf("status %d: errors.Is(err, transport.ErrUnauthorized) = %v, want %v", tt.status, got, tt.unauthorized)
		}
	}
}

// TestWorkloadUnreachableIsRetriable: a runtime that cannot be reached is
// a network failure, which the client retries.
func TestWorkloadUnreachableIsRetriable(t *testing.T) {
	dir, err := os.MkdirTemp("", "wl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	wl, err := workload.NewClient("unix://"+filepath.Join(dir, "gone.sock"), "2019-01-30")
	if err != nil {
		t.Fatal(err)
	}
	cred := workloadCredential(wl, "mod-a", "gen-1", time.Hour)
	_, _, err = cred.Token(t.Context(), "hub/devices/d/modules/m")
	var we *workload.Error
	if !errors.As(err, &we) || we.StatusCode != 0 {
		t.Fatalf("error %v, want a *workload.Error without status", err)
	}
	if errors.Is(err, transport.ErrUnauthorized) {
		t.Errorf("error %v wraps transport.ErrUnauthorized, want it retried", err)
	}
}

func TestNewModuleClientFromLookupErrors(t *testing.T) {
	_, uri := startFakeWorkload(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, testCAPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	edge := func(name, value string) map[string]string {
		m := edgeEnv(uri)
		m[name] = value
		return m
	}
	gone := "unix://" + filepath.Join(dir, "gone.sock")
	for _, tt := range []struct {
		name      string
		env       map[string]string
		opts      *device.ClientOptions
		invalid   bool   // wraps device.ErrInvalidConfig
		wlCall    string // wraps a *workload.Error of this call
		errorText string
	}{
		{"bad URI", edge("IOTEDGE_WORKLOADURI", "tcp://host:1"), nil, true, "", "IOTEDGE_WORKLOADURI"},
		{"relative unix URI", edge("IOTEDGE_WORKLOADURI", "unix://workload.sock"), nil, true, "", "IOTEDGE_WORKLOADURI"},
		{"no runtime", edge("IOTEDGE_WORKLOADURI", gone), nil, false, workload.CallTrustBundle, "trust bundle"},
		{"bad device id", edge("IOTEDGE_DEVICEID", "a/b"), nil, true, "", "device id"},
		{"bad gateway", edge("IOTEDGE_GATEWAYHOSTNAME", "gate way"), nil, true, "", "gateway"},
		{"negative lifetime", edgeEnv(uri), &device.ClientOptions{TokenLifetime: -time.Second}, true, "", "TokenLifetime"},
		{"simulator without module", map[string]string{"EdgeHubConnectionString": "HostName=h;DeviceId=d;SharedAccessKey=a2V5"}, nil, true, "", "ModuleId"},
		{"simulator CA missing", map[string]string{"EdgeHubConnectionString": "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=a2V5", "EdgeModuleCACertificateFile": filepath.Join(dir, "none.pem")}, nil, true, "", "EdgeModuleCACertificateFile"},
		{"simulator CA not PEM", map[string]string{"EdgeHubConnectionString": "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=a2V5", "EdgeModuleCACertificateFile": notPEM}, nil, true, "", "EdgeModuleCACertificateFile"},
		{"simulator bad string", map[string]string{"EdgeHubConnectionString": "HostName=h"}, nil, true, "", "EdgeHubConnectionString"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewModuleClientFromLookup(t.Context(), lookupIn(tt.env), tt.opts)
			if err == nil {
				t.Fatalf("built %v, want an error", c)
			}
			if errors.Is(err, device.ErrInvalidConfig) != tt.invalid {
				t.Errorf("error %v: wraps device.ErrInvalidConfig = %v, want %v", err, !tt.invalid, tt.invalid)
			}
			if tt.wlCall != "" {
				var we *workload.Error
				if !errors.As(err, &we) || we.Call != tt.wlCall {
					t.Errorf("error %v, want a %s *workload.Error", err, tt.wlCall)
				}
			}
			if !strings.Contains(err.Error(), tt.errorText) {
				t.Errorf("error %q does not say %q", err, tt.errorText)
			}
		})
	}
	t.Run("simulator", func(t *testing.T) {
		c, err := NewModuleClientFromLookup(t.Context(), lookupIn(map[string]string{
			"EdgeHubConnectionString":     "HostName=hub.example;DeviceId=edge-1;ModuleId=mod-a;SharedAccessKey=a2V5;GatewayHostName=gw.example",
			"EdgeModuleCACertificateFile": caFile,
		}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if clientcfg.Of(c).GatewayHostName != "gw.example" || clientcfg.Of(c).ModuleID != "mod-a" || clientcfg.Of(c).TLSConfig == nil || clientcfg.Of(c).TLSConfig.RootCAs == nil {
			t.Errorf("config %+v", clientcfg.Of(c))
		}
		if _, ok := clientcfg.Of(c).Credential.(*sas.KeyCredential); !ok {
			t.Errorf("credential %T, want the connection string's key", clientcfg.Of(c).Credential)
		}
	})
}

func FuzzReadEdgeEnvironment(f *testing.F) {
	f.Add("unix:///run/w.sock", "edge-1", "mod-a", "g", "hub", "gw", "2019-01-30", "sasToken", "")
	f.Add("", "", "", "", "", "", "", "", "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=a2V5")
	f.Add("x", "d", "m", "g", "h", "", "", "x509", "")
	f.Fuzz(func(t *testing.T, uri, dev, mod, gen, hub, gw, ver, scheme, cs string) {
		env := map[string]string{
			"IOTEDGE_WORKLOADURI": uri, "IOTEDGE_DEVICEID": dev, "IOTEDGE_MODULEID": mod, "IOTEDGE_MODULEGENERATIONID": gen,
			"IOTEDGE_IOTHUBHOSTNAME": hub, "IOTEDGE_GATEWAYHOSTNAME": gw, "IOTEDGE_APIVERSION": ver, "IOTEDGE_AUTHSCHEME": scheme,
			"EdgeHubConnectionString": cs,
		}
		got, err := readEdgeEnvironment(lookupIn(env))
		if err != nil {
			if !errors.Is(err, device.ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap device.ErrInvalidConfig", err)
			}
			for _, secret := range []string{cs} {
				if len(secret) > 8 && strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q echoes the connection string", err)
				}
			}
			return
		}
		if got.connectionString != "" {
			return
		}
		if got.workloadURI == "" || got.deviceID == "" || got.moduleID == "" || got.generationID == "" || got.hubHostName == "" || got.apiVersion == "" || strings.TrimSpace(scheme) != "sasToken" {
			t.Fatalf("accepted an incomplete environment: %+v", *got)
		}
	})
}

// resourceOf is the token resource of c's identity.
func resourceOf(c *device.Client) string {
	cfg := clientcfg.Of(c)
	return cfg.Resource()
}
