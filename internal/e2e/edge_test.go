package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/edge"
	"github.com/directmethods/iotdevice/internal/localhub"
	"github.com/directmethods/iotdevice/sas"
)

// startEdgeHub starts a hub that also plays the IoT Edge runtime, its
// workload socket in a short temporary directory (socket paths are
// limited to about 100 bytes).
func startEdgeHub(t *testing.T, identities ...string) *localhub.Hub {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hub, err := localhub.Start(t.Context(), localhub.Options{Devices: identities, Logger: testLogger(t),
		WorkloadSocket: filepath.Join(dir, "workload.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub
}

// edgeEnv returns the IoT Edge environment of a module of hub.
func edgeEnv(t *testing.T, hub *localhub.Hub, identity string) map[string]string {
	t.Helper()
	env, err := hub.EdgeEnvironment(identity)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := env[name]; return v, ok }
}

// edgeOptions are deviceOptions without the hub's CA: a module from the
// environment must trust the hub through the workload API's trust bundle.
func edgeOptions(t *testing.T, hub *localhub.Hub, transport string) *device.ClientOptions {
	opts := deviceOptions(t, hub, transport)
	opts.TLSConfig = nil
	return opts
}

// runEdgeModule builds a module client from env and runs h until the end
// of the test.
func runEdgeModule(t *testing.T, env map[string]string, opts *device.ClientOptions, h device.MethodHandler) *device.Client {
	t.Helper()
	client, err := edge.NewModuleClientFromLookup(t.Context(), lookupIn(env), opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Run(context.Background(), h) }() // joined in cleanup
	t.Cleanup(func() {
		client.Close()
		if err := <-done; !errors.Is(err, device.ErrClientClosed) {
			t.Errorf("module: Run = %v, want ErrClientClosed", err)
		}
	})
	return client
}

// TestEdgeModuleFromEnvironment connects a module from the environment the
// hub gives it, and calls it from the service and from another module; it
// also calls a leaf device of its edge device, and fails to reach what the
// edge hub does not: its own edge device's identity and an offline module.
func TestEdgeModuleFromEnvironment(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startEdgeHub(t, "edge-1", "edge-1/mod-a", "edge-1/mod-b", "edge-1/idle", "leaf-1")
			if err := hub.SetParent("leaf-1", "edge-1"); err != nil {
				t.Fatal(err)
			}
			runEdgeModule(t, edgeEnv(t, hub, "edge-1/mod-a"), edgeOptions(t, hub, tr), echoMux())
			runDevice(t, hub, "leaf-1", tr, echoMux(), nil)
			runDevice(t, hub, "edge-1", tr, echoMux(), nil)
			waitSubscribed(t, hub, "edge-1/mod-a")
			waitSubscribed(t, hub, "leaf-1")
			waitSubscribed(t, hub, "edge-1")

			res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 20*time.Second), "edge-1", "mod-a", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`{"from":"service"}`)})
			if err != nil || res.Status != 200 || compactJSON(res.Payload) != `{"from":"service"}` {
				t.Fatalf("service call = %+v, %v", res, err)
			}

			// mod-b calls without running: the invoker needs only its identity.
			modB, err := edge.NewModuleClientFromLookup(t.Context(), lookupIn(edgeEnv(t, hub, "edge-1/mod-b")), edgeOptions(t, hub, tr))
			if err != nil {
				t.Fatal(err)
			}
			inv, err := edge.NewMethodInvoker(modB, &edge.MethodInvokerOptions{Port: hub.HTTPSPort()})
			if err != nil {
				t.Fatal(err)
			}
			defer inv.Close()
			for _, target := range []struct{ device, module string }{{"edge-1", "mod-a"}, {"leaf-1", ""}} {
				res, err := inv.Invoke(ctxTimeout(t, 20*time.Second), target.device, target.module,
					edge.MethodCall{Name: "echo", Payload: json.RawMessage(`[1,"two"]`), ResponseTimeout: 10 * time.Second})
				if err != nil || res.Status != 200 || compactJSON(res.Payload) != `[1,"two"]` {
					t.Errorf("mod-b -> %s/%s: %+v, %v", target.device, target.module, res, err)
				}
			}
			// Targets the edge hub does not reach: an offline module, and
			// the edge device's own identity, which no client connects to
			// the edge hub as (here it is online, but on the hub itself).
			// The edge hub answers 404 with a message and no error code.
			for _, target := range []struct{ device, module string }{{"edge-1", "idle"}, {"edge-1", ""}} {
				_, err = inv.Invoke(ctxTimeout(t, 20*time.Second), target.device, target.module, edge.MethodCall{Name: "echo"})
				var ie *edge.InvokeError
				if !errors.As(err, &ie) || ie.HTTPStatus != 404 || ie.Code != 0 || !strings.Contains(ie.Message, "not found") {
					t.Errorf("call to %s/%s: %v, want an InvokeError with HTTP 404 and the edge hub's message", target.device, target.module, err)
				}
			}
			// A method the target does not serve: its status, not an error.
			res2, err := inv.Invoke(ctxTimeout(t, 20*time.Second), "edge-1", "mod-a", edge.MethodCall{Name: "nope"})
			if err != nil || res2.Status != 501 {
				t.Errorf("unknown method: %+v, %v; want status 501", res2, err)
			}
		})
	}
}

// TestEdgeModuleCallsNeedTheirHeader sends mod-b's own token to the
// invocation API without x-ms-edge-moduleId, and with mod-a's id in it:
// both are refused, while the right header is accepted.
func TestEdgeModuleCallsNeedTheirHeader(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startEdgeHub(t, "edge-1/mod-a", "edge-1/mod-b")
			runEdgeModule(t, edgeEnv(t, hub, "edge-1/mod-a"), edgeOptions(t, hub, tr), echoMux())
			waitSubscribed(t, hub, "edge-1/mod-a")
			key := identityKey(t, hub, "edge-1/mod-b")
			token := sas.Sign(key, sas.Resource(hub.HostName(), "edge-1", "mod-b"), "", time.Now().Add(time.Hour))
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: deviceOptions(t, hub, tr).TLSConfig}}
			defer client.CloseIdleConnections()
			for _, tt := range []struct {
				name   string
				header string
				status int
			}{{"no header", "", 401}, {"another module's id", "edge-1/mod-a", 401}, {"its own id", "edge-1/mod-b", 200}} {
				req, err := http.NewRequestWithContext(ctxTimeout(t, 20*time.Second), http.MethodPost,
					"https://"+net.JoinHostPort(hub.HostName(), strconv.Itoa(hub.HTTPSPort()))+"/twins/edge-1/modules/mod-a/methods?api-version=2021-04-12",
					strings.NewReader(`{"methodName":"echo","payload":1}`))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", token)
				req.Header.Set("Content-Type", "application/json")
				if tt.header != "" {
					req.Header.Set("x-ms-edge-moduleId", tt.header)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Errorf("%s: HTTP %d, want %d", tt.name, resp.StatusCode, tt.status)
				}
			}
		})
	}
}

// signCountingProxy serves the hub's workload API on loopback HTTP (an
// http:// workload URI, as some runtimes give) and counts sign calls.
type signCountingProxy struct {
	signs  atomic.Int32
	signed chan struct{} // receives after each sign call, without blocking
	url    string
}

func startSignCountingProxy(t *testing.T, hub *localhub.Hub) *signCountingProxy {
	t.Helper()
	address, ok := strings.CutPrefix(hub.WorkloadURI(), "unix://")
	if !ok {
		t.Fatalf("workload URI %q is not unix://", hub.WorkloadURI())
	}
	p := &signCountingProxy{signed: make(chan struct{}, 100)}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", address)
	}}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: "workload"}) }, Transport: tr}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.ServeHTTP(w, r)
		if strings.HasSuffix(r.URL.Path, "/sign") {
			p.signs.Add(1)
			select {
			case p.signed <- struct{}{}:
			default:
			}
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	p.url = srv.URL
	return p
}

// TestEdgeTokenRenewalThroughWorkload runs a module whose tokens live a
// few seconds: every renewal is signed by the workload API (reached over
// HTTP here), and the module still answers after them.
func TestEdgeTokenRenewalThroughWorkload(t *testing.T) {
	const renewals = 2
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startEdgeHub(t, "edge-1/mod-a")
			proxy := startSignCountingProxy(t, hub)
			env := edgeEnv(t, hub, "edge-1/mod-a")
			env["IOTEDGE_WORKLOADURI"] = proxy.url
			opts := edgeOptions(t, hub, tr)
			// A renewal starts at 80 % of the lifetime; a lifetime of 3 s
			// leaves 600 ms for it, and a renewal that misses it still
			// reconnects with a token the workload API signs.
			opts.TokenLifetime = 3 * time.Second
			runEdgeModule(t, env, opts, echoMux())
			waitSubscribed(t, hub, "edge-1/mod-a")
			deadline := time.NewTimer(60 * time.Second)
			defer deadline.Stop()
			for proxy.signs.Load() < 1+renewals {
				select {
				case <-proxy.signed:
				case <-deadline.C:
					t.Fatalf("%d signatures within 60 s, want %d", proxy.signs.Load(), 1+renewals)
				}
			}
			res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 30*time.Second), "edge-1", "mod-a",
				localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`"renewed"`), ConnectTimeoutInSeconds: 20})
			if err != nil || res.Status != 200 || string(res.Payload) != `"renewed"` {
				t.Fatalf("call after %d signatures = %+v, %v", proxy.signs.Load(), res, err)
			}
		})
	}
}

// TestEdgeRefusedSignatureIsFatal gives the module a generation id the
// runtime does not know: the workload API refuses to sign, and Run stops
// after one attempt with an unauthorized error that names the sign call.
func TestEdgeRefusedSignatureIsFatal(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startEdgeHub(t, "edge-1/mod-a")
			env := edgeEnv(t, hub, "edge-1/mod-a")
			env["IOTEDGE_MODULEGENERATIONID"] = "stale-generation"
			var dials atomic.Int32
			opts := edgeOptions(t, hub, tr)
			opts.OnStateChange = func(s device.State, _ error) {
				if s == device.StateConnecting {
					dials.Add(1)
				}
			}
			client, err := edge.NewModuleClientFromLookup(t.Context(), lookupIn(env), opts)
			if err != nil {
				t.Fatal(err)
			}
			err = client.Run(ctxTimeout(t, 20*time.Second), echoMux())
			var de *device.Error
			if !errors.As(err, &de) || de.Code != device.CodeUnauthorized {
				t.Fatalf("Run = %v, want CodeUnauthorized", err)
			}
			var we *edge.WorkloadError
			if !errors.As(err, &we) || we.Call != edge.WorkloadCallSign || we.StatusCode != http.StatusNotFound {
				t.Errorf("Run = %v, want a sign *edge.WorkloadError with 404", err)
			}
			if n := dials.Load(); n != 1 {
				t.Errorf("%d connection attempts, want 1", n)
			}
		})
	}
}

// TestEdgeSimulatorForm connects a module from the IoT Edge simulator's
// variables: a connection string naming the gateway, and the CA file.
func TestEdgeSimulatorForm(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "edge-1/mod-a")
			cs, err := hub.ConnectionString("edge-1/mod-a")
			if err != nil {
				t.Fatal(err)
			}
			caFile := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(caFile, hub.CACertPEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{
				"EdgeHubConnectionString":     cs + ";GatewayHostName=" + hub.HostName(),
				"EdgeModuleCACertificateFile": caFile,
			}
			runEdgeModule(t, env, edgeOptions(t, hub, tr), echoMux())
			waitSubscribed(t, hub, "edge-1/mod-a")
			res, err := hub.ServiceClient().Invoke(ctxTimeout(t, 20*time.Second), "edge-1", "mod-a", localhub.MethodCall{MethodName: "echo", Payload: json.RawMessage(`"sim"`)})
			if err != nil || res.Status != 200 || string(res.Payload) != `"sim"` {
				t.Fatalf("call = %+v, %v", res, err)
			}
		})
	}
}
