package devicecli

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/internal/leakcheck"
	"github.com/directmethods/iotdevice/transport/transporttest"
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

// TestServeReturnsNilOnStop checks that a stop by the context is a clean
// exit while a closed client is reported.
func TestServeReturnsNilOnStop(t *testing.T) {
	newClient := func(fake *transporttest.Fake) *device.Client {
		f := Flags{ConnectionString: testConnectionString}
		client, err := device.NewClientFromConnectionString(f.ConnectionString, &device.ClientOptions{Transport: fake})
		if err != nil {
			t.Fatal(err)
		}
		return client
	}

	wait, cancelWait := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancelWait()
	fake := transporttest.NewFake(nil)
	client := newClient(fake)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, client, device.NewMethodMux()) }() // joined below
	if err := fake.WaitConnected(wait); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel = %v, want nil", err)
	}

	fake = transporttest.NewFake(nil)
	client = newClient(fake)
	go func() { done <- Serve(t.Context(), client, device.NewMethodMux()) }() // joined below
	if err := fake.WaitConnected(wait); err != nil {
		t.Fatal(err)
	}
	client.Close()
	if err := <-done; !errors.Is(err, device.ErrClientClosed) {
		t.Errorf("Serve after Close = %v, want ErrClientClosed", err)
	}
}
