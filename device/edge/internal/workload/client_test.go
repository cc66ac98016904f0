package workload

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var testKey = []byte("module key")

// fakeRuntime serves the sign and trust-bundle calls for module "mod" at
// generation "g1", recording the requests it got.
type fakeRuntime struct {
	got []string // "METHOD path?query"
}

func (f *fakeRuntime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.got = append(f.got, r.Method+" "+r.URL.RequestURI())
	if r.URL.Query().Get("api-version") != "2019-01-30" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"message":"bad api version"}`))
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/trust-bundle":
		_, _ = w.Write([]byte(`{"certificate":"-----BEGIN CERTIFICATE-----\n...\n"}`))
	case r.Method == http.MethodPost && r.URL.Path == "/modules/mod/genid/g1/sign":
		var req signRequest
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.KeyID != "primary" || req.Algo != "HMACSHA256" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		data, err := base64.StdEncoding.DecodeString(req.Data)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		m := hmac.New(sha256.New, testKey)
		m.Write(data)
		_ = json.NewEncoder(w).Encode(map[string]string{"digest": base64.StdEncoding.EncodeToString(m.Sum(nil))})
	case r.URL.Path == "/modules/broken/genid/g1/sign":
		_, _ = w.Write([]byte(`{"digest":"***"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"Module not found"}`))
	}
}

// serveUnix serves h on a unix socket in a temporary directory and returns
// its unix:// URI.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wl") // short: socket paths are limited to about 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "workload.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + path
}

func TestSignAndTrustBundle(t *testing.T) {
	rt := &fakeRuntime{}
	tcp := httptest.NewServer(rt)
	t.Cleanup(tcp.Close)
	for name, uri := range map[string]string{"unix": serveUnix(t, rt), "http": tcp.URL} {
		t.Run(name, func(t *testing.T) {
			c, err := NewClient(uri, "2019-01-30")
			if err != nil {
				t.Fatal(err)
			}
			data := []byte("hub%2Fdevices%2Fdev%2Fmodules%2Fmod\n1700000000")
			digest, err := c.Sign(t.Context(), "mod", "g1", data)
			if err != nil {
				t.Fatal(err)
			}
			m := hmac.New(sha256.New, testKey)
			m.Write(data)
			if !hmac.Equal(digest, m.Sum(nil)) {
				t.Errorf("digest %x, want the HMAC of the data under the module key", digest)
			}
			bundle, err := c.TrustBundle(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if want := "-----BEGIN CERTIFICATE-----\n...\n"; string(bundle) != want {
				t.Errorf("bundle %q, want %q", bundle, want)
			}
		})
	}
	want := []string{
		"POST /modules/mod/genid/g1/sign?api-version=2019-01-30", "GET /trust-bundle?api-version=2019-01-30",
		"POST /modules/mod/genid/g1/sign?api-version=2019-01-30", "GET /trust-bundle?api-version=2019-01-30",
	}
	if diff := cmp.Diff(want, rt.got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	uri := serveUnix(t, &fakeRuntime{})
	c, err := NewClient(uri, "2019-01-30")
	if err != nil {
		t.Fatal(err)
	}
	badVersion, err := NewClient(uri, "1999-01-01")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "wl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	nobody, err := NewClient("unix://"+filepath.Join(dir, "none.sock"), "2019-01-30")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		call    func(ctx context.Context) error
		want    Error
		refused bool
		network bool
	}{
		{"unknown module", func(ctx context.Context) error { _, err := c.Sign(ctx, "other", "g1", []byte("x")); return err },
			Error{Call: CallSign, StatusCode: 404, Message: "Module not found"}, true, false},
		{"wrong generation", func(ctx context.Context) error { _, err := c.Sign(ctx, "mod", "g2", []byte("x")); return err },
			Error{Call: CallSign, StatusCode: 404, Message: "Module not found"}, true, false},
		{"bad digest", func(ctx context.Context) error { _, err := c.Sign(ctx, "broken", "g1", []byte("x")); return err },
			Error{Call: CallSign, StatusCode: 200, Message: "the digest is not base64"}, false, false},
		{"refused api version", func(ctx context.Context) error { _, err := badVersion.TrustBundle(ctx); return err },
			Error{Call: CallTrustBundle, StatusCode: 400, Message: "bad api version"}, true, false},
		{"no runtime", func(ctx context.Context) error { _, err := nobody.Sign(ctx, "mod", "g1", []byte("x")); return err },
			Error{Call: CallSign}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(t.Context())
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("error %v, want a *workload.Error", err)
			}
			got := *we
			got.Err = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if we.Refused() != tt.refused {
				t.Errorf("Refused() = %v, want %v", we.Refused(), tt.refused)
			}
			var netErr net.Error
			if errors.As(err, &netErr) != tt.network {
				t.Errorf("wraps a net.Error: %v, want %v", !tt.network, tt.network)
			}
		})
	}
}

func TestParseURI(t *testing.T) {
	for _, tt := range []struct {
		uri              string
		network, address string
		ok               bool
	}{
		{"unix:///var/run/iotedge/workload.sock", "unix", "/var/run/iotedge/workload.sock", true},
		{"http://workload:15580", "tcp", "workload:15580", true},
		{"http://127.0.0.1", "tcp", "127.0.0.1:80", true},
		{"http://[::1]:8080/", "tcp", "[::1]:8080", true},
		{"unix://relative/path.sock", "", "", false},
		{"unix:///", "", "", false},
		{"unix:relative", "", "", false},
		{"https://workload:15580", "", "", false},
		{"http://", "", "", false},
		{"http://host/path", "", "", false},
		{"http://host?x=1", "", "", false},
		{"http://user@host", "", "", false},
		{"tcp://host:1", "", "", false},
		{"", "", "", false},
		{"%zz", "", "", false},
	} {
		network, address, err := ParseURI(tt.uri)
		if (err == nil) != tt.ok || network != tt.network || address != tt.address {
			t.Errorf("ParseURI(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.uri, network, address, err, tt.network, tt.address, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidURI) {
			t.Errorf("ParseURI(%q) error %v does not wrap ErrInvalidURI", tt.uri, err)
		}
	}
	if _, err := NewClient("unix:///x.sock", ""); err == nil {
		t.Error("NewClient with an empty api version succeeded")
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"unix:///var/run/iotedge/workload.sock", "http://workload:15580", "http://[::1]:80/", "unix://x/y", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		network, address, err := ParseURI(uri)
		if err != nil {
			if !errors.Is(err, ErrInvalidURI) {
				t.Fatalf("error %v does not wrap ErrInvalidURI", err)
			}
			return
		}
		switch network {
		case "unix":
			if address == "" || address[0] != '/' {
				t.Fatalf("unix address %q is not absolute", address)
			}
		case "tcp":
			if _, _, err := net.SplitHostPort(address); err != nil {
				t.Fatalf("tcp address %q: %v", address, err)
			}
		default:
			t.Fatalf("network %q", network)
		}
	})
}
