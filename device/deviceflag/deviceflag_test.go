package deviceflag

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/internal/testcert"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

const testConnectionString = "HostName=hub.example;DeviceId=fan-1;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZg=="

func TestRegisterParsesEveryFlag(t *testing.T) {
	var f Flags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f.Register(fs)
	args := []string{"-connection-string", "cs", "-transport", "mqtt-ws", "-ca", "ca.pem", "-port", "8443", "-v"}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	want := Flags{ConnectionString: "cs", Transport: "mqtt-ws", CAFile: "ca.pem", Port: 8443, Verbose: true}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}

	var defaults Flags
	defaults.Register(flag.NewFlagSet("test", flag.ContinueOnError))
	if diff := cmp.Diff(Flags{Transport: "mqtt"}, defaults); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestNewClient(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		flags   Flags
		env     string
		wantErr error // nil: success; errAny: any error
	}{
		{"flag", Flags{ConnectionString: testConnectionString, Transport: "mqtt"}, "", nil},
		{"environment", Flags{Transport: "mqtt-ws"}, testConnectionString, nil},
		{"none", Flags{Transport: "mqtt"}, "", ErrNoConnectionString},
		{"unknown transport", Flags{ConnectionString: testConnectionString, Transport: "pigeon"}, "", errAny},
		{"missing CA file", Flags{ConnectionString: testConnectionString, Transport: "mqtt", CAFile: filepath.Join(dir, "absent.pem")}, "", os.ErrNotExist},
		{"CA file without PEM", Flags{ConnectionString: testConnectionString, Transport: "mqtt", CAFile: notPEM}, "", errAny},
		{"bad connection string", Flags{ConnectionString: "HostName=hub.example", Transport: "mqtt"}, "", errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvConnectionString, tt.env)
			client, err := tt.flags.NewClient(nil)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("NewClient: %v", err)
			case tt.wantErr == nil:
				client.Close()
			case err == nil:
				client.Close()
				t.Fatal("NewClient succeeded, want an error")
			case tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Errorf("NewClient = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestDialer(t *testing.T) {
	for _, name := range TransportNames {
		if d, err := Dialer(name); err != nil || d == nil {
			t.Errorf("Dialer(%q) = %v, %v", name, d, err)
		}
	}
	for _, name := range []string{"MQTT", "", "carrier-pigeon"} {
		if d, err := Dialer(name); err == nil || d != nil {
			t.Errorf("Dialer(%q) = %v, %v, want an error", name, d, err)
		}
	}
}

// TestNewClientKeepsCallerOptions checks that -ca does not write into the
// caller's TLS configuration, which other clients may share.
func TestNewClientKeepsCallerOptions(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, testCAPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := &tls.Config{ServerName: "hub.example"}
	f := Flags{ConnectionString: testConnectionString, Transport: "amqp", CAFile: caFile, Port: 5672}
	client, err := f.NewClient(&device.ClientOptions{TLSConfig: shared})
	if err != nil {
		t.Fatal(err)
	}
	client.Close()
	if shared.RootCAs != nil {
		t.Error("NewClient set RootCAs on the caller's tls.Config")
	}
}

func testCAPEM(t *testing.T) []byte {
	t.Helper()
	cert, _, err := testcert.Server()
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
}
