package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/directmethods/iotdevice/internal/localhub"
)

func TestSplitList(t *testing.T) {
	got := splitList(" device-1, ,dev/mod,")
	if diff := cmp.Diff([]string{"device-1", "dev/mod"}, got); diff != "" {
		t.Errorf("splitList (-want +got):\n%s", diff)
	}
}

func TestExplain(t *testing.T) {
	defaults := portFlags{mqtt: 8883, amqp: 5671, https: 443}
	tests := []struct {
		name  string
		err   error
		ports portFlags
		want  string
	}{
		{"https privileged", &localhub.ListenError{Listener: "https", Addr: "127.0.0.1:443", Err: fmt.Errorf("bind: %w", syscall.EACCES)}, defaults, "Use -https-port 8443 instead"},
		{"mqtt privileged", &localhub.ListenError{Listener: "mqtt", Addr: "127.0.0.1:883", Err: fmt.Errorf("bind: %w", syscall.EACCES)}, portFlags{mqtt: 883, amqp: 5671, https: 443}, "Use -mqtt-port 8883 instead"},
		{"in use", &localhub.ListenError{Listener: "mqtt", Addr: "127.0.0.1:8883", Err: syscall.EADDRINUSE}, defaults, "Choose another with -mqtt-port"},
		{"amqp privileged", &localhub.ListenError{Listener: "amqp", Addr: "127.0.0.1:671", Err: fmt.Errorf("bind: %w", syscall.EACCES)}, portFlags{mqtt: 8883, amqp: 671, https: 443}, "The system refused port 671: ports below 1024 need privileges. Use -amqp-port 8671 instead"},
		{"amqp in use", &localhub.ListenError{Listener: "amqp", Addr: "127.0.0.1:5671", Err: syscall.EADDRINUSE}, defaults, "Port 5671 is not available. Choose another with -amqp-port"},
		{"other", errors.New("boom"), defaults, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explain(tt.err, tt.ports)
			if !strings.Contains(got, tt.want) {
				t.Errorf("explain = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

// TestTokenSubcommand checks that "token" prints a service token the hub
// accepts, read from the files the hub wrote.
func TestTokenSubcommand(t *testing.T) {
	dir := t.TempDir()
	hub, err := localhub.Start(t.Context(), localhub.Options{Dir: dir, Devices: []string{"dev"}})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	if err := hub.WriteConnectionFiles(dir); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if code := token([]string{"-dir", dir, "-ttl", "10m"}, &out, &errOut); code != 0 {
		t.Fatalf("token = %d: %s", code, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	if !strings.HasPrefix(tok, "SharedAccessSignature ") {
		t.Fatalf("token printed %q", tok)
	}
	// The hub takes it: a call to an offline device gets past authorization
	// to 404103.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		"https://"+hub.HTTPSAddr()+"/twins/dev/methods?api-version=2021-04-12", strings.NewReader(`{"methodName":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: hub.CertPool(), ServerName: hub.HostName()}}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("iothub-errorcode"); got != "DeviceNotOnline" {
		t.Errorf("call with the printed token: HTTP %d %q, want DeviceNotOnline", resp.StatusCode, got)
	}

	if code := token([]string{"-dir", t.TempDir()}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "start the hub first") {
		t.Errorf("token without the hub's files = %d, %q", code, errOut.String())
	}
}

func TestParseLeafDevices(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    leafPairs
		wantErr bool
	}{
		{"", nil, false},
		{"leaf-1=edge-1", leafPairs{{"leaf-1", "edge-1"}}, false},
		{"leaf-1=edge-1, leaf-2=edge-1,", leafPairs{{"leaf-1", "edge-1"}, {"leaf-2", "edge-1"}}, false},
		{"leaf-1", nil, true},
		{"=edge-1", nil, true},
		{"leaf-1=", nil, true},
		{"leaf-1=edge-1/mod", nil, true},
	} {
		got, err := parseLeafDevices(tt.in)
		if (err != nil) != tt.wantErr || !cmp.Equal(tt.want, got, cmp.AllowUnexported(leafPair{})) {
			t.Errorf("parseLeafDevices(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
