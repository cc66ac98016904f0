package localhub

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/directmethods/iotdevice/device/workload"
	"github.com/directmethods/iotdevice/sas"
)

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
			c, err := workload.NewClient(env["IOTEDGE_WORKLOADURI"], version)
			if err != nil {
				t.Fatal(err)
			}
			data := []byte("localhost%2Fdevices%2F" + identity + "\n1700000000")
			digest, err := c.Sign(t.Context(), env["IOTEDGE_MODULEID"], env["IOTEDGE_MODULEGENERATIONID"], data)
			if err != nil {
				t.Fatalf("%s, %s: %v", identity, version, err)
			}
			m := hmac.New(sha256.New, moduleKey(t, h, identity))
			m.Write(data)
			if !hmac.Equal(digest, m.Sum(nil)) {
				t.Errorf("%s, %s: digest is not the HMAC under the module's key", identity, version)
			}
			bundle, err := c.TrustBundle(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if string(bundle) != string(h.CACertPEM()) {
				t.Errorf("%s: trust bundle is not the hub's CA", version)
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
	good, err := workload.NewClient(uri, "2019-01-30")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		version string
		module  string
		genID   string
		call    string
		status  int
	}{
		{"unknown generation", "2019-01-30", "mod", "0123", workload.CallSign, 404},
		{"unknown module", "2019-01-30", "nobody", env["IOTEDGE_MODULEGENERATIONID"], workload.CallSign, 404},
		{"unsupported version", "2021-12-07", "mod", env["IOTEDGE_MODULEGENERATIONID"], workload.CallSign, 400},
		{"older unsupported version", "2018-12-30", "", "", workload.CallTrustBundle, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := workload.NewClient(uri, tt.version)
			if err != nil {
				t.Fatal(err)
			}
			if tt.call == workload.CallSign {
				_, err = c.Sign(t.Context(), tt.module, tt.genID, []byte("x"))
			} else {
				_, err = c.TrustBundle(t.Context())
			}
			var we *workload.Error
			if !errors.As(err, &we) || we.Call != tt.call || we.StatusCode != tt.status || we.Message == "" {
				t.Errorf("error %v, want %s answered %d with a message", err, tt.call, tt.status)
			}
		})
	}
	if _, err := good.Sign(t.Context(), "mod", env["IOTEDGE_MODULEGENERATIONID"], []byte("x")); err != nil {
		t.Errorf("a good request after the refusals: %v", err)
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
		c, err := workload.NewClient(h.WorkloadURI(), "2019-01-30")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.TrustBundle(t.Context()); err != nil {
			t.Error(err)
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
